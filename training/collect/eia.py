"""Grid load from the U.S. EIA hourly electric grid monitor (API v2, form EIA-930).

Request::

    GET /v2/electricity/rto/region-data/data/?api_key=...&frequency=hourly&data[0]=value
        &facets[respondent][]=PJM&facets[type][]=D&facets[type][]=DF
        &start=2024-01-01T01&end=2024-01-08T00&sort[0][column]=period&sort[0][direction]=asc
        &offset=0&length=5000

Answer::

    {"response": {"total": "336", "frequency": "hourly", "dateFormat": "YYYY-MM-DD\\"T\\"HH24",
                  "data": [{"period": "2024-01-01T01", "respondent": "PJM", "type": "D",
                            "type-name": "Demand", "value": "85000", "value-units": "megawatthours"}, ...]},
     "request": {...}, "apiVersion": "2.1.x"}

``type`` D is demand, DF the balancing authority's day-ahead demand forecast (our
``reference_mw``). With ``frequency=hourly`` the ``period`` is UTC and labels the hour
*ending* at that time (EIA-930 convention), so the canonical interval start is one hour
earlier. ``value`` is a string (sometimes a number, sometimes null). At most 5000 rows
come per page: we page with ``offset`` until ``response.total`` rows are read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from training.collect import SourceError
from training.collect.http import HttpClient
from gridcast.errors import UserInputError
from gridcast.settings import Settings

log = logging.getLogger(__name__)

#: EIA-930 balancing authorities / regions (a common subset)
BALANCING_AUTHORITIES: dict[str, str] = {
    "BPAT": "Bonneville Power Administration",
    "CISO": "California Independent System Operator",
    "DUK": "Duke Energy Carolinas",
    "ERCO": "Electric Reliability Council of Texas",
    "FPL": "Florida Power & Light",
    "ISNE": "ISO New England",
    "MISO": "Midcontinent Independent System Operator",
    "NYIS": "New York Independent System Operator",
    "PACE": "PacifiCorp East",
    "PJM": "PJM Interconnection",
    "SOCO": "Southern Company Services",
    "SWPP": "Southwest Power Pool",
    "TVA": "Tennessee Valley Authority",
    "US48": "United States Lower 48",
}
TYPES = {"D": "load_mw", "DF": "reference_mw"}
#: EIA-930 hourly periods label the end of the hour
PERIOD_IS_HOUR_ENDING = True


def check_ba(code: str) -> str:
    """The upper-cased code if it is a known balancing authority.

    Raises:
        UserInputError: an unknown code (the message lists the known ones).
    """
    upper = code.upper()
    if upper not in BALANCING_AUTHORITIES:
        raise UserInputError(
            f"unknown EIA balancing authority {code!r}; known: {', '.join(sorted(BALANCING_AUTHORITIES))}",
            field="zone",
        )
    return upper


def parse_page(payload: Any) -> tuple[pd.DataFrame, int]:
    """One page's rows as a long frame (period UTC interval start, type, value) and the total.

    Raises:
        SourceError: not the documented shape, or an unreadable period.
    """
    if isinstance(payload, dict) and "error" in payload:
        raise SourceError(f"EIA answered an error: {_error_text(payload['error'])}")
    try:
        body = payload["response"]
        rows = body["data"]
        total = int(body.get("total", len(rows)))
    except (KeyError, TypeError, ValueError):
        raise SourceError("EIA answer lacks response.data / response.total") from None
    if not isinstance(rows, list):
        raise SourceError("EIA response.data is not a list")
    if not rows:
        return pd.DataFrame({"timestamp": pd.DatetimeIndex([], tz="UTC"), "type": [], "value": []}), total
    frame = pd.DataFrame(rows)
    missing = {"period", "type", "value"} - set(frame.columns)
    if missing:
        raise SourceError(f"EIA rows lack {', '.join(sorted(missing))}")
    try:
        ts = pd.to_datetime(frame["period"], format="%Y-%m-%dT%H").dt.tz_localize("UTC")
    except (TypeError, ValueError) as exc:
        raise SourceError(f"EIA period is not YYYY-MM-DDTHH (hourly UTC): {exc}") from None
    if PERIOD_IS_HOUR_ENDING:
        ts = ts - pd.Timedelta(hours=1)
    out = pd.DataFrame(
        {"timestamp": ts, "type": frame["type"].astype(str), "value": pd.to_numeric(frame["value"], errors="coerce")}
    )
    return out, total


class Eia:
    """Demand (D) and day-ahead demand forecast (DF) per balancing authority.

    Args:
        client: the shared HTTP client.
        api_key: the key (``EIA_API_KEY``).
        settings: URL and page length.
    """

    def __init__(self, client: HttpClient, *, api_key: str | None, settings: Settings) -> None:
        if not api_key:
            raise UserInputError("EIA needs an API key: set EIA_API_KEY (or GRIDCAST_EIA_API_KEY)", field="token")
        self.client = client
        self.api_key = api_key
        self.settings = settings

    def fetch(
        self,
        ba: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Hourly ``load_mw`` and ``reference_mw`` of ``ba`` for interval starts in ``[start, end)``."""
        ba = check_ba(ba)
        shift = pd.Timedelta(hours=1 if PERIOD_IS_HOUR_ENDING else 0)
        first, last = start + shift, end - pd.Timedelta(hours=1) + shift  # periods, both inclusive
        base = [
            ("api_key", self.api_key),
            ("frequency", "hourly"),
            ("data[0]", "value"),
            ("facets[respondent][]", ba),
            *(("facets[type][]", t) for t in TYPES),
            ("start", first.strftime("%Y-%m-%dT%H")),
            ("end", last.strftime("%Y-%m-%dT%H")),
            ("sort[0][column]", "period"),
            ("sort[0][direction]", "asc"),
        ]
        pages, offset, total = [], 0, None
        length = self.settings.eia_page_length
        while total is None or offset < total:
            params = [*base, ("offset", str(offset)), ("length", str(length))]
            page, total = parse_page(_json(self.client.get(self.settings.eia_url, params)))
            pages.append(page)
            if page.empty:
                break  # a total that over-promises must not loop forever
            offset += len(page)
            if progress is not None:
                progress(len(page))
        long = pd.concat(pages, ignore_index=True)
        long = long[long["type"].isin(TYPES) & long["value"].notna()]
        if long.empty:
            return pd.DataFrame(columns=list(TYPES.values()), index=pd.DatetimeIndex([], tz="UTC"), dtype="float64")
        wide = long.pivot_table(index="timestamp", columns="type", values="value", aggfunc="last")
        wide = wide.rename(columns=TYPES).reindex(columns=list(TYPES.values()))
        wide.columns.name = None
        wide = wide[(wide.index >= start) & (wide.index < end)].sort_index()
        return wide


def _json(response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SourceError(f"EIA answered something that is not JSON ({response.text[:80]!r})") from None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)
    return str(error)
