"""From a zone and a date range to the canonical table: load + reference + weather.

The flow is one way: validate the request (zone, range, credentials) before any
network → for each series, ask the store what is missing → fetch only that, in chunks,
saving each chunk (an interrupted backfill resumes where it stopped) → assemble the
requested range from the store → the canonical table with each column's source in
the metadata. ``gridcast data check`` then applies the usual quality checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from training.collect import EmptyRangeError, eia, entsoe, openmeteo
from training.collect.http import HttpClient
from training.collect.store import Interval, SeriesStore
from gridcast.errors import UserInputError
from gridcast.schema import LOAD, REFERENCE, REGION, TIMESTAMP
from gridcast.settings import Settings

log = logging.getLogger(__name__)

SOURCES = ("entsoe", "eia")
Progress = Callable[[str, int, int], None]  # (description, done_hours, total_hours)


def parse_time(text: str, *, name: str) -> pd.Timestamp:
    """A UTC timestamp from ``YYYY-MM-DD`` or ISO text (naive = UTC), floored to the hour.

    Raises:
        UserInputError: unreadable.
    """
    try:
        ts = pd.Timestamp(text)
    except (TypeError, ValueError):
        raise UserInputError(f"--{name} {text!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)", field=name) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.floor("1h")


def chunks(interval: Interval, days: int) -> list[Interval]:
    """Split an interval into pieces of at most ``days`` days."""
    lo, hi = interval
    step = pd.Timedelta(days=days)
    out = []
    while lo < hi:
        out.append((lo, min(lo + step, hi)))
        lo = out[-1][1]
    return out


@dataclass
class Collector:
    """Collects one zone's load and weather through the incremental store.

    Args:
        settings: URLs, tokens, chunk sizes.
        store: the incremental store.
        client_factory: makes an :class:`HttpClient` for a source name (tests inject
            one with a recording sleep).
        now: "now" (tests pin it).
        progress: called as chunks complete (the CLI draws a rich progress bar).
    """

    settings: Settings
    store: SeriesStore
    client_factory: Callable[[str, str | None], HttpClient] | None = None
    now: pd.Timestamp | None = None
    progress: Progress | None = None
    requests: list[tuple[str, Interval]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.now = self.now or pd.Timestamp.now(tz="UTC")
        self._clients: dict[str, HttpClient] = {}

    def client(self, source: str, hint: str | None = None) -> HttpClient:
        if source not in self._clients:
            if self.client_factory is not None:
                self._clients[source] = self.client_factory(source, hint)
            else:
                self._clients[source] = HttpClient.from_settings(self.settings, source, credential_hint=hint)
        return self._clients[source]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # ---- the public steps --------------------------------------------------------

    def collect(
        self,
        source: str,
        zone: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        *,
        points: str | None = None,
        weather: bool = True,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The canonical table of ``zone`` over ``[start, end)`` and its metadata.

        Raises:
            UserInputError: unknown source or zone, an empty or future range, a missing
                or rejected token, or no load data at all in the range.
        """
        zone = self._check(source, zone, start, end)
        self.requests = []  # this call's fetches only (a long-running watch calls us forever)
        weather_points = openmeteo.points_for(zone, points) if weather else []
        load, load_sources = self.load(source, zone, start, end)
        if load[LOAD].notna().sum() == 0:
            raise EmptyRangeError(
                f"{source} has no load data for {zone} between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC "
                "(empty range: too recent, before the zone existed, or a zone without data)",
                field="range",
            )
        # The span of actual load: the day-ahead forecast runs ahead of it, and trailing
        # rows without load would only read as a gap to `data check`.
        present = load.index[load[LOAD].notna()]
        index = pd.date_range(present.min(), present.max(), freq="1h")
        table = load.reindex(index)
        sources = dict(load_sources)
        if weather:
            wx = self.weather(zone, weather_points, start, end, key=_points_key(zone, points))
            table = table.join(wx.reindex(index))
            names = ", ".join(p.name or f"{p.lat:g},{p.lon:g}" for p in weather_points)
            sources.update({c: f"open-meteo (archive + forecast), weighted mean of {names}" for c in wx.columns})
        if "temperature_c" not in table:  # no weather asked for, or none to be had
            table["temperature_c"] = float("nan")
        table.index.name = TIMESTAMP
        table = table.reset_index()
        table.insert(1, REGION, zone)
        meta = {
            "synthetic": False,
            "freq": "1h",
            "sources": sources,
            "collect": {
                "source": source,
                "zone": zone,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "points": [p.__dict__ for p in weather_points],
                "requests": [(name, lo.isoformat(), hi.isoformat()) for name, (lo, hi) in self.requests],
            },
        }
        return table, meta

    def load(self, source: str, zone: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
        """Load (and the operator's forecast as ``reference_mw``) from the store, fetching what is missing."""
        if source == "entsoe":
            token = self.settings.entsoe_api_token
            source_api = entsoe.Entsoe(
                self.client("ENTSO-E", "ENTSOE_API_TOKEN"),
                token=token.get_secret_value() if token else None,
                settings=self.settings,
            )
            eic = entsoe.eic_for(zone)
            parts = []
            for column, process in ((LOAD, entsoe.PROCESS_ACTUAL), (REFERENCE, entsoe.PROCESS_DAY_AHEAD)):
                key = f"entsoe/{zone}/{process}"

                def fetch(lo, hi, process=process, column=column):
                    return source_api.fetch(zone, lo, hi, process=process).rename(column).to_frame()

                self._fill(key, start, end, fetch, f"ENTSO-E {zone} {process}")
                parts.append(self.store.slice(key, start, end).reindex(columns=[column]))
            frame = pd.concat(parts, axis=1)
            sources = {
                LOAD: f"entsoe: A65/A16 actual total load, {zone} ({eic})",
                REFERENCE: f"entsoe: A65/A01 day-ahead total load forecast, {zone} ({eic})",
            }
        else:
            key_ = self.settings.eia_api_key
            source_api = eia.Eia(
                self.client("EIA", "EIA_API_KEY"), api_key=key_.get_secret_value() if key_ else None,
                settings=self.settings,
            )
            key = f"eia/{zone}/region-data"
            self._fill(key, start, end, lambda lo, hi: source_api.fetch(zone, lo, hi), f"EIA {zone}")
            frame = self.store.slice(key, start, end).reindex(columns=[LOAD, REFERENCE])
            sources = {
                LOAD: f"eia: EIA-930 region-data demand (D), {zone}",
                REFERENCE: f"eia: EIA-930 region-data day-ahead demand forecast (DF), {zone}",
            }
        return frame.sort_index(), sources

    def weather(
        self, zone: str, points: list[openmeteo.Point], start: pd.Timestamp, end: pd.Timestamp, *, key: str
    ) -> pd.DataFrame:
        """Hourly weather (weighted mean over ``points``) from the store, fetching what is missing."""
        api = openmeteo.OpenMeteo(self.client("Open-Meteo"), settings=self.settings, today=self.now)
        store_key = f"openmeteo/{key}/history"
        self._fill(store_key, start, end, lambda lo, hi: api.history(points, lo, hi), f"weather {zone}")
        return self.store.slice(store_key, start, end)

    def weather_forecast(self, zone: str, points: list[openmeteo.Point], days: int) -> pd.DataFrame:
        """The next ``days`` of hourly weather (always fetched fresh: forecasts change)."""
        api = openmeteo.OpenMeteo(self.client("Open-Meteo"), settings=self.settings, today=self.now)
        frame = api.forecast(points, days)
        frame = frame.reset_index()
        frame.insert(1, REGION, zone)
        frame["issued_at"] = self.now
        return frame

    # ---- internals ---------------------------------------------------------------

    def _check(self, source: str, zone: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
        if source not in SOURCES:
            raise UserInputError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}", field="source")
        if not start < end:
            raise UserInputError(f"empty range: --start {start:%Y-%m-%d %H:%M} is not before --end", field="range")
        if start >= self.now:
            raise UserInputError(f"--start {start:%Y-%m-%d} is in the future; nothing to collect yet", field="range")
        if source == "entsoe":
            entsoe.eic_for(zone)
            return zone
        return eia.check_ba(zone)

    def _fill(self, key: str, start: pd.Timestamp, end: pd.Timestamp,
              fetch: Callable[[pd.Timestamp, pd.Timestamp], pd.DataFrame], label: str) -> None:
        end = min(end, self.now.ceil("1h"))
        pieces = [c for gap in self.store.missing(key, start, end) for c in chunks(gap, self.settings.entsoe_chunk_days)]
        total = int(sum((hi - lo) / pd.Timedelta(hours=1) for lo, hi in pieces))
        done = 0
        if not pieces:
            log.info("%s: %s..%s already stored", label, start, end)
        for lo, hi in pieces:
            log.info("%s: fetching %s..%s", label, lo, hi)
            self.requests.append((key, (lo, hi)))
            frame = fetch(lo, hi)
            self.store.save(key, frame, (lo, hi))
            done += int((hi - lo) / pd.Timedelta(hours=1))
            if self.progress is not None:
                self.progress(label, done, total)


def _points_key(zone: str, points: str | None) -> str:
    """Store key of a point set: the zone's built-in places, or a stable digest of explicit points."""
    if not points:
        return zone
    import hashlib

    return f"{zone}-{hashlib.sha1(points.encode()).hexdigest()[:10]}"
