"""End to end on recorded responses: collect -> canonical table, incremental resume, errors, CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest
import respx

from training.cli import main
from gridcast.errors import UserInputError
from gridcast.schema import read_table, validate, write_table

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collect"
START = pd.Timestamp("2024-03-30", tz="UTC")
END = pd.Timestamp("2024-04-01", tz="UTC")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _entsoe(request: httpx.Request) -> httpx.Response:
    process = request.url.params["processType"]
    return httpx.Response(200, content=fixture_bytes(f"entsoe_A65_{process}_ES.xml"))


def _weather(request: httpx.Request) -> httpx.Response:
    # every point gets Madrid's answer: enough to test the plumbing (aggregation has its own test)
    return httpx.Response(200, content=fixture_bytes("openmeteo_archive_madrid.json"))


def _eia(request: httpx.Request) -> httpx.Response:
    page = {"0": 1, "60": 2}[request.url.params["offset"]]
    return httpx.Response(200, content=fixture_bytes(f"eia_region_data_PJM_page{page}.json"))


def _mock_sources(settings):
    respx.get(settings.entsoe_url).mock(side_effect=_entsoe)
    respx.get(settings.eia_url).mock(side_effect=_eia)
    respx.get(settings.openmeteo_archive_url).mock(side_effect=_weather)


@respx.mock
def test_entsoe_zone_to_canonical_table(collector, settings, tmp_path):
    _mock_sources(settings)
    table, meta = collector.collect("entsoe", "ES", START, END)
    table = validate(table)  # the canonical schema, or this raises
    assert table["region"].unique().tolist() == ["ES"]
    assert table["timestamp"].min() == START and table["timestamp"].max() == END - pd.Timedelta("1h")
    assert len(table) == 48 and table["load_mw"].notna().all()
    assert table["reference_mw"].notna().all()
    assert table["temperature_c"].notna().sum() == 47  # the fixture's last hour is null
    assert {"load_mw", "reference_mw", "temperature_c", "pressure_hpa"} <= set(meta["sources"])
    assert "A16" in meta["sources"]["load_mw"] and "A01" in meta["sources"]["reference_mw"]
    path = write_table(table, tmp_path / "es.parquet", meta)
    back, back_meta = read_table(path)
    assert back_meta["freq"] == "1h" and back_meta["synthetic"] is False
    assert len(back) == 48


def test_second_run_fetches_only_the_new_range(collector, settings):
    with respx.mock:
        _mock_sources(settings)
        route = respx.routes[0]
        collector.collect("entsoe", "ES", START, START + pd.Timedelta(days=1))
        first = [(c.request.url.params["periodStart"], c.request.url.params["periodEnd"]) for c in route.calls]
        collector.collect("entsoe", "ES", START, END)
        second = [(c.request.url.params["periodStart"], c.request.url.params["periodEnd"]) for c in route.calls][len(first):]
        weather = [c.request.url.params["start_date"] for c in respx.routes[2].calls]
    # A16 and A01 for day one, then only day two — nothing fetched twice
    assert first == [("202403300000", "202403310000")] * 2
    assert second == [("202403310000", "202404010000")] * 2
    assert sorted(set(weather)) == ["2024-03-30", "2024-03-31"]
    assert len(weather) == 2 * 5  # two ranges x the five built-in ES places


def test_recent_hours_are_fetched_again(collector, settings):
    # Within the settle window (48 h before "now") data is never marked complete.
    now = collector.now
    start = (now - pd.Timedelta(hours=24)).floor("1h")
    with respx.mock:
        _mock_sources(settings)
        respx.get(settings.openmeteo_forecast_url).mock(side_effect=_weather)
        for _ in range(2):
            with pytest.raises(UserInputError, match="empty range"):  # the fixtures have no rows this recent
                collector.collect("entsoe", "ES", start, now.floor("1h"))
        assert respx.routes[0].call_count == 4  # two processes x two runs


@pytest.mark.parametrize(
    "source, zone, start, end, match",
    [
        pytest.param("entsoe", "ES", END, START, "empty range", id="end-before-start"),
        pytest.param("entsoe", "ES", START, START, "empty range", id="zero-length"),
        pytest.param("entsoe", "Narnia", START, END, "unknown ENTSO-E bidding zone", id="unknown-zone"),
        pytest.param("eia", "NARNIA", START, END, "unknown EIA balancing authority", id="unknown-ba"),
        pytest.param("entsoe", "ES", pd.Timestamp("2030-01-01", tz="UTC"), pd.Timestamp("2030-01-02", tz="UTC"),
                     "in the future", id="future"),
    ],
)
def test_bad_requests_fail_before_any_network(collector, source, zone, start, end, match):
    with respx.mock(assert_all_called=False):  # any request would raise: none is routed
        with pytest.raises(UserInputError, match=match):
            collector.collect(source, zone, start, end)


def test_source_without_data_is_a_clear_empty_range_error(collector, settings):
    with respx.mock:
        respx.get(settings.entsoe_url).mock(
            return_value=httpx.Response(200, content=fixture_bytes("entsoe_acknowledgement_no_data.xml")))
        with pytest.raises(UserInputError, match="entsoe has no load data for ES .*empty range"):
            collector.collect("entsoe", "ES", pd.Timestamp("2015-01-01", tz="UTC"), pd.Timestamp("2015-01-02", tz="UTC"),
                              weather=False)


def test_table_spans_the_actual_load_not_the_forecast_ahead_of_it(collector, settings):
    # The day-ahead document runs a day past the actuals, as it does live.
    day_ahead = fixture_bytes("entsoe_A65_A01_ES.xml")
    actual_short = fixture_bytes("entsoe_A65_A16_ES.xml").split(b"<TimeSeries>")
    actual_short = b"<TimeSeries>".join(actual_short[:3]) + b"</GL_MarketDocument>"  # drop the 1 April series

    def answer(request):
        return httpx.Response(200, content=actual_short if request.url.params["processType"] == "A16" else day_ahead)

    with respx.mock:
        respx.get(settings.entsoe_url).mock(side_effect=answer)
        table, _ = collector.collect("entsoe", "ES", START, END + pd.Timedelta(days=1), weather=False)
    assert table["timestamp"].max() == pd.Timestamp("2024-03-31T21:00", tz="UTC")  # last actual (end of local 31 March)
    assert table["load_mw"].notna().all() and table["temperature_c"].isna().all()


@respx.mock
def test_eia_zone_collect_keeps_the_operator_forecast(collector, settings):
    _mock_sources(settings)
    table, meta = collector.collect("eia", "PJM", START, END, points="39.95,-75.17")
    assert len(table) == 48
    assert (table["reference_mw"] > 0).all()
    # one null D value in the fixture stays missing for `data check` to see
    assert table["load_mw"].isna().sum() == 1
    assert meta["collect"]["points"] == [{"lat": 39.95, "lon": -75.17, "weight": 1.0, "name": ""}]


@pytest.mark.parametrize(
    "argv, env, message",
    [
        pytest.param(["--zone", "ES", "--source", "entsoe"], {"ENTSOE_API_TOKEN": ""}, "set ENTSOE_API_TOKEN", id="no-token"),
        pytest.param(["--zone", "XX", "--source", "entsoe"], {}, "unknown ENTSO-E bidding zone", id="zone"),
        pytest.param(["--zone", "PJM", "--source", "eia"], {"EIA_API_KEY": ""}, "set EIA_API_KEY", id="no-key"),
        pytest.param(["--zone", "ES", "--source", "entsoe", "--start", "soon"], {}, "is not a date", id="bad-date"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(argv, env, message, monkeypatch, tmp_path, capsys):
    from gridcast.settings import get_settings

    monkeypatch.setenv("GRIDCAST_COLLECT_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    base = ["collect", "load", "--start", "2024-03-30", "--end", "2024-04-01", "--out", str(tmp_path / "x.parquet")]
    with respx.mock(assert_all_called=False):
        rc = main(base + argv)
    get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_cli_collect_writes_a_checkable_table(monkeypatch, tmp_path, capsys):
    from gridcast.settings import get_settings

    monkeypatch.setenv("GRIDCAST_COLLECT_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("EIA_API_KEY", "k")
    monkeypatch.setenv("GRIDCAST_EIA_URL", "https://eia.test/v2/electricity/rto/region-data/data/")
    monkeypatch.setenv("GRIDCAST_OPENMETEO_ARCHIVE_URL", "https://archive.openmeteo.test/v1/archive")
    monkeypatch.setenv("GRIDCAST_EIA_PAGE_LENGTH", "60")
    get_settings.cache_clear()
    out = tmp_path / "pjm.parquet"
    with respx.mock:
        respx.get("https://eia.test/v2/electricity/rto/region-data/data/").mock(side_effect=_eia)
        respx.get("https://archive.openmeteo.test/v1/archive").mock(side_effect=_weather)
        rc = main(["collect", "load", "--source", "eia", "--zone", "PJM", "--start", "2024-03-30", "--end", "2024-04-01",
                   "--out", str(out)])
    get_settings.cache_clear()
    assert rc == 0, capsys.readouterr().err
    table, meta = read_table(out)
    assert len(table) == 48 and meta["collect"]["zone"] == "PJM"
    assert "gridcast data check" in capsys.readouterr().err


def test_cli_weather_forecast_replaces_only_this_region(monkeypatch, tmp_path):
    from gridcast.settings import get_settings

    out = tmp_path / "fw.parquet"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC"), "region": "PJM",
                  "temperature_c": [1.0, 2.0]}).to_parquet(out, index=False)
    monkeypatch.setenv("GRIDCAST_COLLECT_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("GRIDCAST_OPENMETEO_FORECAST_URL", "https://api.openmeteo.test/v1/forecast")
    get_settings.cache_clear()
    with respx.mock:
        route = respx.get("https://api.openmeteo.test/v1/forecast").mock(
            return_value=httpx.Response(200, content=fixture_bytes("openmeteo_forecast_madrid.json")))
        rc = main(["collect", "weather-forecast", "--zone", "ES", "--days", "2", "--points", "40.4,-3.7",
                   "--out", str(out)])
    get_settings.cache_clear()
    assert rc == 0 and route.calls[0].request.url.params["forecast_days"] == "2"
    frame = pd.read_parquet(out)
    assert frame.groupby("region").size().to_dict() == {"ES": 48, "PJM": 2}


@pytest.mark.parametrize(
    "text, seconds", [("900", 900), ("90s", 90), ("15m", 900), ("15min", 900), ("1h", 3600)],
    ids=["bare", "s", "m", "min", "h"],
)
def test_watch_interval_parsing(text, seconds):
    from training.collect.cli import _duration_s

    assert _duration_s(text) == seconds


def test_watch_interval_rejects_nonsense(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["collect", "watch", "--source", "entsoe", "--zone", "ES", "--every", "often"])
    assert exit_.value.code == 2 and "not a duration" in capsys.readouterr().err
