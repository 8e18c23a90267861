"""Grid load from the ENTSO-E Transparency Platform (actual and day-ahead total load).

Request (RESTful GET, token in ``securityToken``)::

    documentType=A65  processType=A16 (realised) | A01 (day ahead)
    outBiddingZone_Domain=<EIC>  periodStart=YYYYMMDDHHMM  periodEnd=YYYYMMDDHHMM  (UTC)

Answer: a ``GL_MarketDocument`` whose ``TimeSeries/Period`` blocks carry a UTC
``timeInterval`` (start, end), a ``resolution`` (PT15M, PT30M, PT60M) and
``Point``\\ s (``position`` from 1, ``quantity`` in MW). Curve type A03 omits a point
when the value repeats, so missing positions carry the previous value forward.
No data, or a bad parameter, comes back as an ``Acknowledgement_MarketDocument``
with a ``Reason`` (code 999 = no matching data). The platform serves at most one year
per request, so long ranges are chunked. Sub-hourly series are averaged to hourly
(MW is a rate, so the mean over the hour is the hourly load).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np
import pandas as pd

from training.collect import SourceError
from training.collect.http import HttpClient
from gridcast.errors import UserInputError
from gridcast.settings import Settings

log = logging.getLogger(__name__)

#: bidding zone -> EIC code (a common subset; any 16-character EIC is accepted too)
ZONES: dict[str, str] = {
    "AT": "10YAT-APG------L",
    "BE": "10YBE----------2",
    "CH": "10YCH-SWISSGRIDZ",
    "CZ": "10YCZ-CEPS-----N",
    "DE_LU": "10Y1001A1001A82H",
    "DK_1": "10YDK-1--------W",
    "DK_2": "10YDK-2--------M",
    "ES": "10YES-REE------0",
    "FI": "10YFI-1--------U",
    "FR": "10YFR-RTE------C",
    "IT_NORD": "10Y1001A1001A73I",
    "NL": "10YNL----------L",
    "NO_1": "10YNO-1--------2",
    "PL": "10YPL-AREA-----S",
    "PT": "10YPT-REN------W",
    "SE_3": "10Y1001A1001A46L",
}
PROCESS_ACTUAL = "A16"
PROCESS_DAY_AHEAD = "A01"
_EIC = re.compile(r"^[0-9]{2}[A-Z0-9\-]{14}$")
_RESOLUTIONS = {"PT15M": "15min", "PT30M": "30min", "PT60M": "1h", "PT1H": "1h"}
NO_DATA_CODE = "999"


def eic_for(zone: str) -> str:
    """The EIC code of a zone name (``ES``) or the EIC itself.

    Raises:
        UserInputError: neither a known zone nor an EIC code.
    """
    if zone in ZONES:
        return ZONES[zone]
    if _EIC.match(zone):
        return zone
    raise UserInputError(
        f"unknown ENTSO-E bidding zone {zone!r}; known: {', '.join(sorted(ZONES))} (or pass a 16-character EIC code)",
        field="zone",
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _text(elem: ET.Element | None, name: str) -> str | None:
    child = None if elem is None else _child(elem, name)
    return None if child is None or child.text is None else child.text.strip()


def parse_document(xml: str | bytes) -> pd.Series:
    """Points of a GL_MarketDocument as an hourly MW series (UTC, interval start).

    An Acknowledgement with "no matching data" is an empty series.

    Raises:
        SourceError: malformed XML, an unknown resolution, or an Acknowledgement
            other than "no data".
        UserInputError: an Acknowledgement that rejects our parameters.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise SourceError(f"ENTSO-E answered malformed XML ({exc})") from None
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        reason = _child(root, "Reason")
        code, text = _text(reason, "code"), _text(reason, "text") or "no reason given"
        if code == NO_DATA_CODE or "no matching data" in text.lower():
            return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))
        raise UserInputError(f"ENTSO-E rejected the request: {text} (reason {code})", field="zone")
    if kind != "GL_MarketDocument":
        raise SourceError(f"ENTSO-E answered a {kind}, expected GL_MarketDocument")
    parts: list[pd.Series] = []
    for series in _children(root, "TimeSeries"):
        curve = _text(series, "curveType") or "A01"
        for period in _children(series, "Period"):
            parts.append(_parse_period(period, carry_forward=(curve == "A03")))
    if not parts:
        return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))
    raw = pd.concat(parts).sort_index()
    raw = raw[~raw.index.duplicated(keep="last")]
    # A partially filled hour (e.g. one of four quarter hours) would bias the mean; drop it.
    grouped = raw.resample("1h")
    hourly = grouped.mean()[grouped.count() == grouped.size()]
    return hourly.dropna()


def _parse_period(period: ET.Element, *, carry_forward: bool) -> pd.Series:
    interval = _child(period, "timeInterval")
    resolution = _text(period, "resolution")
    if interval is None or resolution is None:
        raise SourceError("ENTSO-E Period lacks timeInterval or resolution")
    if resolution not in _RESOLUTIONS:
        raise SourceError(f"ENTSO-E resolution {resolution!r} is not supported (expected PT15M, PT30M or PT60M)")
    step = pd.Timedelta(_RESOLUTIONS[resolution])
    try:
        start = pd.Timestamp(_text(interval, "start")).tz_convert("UTC")
        end = pd.Timestamp(_text(interval, "end")).tz_convert("UTC")
    except (TypeError, ValueError) as exc:
        raise SourceError(f"ENTSO-E timeInterval is unreadable ({exc})") from None
    n = int((end - start) / step)
    values = np.full(n, np.nan)
    for point in _children(period, "Point"):
        try:
            position = int(_text(point, "position") or "")
            quantity = float(_text(point, "quantity") or "")
        except ValueError:
            raise SourceError("ENTSO-E Point has a non-numeric position or quantity") from None
        if not 1 <= position <= n:
            raise SourceError(f"ENTSO-E Point position {position} outside its period of {n} steps")
        values[position - 1] = quantity
    series = pd.Series(values, index=pd.date_range(start, periods=n, freq=step))
    return series.ffill() if carry_forward else series


class Entsoe:
    """Actual and day-ahead total load per bidding zone.

    Args:
        client: the shared HTTP client.
        token: the security token (``ENTSOE_API_TOKEN``).
        settings: URL and chunk size.
    """

    def __init__(self, client: HttpClient, *, token: str | None, settings: Settings) -> None:
        if not token:
            raise UserInputError(
                "ENTSO-E needs a security token: set ENTSOE_API_TOKEN (or GRIDCAST_ENTSOE_API_TOKEN)", field="token"
            )
        self.client = client
        self.token = token
        self.settings = settings

    def fetch(
        self,
        zone: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        *,
        process: str = PROCESS_ACTUAL,
        progress: Callable[[int], None] | None = None,
    ) -> pd.Series:
        """Hourly MW of ``zone`` over ``[start, end)``, one request per chunk of at most a year."""
        eic = eic_for(zone)
        chunk = pd.Timedelta(days=self.settings.entsoe_chunk_days)
        parts = []
        lo = start
        while lo < end:
            hi = min(lo + chunk, end)
            params = [
                ("securityToken", self.token),
                ("documentType", "A65"),
                ("processType", process),
                ("outBiddingZone_Domain", eic),
                ("periodStart", lo.strftime("%Y%m%d%H%M")),
                ("periodEnd", hi.strftime("%Y%m%d%H%M")),
            ]
            # ENTSO-E answers "no data" and bad parameters with HTTP 400 + an Acknowledgement document.
            response = self.client.get(self.settings.entsoe_url, params, accept=(200, 400))
            parts.append(parse_document(response.content))
            if progress is not None:
                progress(int((hi - lo) / pd.Timedelta(hours=1)))
            lo = hi
        series = pd.concat(parts).sort_index() if parts else pd.Series(dtype="float64")
        series = series[~series.index.duplicated(keep="last")]
        return series[(series.index >= start) & (series.index < end)]
