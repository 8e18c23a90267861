"""Open-Meteo: parsing in UTC, units, weighted point means, archive/forecast split, errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import respx

from training.collect import SourceError
from training.collect.openmeteo import OpenMeteo, Point, parse_points, parse_response, points_for
from gridcast.errors import UserInputError

NOW = pd.Timestamp("2024-04-10T12:00", tz="UTC")  # as in conftest: the fixtures predate it
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collect"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _fixture(name: str) -> dict:
    return json.loads(fixture_bytes(name))


def test_parse_maps_variables_to_canonical_columns():
    raw = _fixture("openmeteo_archive_madrid.json")
    frame = parse_response(raw)
    assert list(frame.columns) == [
        "temperature_c", "humidity_pct", "wind_speed_ms", "cloud_cover_pct", "shortwave_wm2", "pressure_hpa"
    ]
    assert str(frame.index.tz) == "UTC" and len(frame) == 48
    assert frame.index[0] == pd.Timestamp("2024-03-30T00:00", tz="UTC")
    assert frame["temperature_c"].iloc[0] == raw["hourly"]["temperature_2m"][0]
    assert np.isnan(frame["temperature_c"].iloc[-1])  # null in the answer stays missing


@pytest.mark.parametrize(
    "change, match",
    [
        pytest.param(lambda r: r.update(utc_offset_seconds=7200), "expected UTC", id="not-utc"),
        pytest.param(lambda r: r["hourly_units"].update(wind_speed_10m="km/h"), "expected 'm/s'", id="wind-kmh"),
        pytest.param(lambda r: r["hourly_units"].update(temperature_2m="°F"), "expected '°C'", id="fahrenheit"),
        pytest.param(lambda r: r.pop("hourly"), "no 'hourly'", id="no-hourly"),
        pytest.param(lambda r: r["hourly"]["pressure_msl"].pop(), "47 values for 48", id="ragged"),
        pytest.param(lambda r: r["hourly"]["time"].__setitem__(3, "yesterday"), "unreadable", id="bad-time"),
    ],
)
def test_malformed_answers(change, match):
    raw = _fixture("openmeteo_archive_madrid.json")
    change(raw)
    with pytest.raises(SourceError, match=match):
        parse_response(raw)


def test_points_weighted_mean_and_request_parameters(make_client, settings):
    madrid, barcelona = Point(40.4, -3.7, 3.0, "Madrid"), Point(41.4, 2.2, 1.0, "Barcelona")

    def answer(request: httpx.Request) -> httpx.Response:
        name = "madrid" if request.url.params["latitude"] == "40.4" else "barcelona"
        return httpx.Response(200, content=fixture_bytes(f"openmeteo_archive_{name}.json"))

    api = OpenMeteo(make_client(), settings=settings, today=NOW)
    with respx.mock:
        route = respx.get(settings.openmeteo_archive_url).mock(side_effect=answer)
        frame = api.history([madrid, barcelona], pd.Timestamp("2024-03-30", tz="UTC"), pd.Timestamp("2024-04-01", tz="UTC"))
    params = route.calls[0].request.url.params
    assert (params["timezone"], params["wind_speed_unit"]) == ("UTC", "ms")
    assert (params["start_date"], params["end_date"]) == ("2024-03-30", "2024-03-31")
    assert params["hourly"].split(",")[:3] == ["temperature_2m", "relative_humidity_2m", "wind_speed_10m"]
    a = _fixture("openmeteo_archive_madrid.json")["hourly"]["temperature_2m"]
    b = _fixture("openmeteo_archive_barcelona.json")["hourly"]["temperature_2m"]
    assert frame["temperature_c"].iloc[0] == pytest.approx((3 * a[0] + b[0]) / 4)
    # Madrid's last hour is missing: the mean is Barcelona's alone, not dragged towards zero
    assert frame["temperature_c"].iloc[-1] == pytest.approx(b[-1])


def test_recent_days_come_from_the_forecast_api(make_client, settings):
    api = OpenMeteo(make_client(), settings=settings, today=pd.Timestamp("2024-04-06", tz="UTC"))
    with respx.mock:
        archive = respx.get(settings.openmeteo_archive_url).mock(
            return_value=httpx.Response(200, content=fixture_bytes("openmeteo_archive_madrid.json")))
        forecast = respx.get(settings.openmeteo_forecast_url).mock(
            return_value=httpx.Response(200, content=fixture_bytes("openmeteo_forecast_madrid.json")))
        frame = api.history([Point(40.4, -3.7)], pd.Timestamp("2024-03-30", tz="UTC"), pd.Timestamp("2024-04-04", tz="UTC"))
    # archive lag 5 days before 6 April: the archive serves up to 1 April, the forecast API the rest
    assert archive.calls[0].request.url.params["end_date"] == "2024-03-31"
    assert forecast.calls[0].request.url.params["start_date"] == "2024-04-01"
    assert frame.index.min() == pd.Timestamp("2024-03-30", tz="UTC")
    assert frame.index.max() == pd.Timestamp("2024-04-03T23:00", tz="UTC")


def test_error_answer_is_a_clear_user_error(make_client, settings):
    api = OpenMeteo(make_client(), settings=settings, today=NOW)
    with respx.mock:
        respx.get(settings.openmeteo_archive_url).mock(
            return_value=httpx.Response(400, content=fixture_bytes("openmeteo_error.json")))
        with pytest.raises(UserInputError, match="Open-Meteo refused the request: Parameter 'start_date' is out"):
            api.history([Point(1, 2)], pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("1900-01-02", tz="UTC"))


@pytest.mark.parametrize(
    "text, match",
    [
        pytest.param("40.4", "expected 'lat,lon'", id="one-number"),
        pytest.param("95,10", "out of range", id="latitude"),
        pytest.param("40,10,-1", "out of range", id="negative-weight"),
        pytest.param("a,b", "expected 'lat,lon'", id="words"),
        pytest.param(" ; ", "no weather points", id="empty"),
    ],
)
def test_bad_points(text, match):
    with pytest.raises(UserInputError, match=match):
        parse_points(text)


def test_built_in_places_or_a_clear_error():
    assert [p.name for p in points_for("ES")][:2] == ["Madrid", "Barcelona"]
    assert points_for("XX", "1,2") == [Point(1.0, 2.0)]
    with pytest.raises(UserInputError, match="no built-in weather places for 'XX'.*--points"):
        points_for("XX")
