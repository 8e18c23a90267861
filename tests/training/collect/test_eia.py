"""EIA API v2: pagination, hour-ending periods, D/DF, nulls, errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
import respx

from training.collect import AuthError, SourceError
from training.collect.eia import Eia, check_ba, parse_page
from gridcast.errors import UserInputError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collect"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()

START = pd.Timestamp("2024-03-30", tz="UTC")
END = pd.Timestamp("2024-04-01", tz="UTC")


def _pages(request: httpx.Request) -> httpx.Response:
    offset = int(request.url.params["offset"])
    name = {0: "eia_region_data_PJM_page1.json", 60: "eia_region_data_PJM_page2.json"}[offset]
    return httpx.Response(200, content=fixture_bytes(name), headers={"Content-Type": "application/json"})


def test_pages_until_total_and_pivots_demand_and_forecast(make_client, settings):
    api = Eia(make_client("EIA", "EIA_API_KEY"), api_key="k", settings=settings)
    with respx.mock:
        route = respx.get(settings.eia_url).mock(side_effect=_pages)
        frame = api.fetch("pjm", START, END)
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "60"]
    params = route.calls[0].request.url.params
    assert params.get_list("facets[type][]") == ["D", "DF"]
    assert params["facets[respondent][]"] == "PJM" and params["length"] == "60"
    # interval starts [START, END) are periods (hour ending) START+1h .. END, both inclusive
    assert (params["start"], params["end"]) == ("2024-03-30T01", "2024-04-01T00")
    assert list(frame.columns) == ["load_mw", "reference_mw"]
    assert frame.index[0] == START and frame.index[-1] == END - pd.Timedelta("1h")
    assert len(frame) == 48


def test_values_strings_numbers_and_nulls():
    page = json.loads(fixture_bytes("eia_region_data_PJM_page1.json"))
    rows = page["response"]["data"]
    frame, total = parse_page(page)
    assert total == 96
    null_row, number_row = rows[10], rows[11]
    assert null_row["value"] is None and isinstance(number_row["value"], int)
    ts = pd.Timestamp(null_row["period"] + ":00", tz="UTC") - pd.Timedelta("1h")
    got = frame[(frame["timestamp"] == ts)].set_index("type")["value"]
    assert pd.isna(got[null_row["type"]])
    assert got[number_row["type"]] == number_row["value"]
    # a string value parses to its number
    assert frame["value"].iloc[0] == float(rows[0]["value"])


@pytest.mark.parametrize(
    "payload, match",
    [
        pytest.param({"data": []}, "lacks response.data", id="no-response"),
        pytest.param({"response": {"data": "nope", "total": 1}}, "not a list", id="data-not-list"),
        pytest.param({"response": {"data": [{"period": "2024-03-30", "type": "D", "value": "1"}], "total": 1}},
                     "not YYYY-MM-DDTHH", id="daily-period"),
        pytest.param({"response": {"data": [{"period": "2024-03-30T01", "value": "1"}], "total": 1}},
                     "lack type", id="no-type"),
        pytest.param({"error": {"code": "INVALID_FACET", "message": "Invalid facet 'respondent'"}},
                     "Invalid facet", id="error-body"),
    ],
)
def test_malformed_pages(payload, match):
    with pytest.raises(SourceError, match=match):
        parse_page(payload)


def test_invalid_key_403(make_client, settings):
    api = Eia(make_client("EIA", "EIA_API_KEY"), api_key="bad", settings=settings)
    with respx.mock:
        respx.get(settings.eia_url).mock(return_value=httpx.Response(403, content=fixture_bytes("eia_error_api_key.json")))
        with pytest.raises(AuthError, match=r"EIA rejected the credentials \(HTTP 403\); check EIA_API_KEY"):
            api.fetch("PJM", START, END)


def test_not_json_is_a_source_error(make_client, settings):
    api = Eia(make_client("EIA"), api_key="k", settings=settings)
    with respx.mock:
        respx.get(settings.eia_url).mock(return_value=httpx.Response(200, text="<html>gateway</html>"))
        with pytest.raises(SourceError, match="not JSON"):
            api.fetch("PJM", START, END)


def test_total_that_over_promises_does_not_loop(make_client, settings):
    api = Eia(make_client("EIA"), api_key="k", settings=settings)
    empty = {"response": {"total": "500", "data": []}}
    with respx.mock:
        route = respx.get(settings.eia_url).mock(return_value=httpx.Response(200, json=empty))
        frame = api.fetch("PJM", START, END)
    assert frame.empty and route.call_count == 1


def test_unknown_balancing_authority_and_missing_key(make_client, settings):
    with pytest.raises(UserInputError, match="unknown EIA balancing authority 'XYZ'.*PJM"):
        check_ba("XYZ")
    with pytest.raises(UserInputError, match="EIA_API_KEY"):
        Eia(make_client(), api_key="", settings=settings)
