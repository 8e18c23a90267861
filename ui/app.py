"""The gridcast Gradio app: a thin client of the service API, in four tabs.

* **Live** — per region, the recent actuals from the service's state store and the
  latest forecast the streaming bridge published (``POST /recent``), refreshed on a
  timer. With no bridge (the embedded default) it says so plainly and shows the demo
  history with an on-demand forecast instead.
* **Forecast** — region, model, horizon, interval levels, an optional history CSV
  (canonical columns or mapped ones) → an interactive chart with bands, a table, a CSV
  download; other models side by side on the same chart (``POST /forecast_batch``).
* **Models** — served versions, training ranges, validation metrics, the comparison
  with the seasonal-naive baseline (and the reference forecast when recorded), error by
  lead when the metadata has it (``GET /models``).
* **Data quality** — a demo data set (clean, or with injected faults) or an upload →
  the quality report and the data layer's plots (:mod:`training.data.quality`,
  :mod:`training.data.plots`; data-layer functions, not model code).

Every number about a forecast comes from the service; nothing here imports model or
feature code. The functions behind the components (:func:`live_view`,
:func:`forecast_view`, :func:`models_view`, :func:`quality_view`) are plain functions
of a :class:`~ui.client.ServiceClient`, so tests call them directly against a real
service. Errors a person can act on (service unreachable, a bad upload naming the
column or row, a fallback) become a status line and a toast — never a traceback.

Nothing happens at import: :func:`build_app` builds the Blocks, :func:`service_ui_app`
wraps them for the Bento service (mounted at ``/ui``), ``gridcast ui`` launches them
stand-alone.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from gridcast.errors import GridcastError, UserInputError
from ui.client import ServiceClient, ServiceError, ServiceUnavailable

if TYPE_CHECKING:
    import gradio as gr
    import plotly.graph_objects as go
    from fastapi import FastAPI
    from matplotlib.figure import Figure

    from gridcast.settings import Settings

logger = logging.getLogger(__name__)

ALIASES = ("best", "lstm", "sarimax", "ensemble", "naive")
LEVEL_CHOICES = ("50", "80", "90", "95", "99")
DEMO_CLEAN = "synthetic demo (clean)"
DEMO_FAULTY = "synthetic demo with injected faults"
UPLOADED = "uploaded file"
#: band colours, widest level first (lightest)
BAND_ALPHA = (0.15, 0.28, 0.4, 0.5)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
#: how many past observations the forecast chart shows for context
CONTEXT_POINTS = 7 * 24
#: demo data set size for the quality tab (small: it runs in a request)
DEMO_DAYS = 60


# ---- time zones and labels -----------------------------------------------------------


def zone(name: str | None) -> ZoneInfo:
    """The region's zone; UTC when unknown (the chart then says UTC only)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def utc_offset_label(tz: ZoneInfo, at: pd.Timestamp | None = None) -> str:
    """``'Asia/Ho_Chi_Minh, UTC+07:00'`` — the zone and its offset at ``at`` (now by default)."""
    when = (at or pd.Timestamp.now(tz="UTC")).tz_convert(tz)
    return f"{tz.key}, UTC{when.strftime('%z')[:3]}:{when.strftime('%z')[3:]}"


def _when(ts: Any, tz: ZoneInfo) -> str:
    """``'2024-03-01 12:00 UTC (19:00 Asia/Ho_Chi_Minh)'``."""
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    local = t.tz_convert(tz)
    return f"{t:%Y-%m-%d %H:%M} UTC ({local:%Y-%m-%d %H:%M} {tz.key})"


def region_timezone(models: Sequence[dict[str, Any]], region: str, settings: Settings) -> ZoneInfo:
    """The zone the models were trained with (their metadata), else the settings' demo zone."""
    for m in models:
        if m.get("region") == region:
            tz = m.get("timezone") or (m.get("metadata") or {}).get("timezone")
            if tz:
                return zone(tz)
    return zone(settings.region_timezone)


# ---- the catalog of served models -------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """What ``GET /models`` says is served: regions and the aliases per region."""

    models: list[dict[str, Any]]

    @property
    def regions(self) -> list[str]:
        return sorted({str(m["region"]) for m in self.models})

    def aliases(self, region: str | None) -> list[str]:
        served = sorted({str(m["alias"]) for m in self.models if m.get("region") == region})
        return ["best", *served] if served else ["best"]


def load_catalog(client: ServiceClient) -> Catalog:
    """The served models (raises :class:`ServiceUnavailable` when the service is down)."""
    return Catalog(client.models())


# ---- the forecast chart and table ----------------------------------------------------------


def points_frame(result: dict[str, Any]) -> pd.DataFrame:
    """A result's points as a frame: UTC index, ``mean`` and ``lo-L``/``hi-L`` per level."""
    rows = []
    for p in result.get("points", []):
        row = {"timestamp": p["timestamp"], "mean": p["mean"]}
        for level, bounds in (p.get("intervals") or {}).items():
            row[f"lo-{level}"] = bounds["lower"]
            row[f"hi-{level}"] = bounds["upper"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["mean"], index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True), name="timestamp")
    return frame


def observations_frame(observations: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``/recent`` observations (or uploaded rows) as a frame on a UTC index."""
    if not observations:
        return pd.DataFrame(columns=["load_mw"], index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    frame = pd.DataFrame(list(observations))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True), name="timestamp")
    return frame.sort_index()


def _levels_of(result: dict[str, Any]) -> list[int]:
    return sorted(int(v) for v in result.get("level") or [])


def _label(result: dict[str, Any]) -> str:
    alias = result.get("model", "?")
    asked = result.get("requested_model")
    label = f"{alias} (for {asked})" if asked and asked != alias else str(alias)
    return label + (" — fallback" if result.get("fallback") else "")


def forecast_figure(
    results: Sequence[dict[str, Any]],
    *,
    history: pd.DataFrame | None,
    tz: ZoneInfo,
    title: str,
) -> go.Figure:
    """Actuals, the first result with its interval bands, and other results' means.

    x is UTC (the axis says so); hovering shows the region's local time too.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    offset = utc_offset_label(tz)
    hover = "%{x|%Y-%m-%d %H:%M} UTC<br>%{customdata} local<br>%{y:,.1f} MW<extra>%{fullData.name}</extra>"

    def local(index: pd.DatetimeIndex) -> list[str]:
        return [f"{t:%Y-%m-%d %H:%M}" for t in index.tz_convert(tz)]

    if history is not None and len(history) and "load_mw" in history:
        h = history["load_mw"].astype(float)
        fig.add_trace(go.Scatter(x=h.index, y=h.to_numpy(), name="actual load", mode="lines",
                                 line={"color": "#444", "width": 1.5}, customdata=local(h.index),
                                 hovertemplate=hover))
    for k, result in enumerate(results):
        frame = points_frame(result)
        if frame.empty:
            continue
        colour = COLOURS[k % len(COLOURS)]
        if k == 0:
            for j, level in enumerate(sorted(_levels_of(result), reverse=True)):
                lo, hi = frame.get(f"lo-{level}"), frame.get(f"hi-{level}")
                if lo is None or hi is None:
                    continue
                x = list(frame.index) + list(frame.index[::-1])
                y = list(hi.to_numpy()) + list(lo.to_numpy()[::-1])
                fig.add_trace(go.Scatter(
                    x=x, y=y, fill="toself", mode="lines", line={"width": 0}, name=f"{level}% interval",
                    fillcolor=_rgba(colour, BAND_ALPHA[min(j, len(BAND_ALPHA) - 1)]), hoverinfo="skip",
                ))
        fig.add_trace(go.Scatter(
            x=frame.index, y=frame["mean"].to_numpy(), name=f"forecast: {_label(result)}",
            mode="lines+markers", marker={"size": 4}, line={"color": colour, "width": 2, "dash": "solid" if k == 0 else "dash"},
            customdata=local(frame.index), hovertemplate=hover, meta="forecast-mean",
        ))
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        xaxis_title=f"time (UTC) — local time of the region: {offset} (hover)",
        yaxis_title="load (MW)",
        hovermode="x unified", template="plotly_white", height=460,
        legend={"orientation": "h", "y": -0.25}, margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def forecast_table(results: Sequence[dict[str, Any]], tz: ZoneInfo) -> pd.DataFrame:
    """The first result's points (mean and bounds per level, MW), other models' means beside."""
    first = points_frame(results[0])
    table = pd.DataFrame({
        "timestamp (UTC)": [f"{t:%Y-%m-%d %H:%M}" for t in first.index],
        f"local time ({tz.key})": [f"{t:%Y-%m-%d %H:%M}" for t in first.index.tz_convert(tz)],
        f"{results[0].get('model')} mean (MW)": first["mean"].round(2).to_numpy(),
    })
    for level in _levels_of(results[0]):
        for side, name in (("lo", "lower"), ("hi", "upper")):
            col = f"{side}-{level}"
            if col in first:
                table[f"{name} {level}% (MW)"] = first[col].round(2).to_numpy()
    for other in results[1:]:
        means = points_frame(other)["mean"].reindex(first.index)
        table[f"{_label(other)} mean (MW)"] = means.round(2).to_numpy()
    return table


# ---- history uploads -----------------------------------------------------------------------


def read_history_csv(
    path: str | Path,
    *,
    time_col: str = "timestamp",
    load_col: str = "load_mw",
    temp_col: str | None = "temperature_c",
) -> pd.DataFrame:
    """An uploaded history CSV → observations on a UTC index (``load_mw``, maybe ``temperature_c``).

    Canonical files need no mapping; other files name their columns. Timestamps
    without an offset are read as UTC. Every problem names the column, and the row
    where one row is at fault (row 1 = the first data row, line 2 of the file).

    Raises:
        UserInputError: unreadable file, a missing column, a bad timestamp or number.
    """
    name = Path(path).name
    time_col, load_col = (time_col or "timestamp").strip(), (load_col or "load_mw").strip()
    temp_col = (temp_col or "").strip() or None
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise UserInputError(f"{name} is not a readable CSV file ({type(exc).__name__})", field="history") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    columns = ", ".join(repr(c) for c in raw.columns)
    for col, what in ((time_col, "timestamp"), (load_col, "load")):
        if col not in raw.columns:
            raise UserInputError(f"{name} has no column {col!r} (the {what} column); its columns are: {columns}",
                                 field=col)
    if temp_col and temp_col not in raw.columns:
        if temp_col != "temperature_c":  # a mapping the person typed must exist; the default may be absent
            raise UserInputError(f"{name} has no column {temp_col!r} (the temperature column); "
                                 f"its columns are: {columns}", field=temp_col)
        temp_col = None
    if raw.empty:
        raise UserInputError(f"{name} has a header but no rows", field="history")

    stamps = pd.to_datetime(raw[time_col], utc=True, errors="coerce", format="ISO8601")
    _first_bad(stamps.isna(), raw[time_col], name, time_col, "is not a timestamp (use ISO 8601, e.g. 2024-01-31T13:00Z)")
    out = pd.DataFrame(index=pd.DatetimeIndex(stamps, name="timestamp"))
    load = pd.to_numeric(raw[load_col], errors="coerce")
    _first_bad(load.isna(), raw[load_col], name, load_col, "is not a number (MW)")
    out["load_mw"] = load.to_numpy(dtype=float)
    if temp_col:
        temp = pd.to_numeric(raw[temp_col].replace("", None), errors="coerce")
        bad = temp.isna() & (raw[temp_col].str.strip() != "")
        _first_bad(bad, raw[temp_col], name, temp_col, "is not a number (°C)")
        out["temperature_c"] = temp.to_numpy(dtype=float)
    return out


def _first_bad(mask: pd.Series, values: pd.Series, name: str, column: str, problem: str) -> None:
    if mask.any():
        pos = int(mask.to_numpy().argmax())
        raise UserInputError(
            f"{name}, row {pos + 1} (line {pos + 2}), column {column!r}: {values.iloc[pos]!r} {problem}"
            + (f"; {int(mask.sum()) - 1} more such rows" if mask.sum() > 1 else ""),
            field=column,
        )


def history_payload(frame: pd.DataFrame, max_points: int) -> list[dict[str, Any]]:
    """The last ``max_points`` rows as ``history`` observations (missing temperature omitted)."""
    rows = []
    for ts, row in frame.tail(max_points).iterrows():
        obs: dict[str, Any] = {"timestamp": ts.isoformat(), "load_mw": float(row["load_mw"])}
        temp = row.get("temperature_c")
        if temp is not None and pd.notna(temp):
            obs["temperature_c"] = float(temp)
        rows.append(obs)
    return rows


# ---- the views (plain functions of a client: what the tests call) ------------------------------


@dataclass
class View:
    """What a tab shows: a status line, and notes that also pop up as warnings."""

    status: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class LiveView(View):
    figure: Any = None
    live: bool = False
    n_observations: int = 0


@dataclass
class ForecastView(View):
    figure: Any = None
    table: pd.DataFrame | None = None
    csv_path: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ModelsView(View):
    table: pd.DataFrame | None = None
    figure: Any = None
    lead_figure: Any = None


@dataclass
class QualityView(View):
    checks: pd.DataFrame | None = None
    figures: list[Any] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def _result_notes(result: dict[str, Any]) -> list[str]:
    notes = []
    if result.get("fallback"):
        notes.append(f"Fallback used for {result.get('requested_model')}: seasonal naive answered "
                     f"({result.get('fallback_reason') or 'the model could not answer'}).")
    if result.get("degraded"):
        notes.append(f"Degraded: {', '.join(result['degraded'])} unavailable; the answer was computed anyway.")
    return notes


def live_view(client: ServiceClient, region: str, *, settings: Settings, n: int = 168) -> LiveView:
    """Recent actuals and the latest forecast for ``region`` (the Live tab).

    The bridge publishes the latest forecast; when it has not (embedded mode, no
    Kafka), the view says "no live data" and asks the service for a forecast on demand
    from the demo history in its state store.
    """
    catalog = load_catalog(client)
    tz = region_timezone(catalog.models, region, settings)
    recent = client.recent(region, n)
    history = observations_frame(recent.get("observations") or [])
    published = recent.get("forecast")
    view = LiveView(live=published is not None, n_observations=len(history))
    lines = []
    if published is not None:
        result = published
        lines.append(f"**Live** — latest published forecast issued {_when(result.get('issued_at'), tz)} "
                     f"by {_label(result)} (`{result.get('model_version', '?')}`).")
    else:
        result = client.forecast({"region": region, "model": "best", "horizon": settings.stream_horizon})
        lines.append("**No live data**: no streaming bridge has published a forecast for this region "
                     "(embedded mode, or the bridge is not running). Showing the history in the service's "
                     "state store (the demo history when embedded) and an on-demand forecast by "
                     f"{_label(result)} issued {_when(result.get('issued_at'), tz)}.")
    if len(history):
        lines.append(f"Last observation: {_when(history.index[-1], tz)} — {len(history)} observations shown.")
    else:
        lines.append("No observations in the state store for this region yet.")
    view.warnings = _result_notes(result)
    view.status = "\n\n".join(lines + view.warnings)
    view.figure = forecast_figure([result], history=history, tz=tz,
                                  title=f"{region}: recent load and latest forecast (MW)")
    return view


def forecast_view(
    client: ServiceClient,
    *,
    region: str,
    model: str,
    horizon: int,
    levels: Sequence[str | int],
    settings: Settings,
    history_path: str | Path | None = None,
    time_col: str = "timestamp",
    load_col: str = "load_mw",
    temp_col: str | None = "temperature_c",
    compare: Sequence[str] = (),
) -> ForecastView:
    """One forecast (plus models to compare) → chart, table and a CSV file (the Forecast tab).

    Raises:
        UserInputError: bad inputs or a bad upload (names the column/row).
        ServiceUnavailable / ServiceError: the service is down or refused the request.
    """
    catalog = load_catalog(client)  # first: an unreachable service is the error to report
    if not region:
        raise UserInputError("pick a region first" if catalog.regions else
                             "the service serves no models yet: run `gridcast train` (or `make run`)", field="region")
    if not levels:
        raise UserInputError("pick at least one interval level", field="level")
    horizon = int(horizon)
    level = sorted({int(v) for v in levels})
    tz = region_timezone(catalog.models, region, settings)
    base: dict[str, Any] = {"region": region, "horizon": horizon, "level": level}
    history = None
    if history_path:
        history = read_history_csv(history_path, time_col=time_col, load_col=load_col, temp_col=temp_col)
        base["history"] = history_payload(history, settings.max_history_points)
    models = [model, *[m for m in compare if m != model]]
    queries = [{**base, "model": m} for m in models]
    results = [client.forecast(queries[0])] if len(queries) == 1 else client.forecast_batch(queries)
    if history is None:
        recent = client.recent(region, CONTEXT_POINTS)
        history = observations_frame(recent.get("observations") or [])
    view = ForecastView(results=results)
    view.figure = forecast_figure(results, history=history.tail(CONTEXT_POINTS), tz=tz,
                                  title=f"{region}: {horizon}-step forecast (MW), {', '.join(map(str, level))}% intervals")
    view.table = forecast_table(results, tz)
    out_dir = Path(tempfile.mkdtemp(prefix="gridcast-ui-"))
    csv_path = out_dir / f"forecast_{region}_{results[0].get('model')}_{horizon}.csv"
    view.table.to_csv(csv_path, index=False)
    view.csv_path = str(csv_path)
    first = results[0]
    source = {"request": "the uploaded history", "state": "the service's state store",
              "model": "the model's own training tail"}.get(first.get("history_source"), "?")
    view.warnings = [w for r in results for w in _result_notes(r)]
    view.status = "\n\n".join([
        f"**{len(first.get('points', []))} points** from **{_label(first)}** (`{first.get('model_version')}`), "
        f"starting after {_when(first.get('origin'), tz)}; history from {source}"
        + ("; served from the cache." if first.get("cached") else "."),
        *view.warnings,
    ])
    return view


#: validation metric → column title
METRIC_COLUMNS = {"mape": "MAPE (%)", "mae": "MAE (MW)", "rmse": "RMSE (MW)", "bias": "bias (MW)",
                  "coverage_80": "80% coverage", "coverage_95": "95% coverage"}


def _metrics(m: dict[str, Any]) -> dict[str, Any]:
    """Validation metrics wherever the service put them (``metrics`` or ``validation``)."""
    out: dict[str, Any] = {}
    for key in ("validation", "metrics"):
        value = m.get(key)
        if isinstance(value, dict):
            out.update(value.get("validation") if isinstance(value.get("validation"), dict) else value)
    if "mape" not in out and isinstance(m.get("validation_mape"), int | float):
        out["mape"] = m["validation_mape"]
    return out


def models_view(client: ServiceClient, *, settings: Settings) -> ModelsView:  # noqa: ARG001 - one signature for all views
    """Served versions with their training ranges and metrics vs naive (the Models tab)."""
    import plotly.graph_objects as go

    models = client.models()
    view = ModelsView()
    if not models:
        view.status = "The service serves no models yet: run `gridcast train` (or `make run`)."
        return view
    rows = []
    for m in sorted(models, key=lambda m: (m["region"], m["alias"])):
        metrics = _metrics(m)
        rng = m.get("training_range") or {}
        row = {"region": m["region"], "alias": m["alias"], "version": m.get("version", ""),
               "step": m.get("freq", ""), "trained on (UTC)": f"{str(rng.get('start') or '?')[:16]} → {str(rng.get('end') or '?')[:16]}"}
        for key, title in METRIC_COLUMNS.items():
            value = metrics.get(key)
            row[title] = round(float(value), 3) if isinstance(value, int | float) else None
        rows.append(row)
    naive = {r["region"]: r["MAPE (%)"] for r in rows if r["alias"] == "naive"}
    for r in rows:
        r["MAPE vs naive"] = (f"{100 * (1 - r['MAPE (%)'] / naive[r['region']]):+.1f}% skill"
                              if naive.get(r["region"]) and r["MAPE (%)"] is not None else "—")
    table = pd.DataFrame(rows)
    # what a person compares first on the left; identifiers (long tags) on the right
    first = ["region", "alias", "MAPE (%)", "MAPE vs naive"]
    view.table = table[first + [c for c in table.columns if c not in first]]

    fig = go.Figure()
    for k, alias in enumerate(sorted({r["alias"] for r in rows})):
        part = [r for r in rows if r["alias"] == alias]
        fig.add_trace(go.Bar(x=[r["region"] for r in part], y=[r["MAPE (%)"] for r in part], name=alias,
                             marker_color=COLOURS[k % len(COLOURS)]))
    references = {m["region"]: _metrics(m).get("reference_mape") for m in models if _metrics(m).get("reference_mape")}
    if references:
        fig.add_trace(go.Bar(x=list(references), y=list(references.values()), name="reference forecast",
                             marker_color="#7f7f7f"))
    fig.update_layout(barmode="group", title="Validation MAPE by model (lower is better; naive = baseline)",
                      yaxis_title="MAPE (%)", xaxis_title="region", template="plotly_white", height=380)
    view.figure = fig

    lead = go.Figure()
    for m in models:
        by_lead = _metrics(m).get("mape_by_lead") or _metrics(m).get("error_by_lead")
        if isinstance(by_lead, dict):
            xs, ys = list(by_lead), list(by_lead.values())
        elif isinstance(by_lead, list):
            xs, ys = list(range(1, len(by_lead) + 1)), by_lead
        else:
            continue
        lead.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{m['region']} / {m['alias']}"))
    notes = [f"{len(models)} served models in {table['region'].nunique()} region(s). Metrics: held-out "
             "validation recorded at training time (day-ahead); skill = 1 − MAPE / naive MAPE."]
    if lead.data:
        lead.update_layout(title="Error by lead time", xaxis_title="lead (steps ahead)", yaxis_title="MAPE (%)",
                           template="plotly_white", height=340)
        view.lead_figure = lead
    else:
        notes.append("No error-by-lead curve in the model metadata (`gridcast backtest` records one).")
    if not references:
        notes.append("No reference (operator) forecast was recorded for these models.")
    view.status = "\n\n".join(notes)
    return view


def load_quality_source(source: str, upload: str | Path | None, *, settings: Settings) -> tuple[pd.DataFrame, dict[str, Any], str]:
    """The table to check: a demo data set, or an upload (canonical Parquet or CSV)."""
    if source in (DEMO_CLEAN, DEMO_FAULTY):
        from gridcast.synthetic import generate

        df, meta = generate(days=DEMO_DAYS, regions=1, seed=settings.seed, country=settings.country)
        if source == DEMO_FAULTY:
            from gridcast.quality.faults import inject_faults

            df, meta = inject_faults(df, meta, seed=settings.seed)
        return df, meta, source
    if not upload:
        raise UserInputError("upload a file first (canonical Parquet, or CSV with the canonical columns)",
                             field="upload")
    path = Path(upload)
    if path.suffix.lower() == ".parquet":
        from gridcast.schema import read_table

        df, meta = read_table(path)
        return df, meta, path.name
    try:
        df = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise UserInputError(f"{path.name} is not a readable CSV file ({type(exc).__name__})", field="upload") from None
    from gridcast.schema import REQUIRED

    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise UserInputError(f"{path.name} has no column {missing[0]!r}; a canonical table needs "
                             f"{', '.join(REQUIRED)} (use `gridcast data import` for other layouts)", field=missing[0])
    stamps = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    _first_bad(stamps.isna(), df["timestamp"].astype(str), path.name, "timestamp", "is not a timestamp")
    return df.assign(timestamp=stamps), {}, path.name


def quality_view(source: str, upload: str | Path | None, *, settings: Settings) -> QualityView:
    """The data-quality report and the data layer's plots for a table (the Data quality tab)."""
    import matplotlib

    matplotlib.use("Agg")
    from gridcast.quality import plots
    from gridcast.quality.checks import check

    df, meta, label = load_quality_source(source, upload, settings=settings)
    result = check(df, meta, settings=settings)
    report = result.report
    rows = []
    for name, info in (report.get("checks") or {}).items():
        examples = info.get("examples") or []
        rows.append({"check": name, "count": info.get("count", 0), "action": info.get("action") or "",
                     "examples": "; ".join(_example(e) for e in examples[:3])})
    view = QualityView(report=report, checks=pd.DataFrame(rows, columns=["check", "count", "action", "examples"]))
    flagged = sum(int(r["count"] or 0) for r in rows if r["check"] != "schema")
    verdict = "**usable**" if result.usable else "**not usable**: " + "; ".join(result.reasons)
    view.status = (f"{label}: {len(df)} rows in, {len(result.clean)} on the clean grid (step {report.get('freq', '?')}); "
                   f"{flagged} problems flagged across {sum(1 for r in rows if r['count'])} checks — {verdict}.")
    clean = result.clean
    regions = sorted(clean["region"].unique()) if "region" in clean else [None]
    tz = result.meta.get("timezone")
    region = regions[0]
    figures: list[Figure] = [
        plots.series_with_flags(clean, report, region=region),
        plots.daily_profile_by_weekday(clean, region=region, tz=tz),
        plots.load_vs_temperature(clean, region=region),
        plots.monthly_boxplots(clean, region=region, tz=tz),
    ]
    view.figures = figures
    if len(regions) > 1:
        view.status += f" Plots show {region} (of {len(regions)} regions)."
    return view


def _example(e: Any) -> str:
    if isinstance(e, dict):
        return ", ".join(f"{k}={v}" for k, v in list(e.items())[:4])
    return str(e)


# ---- Gradio wiring ----------------------------------------------------------------------------


def user_message(exc: BaseException) -> str:
    """The sentence a person sees for an error — never a traceback."""
    if isinstance(exc, ServiceUnavailable):
        return f"Service unreachable: {exc.detail}"
    if isinstance(exc, ServiceError):
        where = f" (field `{exc.field}`)" if exc.field else ""
        return f"The service refused the request{where}: {exc.detail}"
    if isinstance(exc, GridcastError):
        return f"Cannot use this input: {exc.detail}"
    return "Something went wrong on our side; the details are in the server log."


def _guarded(fn: Callable[..., tuple], n_outputs: int, *, toast: bool = True) -> Callable[..., tuple]:
    """Run a callback; on error show a warning toast + status line and clear the other outputs.

    The status line is always the LAST output of a guarded callback. Timer refreshes
    pass ``toast=False``: a service that stays down must not pop a toast every tick.
    """
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any) -> tuple:
        try:
            return fn(*args)
        except GridcastError as exc:
            message = user_message(exc)
        except Exception:  # a bug: log it with the traceback, tell the person something useful
            logger.exception("UI callback %s failed", fn.__name__)
            message = user_message(RuntimeError())
        if toast:
            gr.Warning(message)
        return (*([None] * (n_outputs - 1)), f"⚠️ {message}")

    return wrapper


def _toast(view: View) -> None:
    import gradio as gr

    for note in view.warnings:
        gr.Warning(note)


def theme() -> gr.themes.Base:
    """The default theme with system fonts: the page must not fetch fonts from the internet."""
    import gradio as gr

    system = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "Consolas", "monospace"])


def build_app(client: ServiceClient, *, settings: Settings) -> gr.Blocks:
    """The Blocks app (four tabs) talking to the service through ``client``."""
    import gradio as gr

    def catalog_or_empty() -> Catalog:
        try:
            return load_catalog(client)
        except GridcastError:
            return Catalog([])

    def init() -> tuple:
        catalog = catalog_or_empty()
        regions = catalog.regions
        region = regions[0] if regions else None
        status = "" if regions else f"⚠️ {user_message(ServiceUnavailable(f'no served models at {client.base_url}'))}"
        return (gr.update(choices=regions, value=region), gr.update(choices=regions, value=region),
                gr.update(choices=catalog.aliases(region), value="best"),
                gr.update(choices=catalog.aliases(region)[1:], value=[]), status)

    def on_region(region: str) -> tuple:
        aliases = catalog_or_empty().aliases(region)
        return gr.update(choices=aliases, value="best"), gr.update(choices=aliases[1:], value=[])

    def live(region: str, *, toast: bool = True) -> tuple:
        if not region:
            load_catalog(client)  # raises ServiceUnavailable when that is the reason
            return None, "⚠️ The service serves no models yet: run `gridcast train` (or `make run`)."
        view = live_view(client, region, settings=settings)
        if toast:
            _toast(view)
        return view.figure, view.status

    def live_tick(region: str) -> tuple:
        return live(region, toast=False)

    def forecast(region, model, horizon, levels, upload, time_col, load_col, temp_col, compare) -> tuple:
        view = forecast_view(client, region=region, model=model, horizon=horizon, levels=levels, settings=settings,
                             history_path=upload, time_col=time_col, load_col=load_col, temp_col=temp_col,
                             compare=compare or ())
        _toast(view)
        return view.figure, view.table, view.csv_path, view.status

    def models() -> tuple:
        view = models_view(client, settings=settings)
        lead = gr.update(value=view.lead_figure, visible=view.lead_figure is not None)
        return view.table, view.figure, lead, view.status

    def quality(source, upload) -> tuple:
        view = quality_view(source, upload, settings=settings)
        checks = view.checks
        return (*view.figures, checks, view.report, view.status)

    with gr.Blocks(title="gridcast", analytics_enabled=False) as demo:
        gr.Markdown("# gridcast — electricity demand forecasts\n"
                    "Loads in MW, temperatures in °C, times in UTC (the region's local time alongside).")
        with gr.Tabs():
            with gr.Tab("Live", id="live"):
                with gr.Row():
                    live_region = gr.Dropdown(label="region", choices=[], interactive=True, elem_id="live-region")
                    live_refresh = gr.Button("Refresh now", elem_id="live-refresh", scale=0)
                live_plot = gr.Plot(label="recent load and latest forecast (MW, UTC)", elem_id="live-plot")
                live_status = gr.Markdown(elem_id="live-status")
                timer = gr.Timer(settings.ui_refresh_s)
            with gr.Tab("Forecast", id="forecast"):
                with gr.Row():
                    fc_region = gr.Dropdown(label="region", choices=[], interactive=True, elem_id="fc-region")
                    fc_model = gr.Dropdown(label="model", choices=list(ALIASES), value="best", interactive=True,
                                           elem_id="fc-model")
                    fc_horizon = gr.Slider(1, settings.max_horizon, value=min(24, settings.max_horizon), step=1,
                                           label="horizon (steps)", elem_id="fc-horizon")
                    fc_levels = gr.CheckboxGroup(list(LEVEL_CHOICES), value=[str(v) for v in settings.levels],
                                                 label="interval levels (%)", elem_id="fc-levels")
                fc_compare = gr.CheckboxGroup([], label="compare with (same chart)", elem_id="fc-compare")
                with gr.Accordion("history CSV (optional; without it the service uses its state store)", open=False):
                    fc_upload = gr.File(label="history CSV", file_types=[".csv"], type="filepath", elem_id="fc-upload")
                    with gr.Row():
                        fc_time_col = gr.Textbox("timestamp", label="timestamp column (ISO 8601; no offset = UTC)")
                        fc_load_col = gr.Textbox("load_mw", label="load column (MW)")
                        fc_temp_col = gr.Textbox("temperature_c", label="temperature column (°C, optional)")
                fc_run = gr.Button("Forecast", variant="primary", elem_id="fc-run")
                fc_status = gr.Markdown(elem_id="fc-status")
                fc_plot = gr.Plot(label="forecast (MW, UTC)", elem_id="fc-plot")
                fc_table = gr.Dataframe(label="forecast points", interactive=False, max_height=420, elem_id="fc-table")
                fc_csv = gr.File(label="download CSV", interactive=False, elem_id="fc-csv")
            with gr.Tab("Models", id="models"):
                models_refresh = gr.Button("Refresh", elem_id="models-refresh")
                models_status = gr.Markdown(elem_id="models-status")
                models_table = gr.Dataframe(label="served models", interactive=False, elem_id="models-table")
                models_plot = gr.Plot(label="validation MAPE vs naive", elem_id="models-plot")
                models_lead = gr.Plot(label="error by lead (MAPE %, steps ahead)", visible=False, elem_id="models-lead")
            with gr.Tab("Data quality", id="quality"):
                with gr.Row():
                    dq_source = gr.Radio([DEMO_FAULTY, DEMO_CLEAN, UPLOADED], value=DEMO_FAULTY, label="data set",
                                         elem_id="dq-source")
                    dq_upload = gr.File(label="canonical table (Parquet or CSV)", file_types=[".parquet", ".csv"],
                                        type="filepath", elem_id="dq-upload")
                dq_run = gr.Button("Check", variant="primary", elem_id="dq-run")
                dq_status = gr.Markdown(elem_id="dq-status")
                dq_checks = gr.Dataframe(label="checks (count, action, examples)", interactive=False,
                                         elem_id="dq-checks")
                with gr.Column(elem_id="dq-plots"):
                    with gr.Row():
                        dq_series = gr.Plot(label="load with flags (MW, UTC)", format="png")
                        dq_profile = gr.Plot(label="daily profile by weekday (local time)", format="png")
                    with gr.Row():
                        dq_scatter = gr.Plot(label="load vs temperature (MW, °C)", format="png")
                        dq_box = gr.Plot(label="monthly boxplots (MW)", format="png")
                with gr.Accordion("full report (JSON)", open=False):
                    dq_report = gr.JSON()

        live_outputs = [live_plot, live_status]
        demo.load(init, outputs=[live_region, fc_region, fc_model, fc_compare, live_status]).then(
            _guarded(live, 2), inputs=live_region, outputs=live_outputs)
        live_region.change(_guarded(live, 2), inputs=live_region, outputs=live_outputs)
        live_refresh.click(_guarded(live, 2), inputs=live_region, outputs=live_outputs)
        timer.tick(_guarded(live_tick, 2, toast=False), inputs=live_region, outputs=live_outputs, show_progress="hidden")
        fc_region.change(on_region, inputs=fc_region, outputs=[fc_model, fc_compare])
        fc_run.click(_guarded(forecast, 4),
                     inputs=[fc_region, fc_model, fc_horizon, fc_levels, fc_upload, fc_time_col, fc_load_col,
                             fc_temp_col, fc_compare],
                     outputs=[fc_plot, fc_table, fc_csv, fc_status])
        models_outputs = [models_table, models_plot, models_lead, models_status]
        models_refresh.click(_guarded(models, 4), outputs=models_outputs)
        demo.load(_guarded(models, 4), outputs=models_outputs)
        dq_upload.upload(lambda: UPLOADED, outputs=dq_source)
        dq_run.click(_guarded(quality, 7), inputs=[dq_source, dq_upload],
                     outputs=[dq_series, dq_profile, dq_scatter, dq_box, dq_checks, dq_report, dq_status])
    return demo


def _reachable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)


def service_url_for(settings: Settings) -> str:
    """Where the UI mounted in the service reaches that same service, before it knows better."""
    return f"http://{_reachable(settings.host)}:{settings.port}"


class _FollowServerAddress:
    """ASGI middleware: point the mounted UI's client at the socket this request came in on.

    ``bentoml serve --port N`` (or a container's port flag) need not match the settings'
    port, but every request's ``scope["server"]`` is the address actually listened on,
    so the UI calls its own service there (loopback when bound to all interfaces).
    """

    def __init__(self, app: Any, client: ServiceClient) -> None:
        self.app = app
        self.client = client

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        server = scope.get("server") if scope.get("type") == "http" else None
        if server and server[1]:
            url = f"http://{_reachable(str(server[0]))}:{server[1]}"
            if url != self.client.base_url:
                logger.info("UI calls the service at %s", url)
                self.client.base_url = url
        await self.app(scope, receive, send)


def service_ui_app(settings: Settings) -> FastAPI:
    """The UI as an ASGI app for the Bento service (``@bentoml.asgi_app(..., path="/ui")``).

    A FastAPI app holding ``gr.mount_gradio_app(..., path="/")``: with BentoML 1.4.39
    and Gradio 6 this serves every asset and event under the ``/ui`` prefix, while
    ``bentoml.gradio.mount_gradio_app`` answered HTTP 500. BentoML runs this app's
    lifespan, which starts Gradio's queue.
    """
    import gradio as gr
    from fastapi import FastAPI

    client = ServiceClient(service_url_for(settings))
    demo = build_app(client, settings=settings)
    app = FastAPI(title="gridcast UI", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(_FollowServerAddress, client=client)
    return gr.mount_gradio_app(app, demo, path="/", ssr_mode=False, theme=theme(),
                               footer_links=["api", "gradio"])


def launch(client: ServiceClient, *, settings: Settings, host: str, port: int) -> None:
    """Serve the UI on its own (``gridcast ui``); blocks until interrupted."""
    demo = build_app(client, settings=settings)
    demo.queue().launch(server_name=host, server_port=port, ssr_mode=False, theme=theme(),
                        share=False, inbrowser=False, show_error=False, footer_links=["api", "gradio"])


