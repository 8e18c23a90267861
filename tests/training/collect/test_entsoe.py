"""ENTSO-E: GL_MarketDocument parsing (UTC intervals, clock change, 15-min, A03), errors, chunking."""

from __future__ import annotations

from pathlib import Path
import httpx
import pandas as pd
import pytest
import respx

from training.collect import AuthError, SourceError
from training.collect.entsoe import Entsoe, eic_for, parse_document
from gridcast.errors import UserInputError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collect"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def actual() -> pd.Series:
    return parse_document(fixture_bytes("entsoe_A65_A16_ES.xml"))


def test_parse_is_hourly_utc_across_the_spring_clock_change(actual):
    # three local days (30 Mar: 24 h, 31 Mar: 23 h — CET->CEST —, 1 Apr: 24 h) in UTC
    assert str(actual.index.tz) == "UTC"
    assert actual.index[0] == pd.Timestamp("2024-03-29T23:00", tz="UTC")
    assert actual.index[-1] == pd.Timestamp("2024-04-01T21:00", tz="UTC")
    assert len(actual) == 24 + 23 + 24
    assert (actual.index.to_series().diff().dropna() == pd.Timedelta("1h")).all()


def test_quarter_hours_are_averaged_to_the_hour():
    # The DST day is PT15M: 4 quarter hours per hour, quantities q, q+4, q+8, q+12 in the fixture.
    doc = fixture_bytes("entsoe_A65_A16_ES.xml").decode()
    day = doc.split("<mRID>2</mRID>")[1].split("</TimeSeries>")[0]
    quantities = [float(q.split("</quantity>")[0]) for q in day.split("<quantity>")[1:]]
    assert len(quantities) == 92
    hourly = parse_document(doc.encode())
    first_hour = pd.Timestamp("2024-03-30T23:00", tz="UTC")
    assert hourly[first_hour] == pytest.approx(sum(quantities[:4]) / 4)


def test_curve_a03_carries_the_previous_value_over_omitted_positions(actual):
    # Positions 6 and 7 of the 1 April series are omitted (same value as position 5).
    start = pd.Timestamp("2024-03-31T22:00", tz="UTC")
    fifth = actual[start + pd.Timedelta(hours=4)]
    assert actual[start + pd.Timedelta(hours=5)] == fifth
    assert actual[start + pd.Timedelta(hours=6)] == fifth
    assert actual[start + pd.Timedelta(hours=7)] != fifth


def test_acknowledgement_no_data_is_empty():
    assert parse_document(fixture_bytes("entsoe_acknowledgement_no_data.xml")).empty


@pytest.mark.parametrize(
    "body, error, match",
    [
        pytest.param(b"<GL_MarketDocument><TimeSeries>", SourceError, "malformed XML", id="truncated"),
        pytest.param(b"<html>Service maintenance</html>", SourceError, "expected GL_MarketDocument", id="html"),
        pytest.param(
            fixture_bytes("entsoe_A65_A16_ES.xml").replace(b"<quantity>2", b"<quantity>x", 1),
            SourceError, "non-numeric", id="bad-quantity",
        ),
        pytest.param(
            fixture_bytes("entsoe_acknowledgement_no_data.xml").replace(b"<code>999</code>", b"<code>998</code>")
            .replace(b"No matching data found", b"Parameter outBiddingZone_Domain is not valid"),
            UserInputError, "rejected the request", id="ack-invalid-parameter",
        ),
    ],
)
def test_malformed_bodies(body, error, match):
    with pytest.raises(error, match=match):
        parse_document(body)


def test_unknown_zone_and_eic():
    assert eic_for("ES") == "10YES-REE------0"
    assert eic_for("10YES-REE------0") == "10YES-REE------0"
    with pytest.raises(UserInputError, match="unknown ENTSO-E bidding zone 'Spain'.*DE_LU"):
        eic_for("Spain")


def test_missing_token_fails_before_any_request(make_client, settings):
    with pytest.raises(UserInputError, match="ENTSOE_API_TOKEN"):
        Entsoe(make_client(), token=None, settings=settings)


def test_long_range_is_chunked_to_one_year_per_request(make_client, settings):
    api = Entsoe(make_client("ENTSO-E"), token="t0ken", settings=settings)
    with respx.mock:
        route = respx.get(settings.entsoe_url).mock(
            return_value=httpx.Response(200, content=fixture_bytes("entsoe_A65_A16_ES.xml"))
        )
        api.fetch("ES", pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2024-04-01", tz="UTC"))
    ranges = [(c.request.url.params["periodStart"], c.request.url.params["periodEnd"]) for c in route.calls]
    assert ranges == [
        ("202201010000", "202301010000"),
        ("202301010000", "202401010000"),
        ("202401010000", "202404010000"),
    ]
    params = route.calls[0].request.url.params
    assert (params["documentType"], params["processType"], params["outBiddingZone_Domain"]) == (
        "A65", "A16", "10YES-REE------0"
    )
    assert params["securityToken"] == "t0ken"


def test_http_400_acknowledgement_is_read_not_retried(make_client, settings, sleeps):
    api = Entsoe(make_client("ENTSO-E"), token="t", settings=settings)
    with respx.mock:
        route = respx.get(settings.entsoe_url).mock(
            return_value=httpx.Response(400, content=fixture_bytes("entsoe_acknowledgement_no_data.xml"))
        )
        out = api.fetch("ES", pd.Timestamp("2030-01-01", tz="UTC"), pd.Timestamp("2030-01-02", tz="UTC"))
    assert out.empty and route.call_count == 1 and sleeps == []


def test_401_is_an_auth_error(make_client, settings):
    api = Entsoe(make_client("ENTSO-E", "ENTSOE_API_TOKEN"), token="wrong", settings=settings)
    with respx.mock:
        respx.get(settings.entsoe_url).mock(return_value=httpx.Response(401, text="<html>Unauthorized</html>"))
        with pytest.raises(AuthError, match="ENTSOE_API_TOKEN"):
            api.fetch("ES", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
