"""The functions behind the UI's components, against a real served service (no mocks).

Pure parts (CSV parsing, error sentences) are tested directly; the views call a
``bentoml serve`` subprocess on quick models (see ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gridcast.errors import UserInputError
from ui.app import user_message
from ui.uploads import read_history_csv
from ui.views import DEMO_FAULTY, UPLOADED, forecast_view, live_view, models_view, quality_view
from ui.client import ServiceClient, ServiceError, ServiceUnavailable


def _history_csv(path: Path, days: int = 10, *, drop: str | None = None, rename: dict | None = None) -> Path:
    from gridcast.synthetic import generate
    from gridcast.schema import region_frame

    df, _ = generate(days=days, regions=1, seed=3)
    frame = region_frame(df, "region-1")[["load_mw", "temperature_c"]].reset_index()
    frame["timestamp"] = frame["timestamp"].map(lambda t: t.isoformat())
    if drop:
        frame = frame.drop(columns=drop)
    if rename:
        frame = frame.rename(columns=rename)
    frame.to_csv(path, index=False)
    return path


# ---- pure: uploads and messages -------------------------------------------------------------


def test_history_csv_canonical(tmp_path: Path) -> None:
    frame = read_history_csv(_history_csv(tmp_path / "h.csv", days=3))
    assert len(frame) == 72
    assert list(frame.columns) == ["load_mw", "temperature_c"]
    assert str(frame.index.tz) == "UTC"


def test_history_csv_mapped_columns(tmp_path: Path) -> None:
    path = _history_csv(tmp_path / "h.csv", days=2, rename={"timestamp": "time", "load_mw": "MW", "temperature_c": "T"})
    frame = read_history_csv(path, time_col="time", load_col="MW", temp_col="T")
    assert len(frame) == 48 and frame["temperature_c"].notna().all()


@pytest.mark.parametrize(
    ("drop", "mapping", "named"),
    [("load_mw", {}, "'load_mw'"), ("timestamp", {}, "'timestamp'"), (None, {"temp_col": "air_temp"}, "'air_temp'")],
    ids=["no-load", "no-timestamp", "mapped-temp-missing"],
)
def test_history_csv_missing_column_is_named(tmp_path: Path, drop, mapping, named) -> None:
    path = _history_csv(tmp_path / "h.csv", days=1, drop=drop)
    with pytest.raises(UserInputError) as err:
        read_history_csv(path, **mapping)
    assert named in err.value.detail and "columns are" in err.value.detail


def test_history_csv_bad_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,load_mw\n2024-01-01T00:00Z,100\n2024-01-01T01:00Z,lots\n2024-01-01T02:00Z,x\n")
    with pytest.raises(UserInputError) as err:
        read_history_csv(path)
    assert "row 2 (line 3)" in err.value.detail and "'lots'" in err.value.detail and "1 more" in err.value.detail
    path.write_text("timestamp,load_mw\nyesterday,100\n")
    with pytest.raises(UserInputError, match=r"row 1 .*'yesterday' is not a timestamp"):
        read_history_csv(path)


def test_unreachable_service_is_a_sentence() -> None:
    client = ServiceClient("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(ServiceUnavailable) as err:
        client.models()
    message = user_message(err.value)
    assert message.startswith("Service unreachable") and "127.0.0.1:9" in message and "Traceback" not in message


# ---- against the served service ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_forecast_view_points_table_csv(client: ServiceClient, ui_settings) -> None:
    view = forecast_view(client, region="region-1", model="naive", horizon=12, levels=["80", "95"],
                         settings=ui_settings)
    assert len(view.results[0]["points"]) == 12
    assert len(view.table) == 12
    assert {"upper 95% (MW)", "lower 80% (MW)"} <= set(view.table.columns)
    assert (view.table["upper 95% (MW)"] >= view.table["upper 80% (MW)"]).all()
    means = [t for t in view.figure.data if t.meta == "forecast-mean"]
    assert len(means) == 1 and len(means[0].x) == 12
    assert "MW" in view.figure.layout.yaxis.title.text and "UTC" in view.figure.layout.xaxis.title.text
    downloaded = pd.read_csv(view.csv_path)
    assert len(downloaded) == 12 and "timestamp (UTC)" in downloaded.columns
    assert "12 points" in view.status


@pytest.mark.slow
@pytest.mark.integration
def test_forecast_view_compares_models_on_one_chart(client: ServiceClient, ui_settings) -> None:
    view = forecast_view(client, region="region-2", model="lstm", horizon=6, levels=["80"], settings=ui_settings,
                         compare=["naive", "sarimax"])
    assert [r["requested_model"] for r in view.results] == ["lstm", "naive", "sarimax"]
    means = [t for t in view.figure.data if t.meta == "forecast-mean"]
    assert len(means) == 3 and all(len(t.x) == 6 for t in means)
    assert any(c.startswith("naive") and c.endswith("mean (MW)") for c in view.table.columns)


@pytest.mark.slow
@pytest.mark.integration
def test_forecast_view_with_uploaded_history(client: ServiceClient, ui_settings, tmp_path: Path) -> None:
    path = _history_csv(tmp_path / "h.csv", days=30)
    view = forecast_view(client, region="region-1", model="naive", horizon=24, levels=["95"], settings=ui_settings,
                         history_path=path)
    first = view.results[0]
    assert first["history_source"] == "request"
    last = pd.read_csv(path)["timestamp"].iloc[-1]
    assert pd.Timestamp(first["origin"]) == pd.Timestamp(last)
    assert "uploaded history" in view.status


@pytest.mark.slow
@pytest.mark.integration
def test_forecast_view_short_history_says_fallback(client: ServiceClient, ui_settings, tmp_path: Path) -> None:
    path = _history_csv(tmp_path / "short.csv", days=3)
    view = forecast_view(client, region="region-1", model="lstm", horizon=24, levels=["80"], settings=ui_settings,
                         history_path=path)
    assert view.results[0]["fallback"] is True
    assert any("Fallback used for lstm" in w for w in view.warnings)
    assert "Fallback used" in view.status


@pytest.mark.slow
@pytest.mark.integration
def test_service_refusal_reaches_the_person(client: ServiceClient, ui_settings) -> None:
    with pytest.raises(ServiceError) as err:
        forecast_view(client, region="atlantis", model="best", horizon=3, levels=["80"], settings=ui_settings)
    assert err.value.status == 404 and "atlantis" in user_message(err.value)


@pytest.mark.slow
@pytest.mark.integration
def test_live_view_embedded_says_no_live_data(client: ServiceClient, ui_settings) -> None:
    view = live_view(client, "region-1", settings=ui_settings)
    assert view.live is False
    assert "No live data" in view.status and "UTC" in view.status
    means = [t for t in view.figure.data if t.meta == "forecast-mean"]
    assert len(means) == 1 and len(means[0].x) == ui_settings.stream_horizon


@pytest.mark.slow
@pytest.mark.integration
def test_models_view_lists_served_versions_vs_naive(client: ServiceClient, ui_settings) -> None:
    view = models_view(client, settings=ui_settings)
    served = client.models()
    assert len(view.table) == len(served) >= 2
    assert set(view.table["alias"]) >= {"naive", "lstm"}
    assert view.table.loc[view.table["alias"] == "naive", "MAPE vs naive"].str.startswith("+0.0%").all()
    assert {t.name for t in view.figure.data} >= {"naive", "lstm"}
    # every served model was trained with error by lead and by hour: one curve each
    names = {f"{m['region']} / {m['alias']}" for m in served}
    assert {t.name for t in view.lead_figure.data if t.meta == "lead-mape"} == names
    assert all(len(t.x) == 24 for t in view.lead_figure.data)  # hourly day-ahead: 24 leads
    hours = [t for t in view.hour_figure.data if t.meta == "hour-mape"]
    assert {t.name for t in hours} == names and all(len(t.y) == 24 for t in hours)
    assert "No error by lead" not in view.status


def _served(region: str, alias: str, validation: dict) -> dict:
    """One entry of ``GET /models`` as the service describes a stored model."""
    return {"region": region, "alias": alias, "version": f"gridcast-{alias}-{region}:v1", "freq": "1h",
            "validation_mape": validation.get("mape"), "validation": validation,
            "training_range": {"start": "2023-01-01T00:00:00+00:00", "end": "2023-04-01T00:00:00+00:00"},
            "live": {"n": 0, "windows": {}}}


def test_models_trained_before_by_lead_still_display() -> None:
    """Old metadata (overall metrics only) keeps its row and bar; only the curves are missing, and said so."""
    from ui.views import summarise_models

    old = {"mape": 4.0, "mae": 40.0, "rmse": 50.0, "bias": -1.0, "coverage_80": 0.78, "coverage_95": 0.93}
    view = summarise_models([_served("r", "naive", old), _served("r", "lstm", {**old, "mape": 2.0})])
    assert list(view.table["MAPE (%)"]) == [2.0, 4.0] and view.table["90% coverage"].isna().all()
    assert "reference MAPE (%)" not in view.table
    assert view.lead_figure is None and view.hour_figure is None
    assert "No error by lead or hour of day recorded for r / lstm, r / naive" in view.status


def test_models_view_draws_lead_hour_and_the_reference() -> None:
    from ui.views import summarise_models

    new = {"mape": 2.0, "coverage_90": 0.9,
           "by_lead": {"band_steps": 1, "lead": [1, 2, 3], "n": [7, 7, 7], "mape": [1.5, 2.0, 2.5],
                       "coverage_90": [0.95, 0.9, None]},
           "by_hour": {"tz": "Europe/Madrid", "mape": [2.0] * 24, "n": [7] * 24},
           "reference": {"mape": 1.1, "model_mape": 2.1, "n": 168, "by_hour": [1.0] * 24}}
    old = {"mape": 4.0}
    view = summarise_models([_served("es", "lstm", new), _served("es", "naive", old)])
    lstm = view.table.set_index("alias").loc["lstm"]
    assert lstm["reference MAPE (%)"] == 1.1 and lstm["MAPE on the reference's hours (%)"] == 2.1
    assert [t.y for t in view.lead_figure.data if t.meta == "lead-mape"] == [(1.5, 2.0, 2.5)]
    assert [t.y for t in view.lead_figure.data if t.meta == "lead-coverage"] == [(95.0, 90.0, None)]
    reference = [t for t in view.hour_figure.data if t.meta == "hour-reference"]
    assert len(reference) == 1 and reference[0].name == "es / reference (operator)" and reference[0].y == (1.0,) * 24
    assert "Europe/Madrid" in view.hour_figure.layout.xaxis.title.text
    assert {t.name for t in view.figure.data} == {"lstm", "naive", "reference forecast"}
    assert "es / naive" in view.status and "Reference" in view.status


# ---- data quality (the service's GET /data/sample and POST /data/check) --------------------------


@pytest.mark.slow
def test_quality_view_on_faulty_demo(client: ServiceClient, ui_settings) -> None:
    view = quality_view(client, DEMO_FAULTY, None, settings=ui_settings)
    flagged = view.checks.set_index("check")["count"]
    assert flagged.get("duplicates_exact", 0) > 0 and flagged.get("spikes", 0) > 0
    assert len(view.figures) == 4
    assert view.figures[0].axes[0].get_ylabel() == "load (MW)"


def test_quality_view_upload_missing_column_is_named(client: ServiceClient, ui_settings, tmp_path: Path) -> None:
    path = _history_csv(tmp_path / "table.csv", days=2)  # no 'region' column
    with pytest.raises(ServiceError, match="'region'") as refused:
        quality_view(client, UPLOADED, path, settings=ui_settings)
    assert refused.value.field == "region" and refused.value.status == 422


def test_quality_view_parquet_upload_keeps_its_metadata(client: ServiceClient, ui_settings, tmp_path: Path) -> None:
    from gridcast.schema import write_table
    from gridcast.synthetic import generate

    df, meta = generate(days=21, regions=2, seed=5, country="ES")
    view = quality_view(client, UPLOADED, write_table(df, tmp_path / "t.parquet", meta), settings=ui_settings)
    assert view.report["usable"] is True and len(view.figures) == 4
    assert "Plots show region-1 (of 2 regions)" in view.status


def test_quality_view_without_upload_asks_for_one(client: ServiceClient, ui_settings) -> None:
    with pytest.raises(UserInputError, match="upload a file first"):
        quality_view(client, UPLOADED, None, settings=ui_settings)


def test_live_scores_and_error_so_far_read_what_the_service_says():
    """The Live and Models tabs show live error next to validation (from GET /models' live blocks)."""
    import pandas as pd

    from ui.views import _live_columns, forecast_error_so_far, live_scores

    models = [{"region": "r", "alias": "lstm", "live": {"n": 30, "windows": {
        "24h": {"n": 24, "mape": 2.5}, "7d": {"n": 30, "mape": 3.0}}}},
        {"region": "r", "alias": "naive", "live": {"n": 0, "windows": {}}},
        {"region": "other", "alias": "lstm", "live": {"n": 5, "windows": {"24h": {"n": 5, "mape": 9.0}}}}]
    assert live_scores(models, "r") == ["lstm: MAPE 2.50 % over 24 points"]
    assert _live_columns(models[0]["live"]) == {"live MAPE 24 h (%)": 2.5, "live MAPE 7 d (%)": 3.0, "live n": 30}
    assert _live_columns(None)["live n"] == 0
    idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    history = pd.DataFrame({"load_mw": [100.0, 200.0, 400.0]}, index=idx)
    result = {"points": [{"timestamp": idx[1].isoformat(), "mean": 220.0},
                         {"timestamp": idx[2].isoformat(), "mean": 300.0},
                         {"timestamp": (idx[2] + pd.Timedelta("1h")).isoformat(), "mean": 1.0}]}
    n, mape, mae = forecast_error_so_far(result, history)
    assert n == 2 and mape == pytest.approx((10 + 25) / 2) and mae == pytest.approx(60.0)
