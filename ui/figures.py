"""The UI's figures and tables: what a service answer looks like on screen.

Owns the time labels (UTC on the axes, the region's local time beside), the forecast
chart (actuals, the first result's interval bands, other models' means) and table, the
Models tab's bar, error-by-lead and error-by-hour charts, and the Data quality tab's four plots. Pure
functions of the service's JSON answers: no HTTP, no Gradio, nothing at import
(plotly and matplotlib are imported by the functions that draw).

The quality plots are the core's (:mod:`gridcast.quality.plots`, the same PNGs
``gridcast data plot`` writes), drawn here from the cleaned table ``POST /data/check``
answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    from gridcast.settings import Settings

#: band colours, widest level first (lightest)
BAND_ALPHA = (0.15, 0.28, 0.4, 0.5)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


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


def when(ts: Any, tz: ZoneInfo) -> str:
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


def levels_of(result: dict[str, Any]) -> list[int]:
    return sorted(int(v) for v in result.get("level") or [])


def label(result: dict[str, Any]) -> str:
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
            for j, level in enumerate(sorted(levels_of(result), reverse=True)):
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
            x=frame.index, y=frame["mean"].to_numpy(), name=f"forecast: {label(result)}",
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
    for level in levels_of(results[0]):
        for side, name in (("lo", "lower"), ("hi", "upper")):
            col = f"{side}-{level}"
            if col in first:
                table[f"{name} {level}% (MW)"] = first[col].round(2).to_numpy()
    for other in results[1:]:
        means = points_frame(other)["mean"].reindex(first.index)
        table[f"{label(other)} mean (MW)"] = means.round(2).to_numpy()
    return table


# ---- the Models tab's charts ----------------------------------------------------------------


def models_figure(rows: Sequence[dict[str, Any]], references: dict[str, float]) -> go.Figure:
    """Validation MAPE per region, one bar per alias (and the reference forecast's, when recorded)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, alias in enumerate(sorted({r["alias"] for r in rows})):
        part = [r for r in rows if r["alias"] == alias]
        fig.add_trace(go.Bar(x=[r["region"] for r in part], y=[r["MAPE (%)"] for r in part], name=alias,
                             marker_color=COLOURS[k % len(COLOURS)]))
    if references:
        fig.add_trace(go.Bar(x=list(references), y=list(references.values()), name="reference forecast",
                             marker_color="#7f7f7f"))
    fig.update_layout(barmode="group", title="Validation MAPE by model (lower is better; naive = baseline)",
                      yaxis_title="MAPE (%)", xaxis_title="region", template="plotly_white", height=380)
    return fig


def _lead_block(block: Any) -> dict[str, Any] | None:
    """A ``validation.by_lead`` block with a lead list and a MAPE list of the same length, else None."""
    if not isinstance(block, dict):
        return None
    leads, mape = block.get("lead"), block.get("mape")
    if not isinstance(leads, list) or not isinstance(mape, list) or len(leads) != len(mape) or not leads:
        return None
    return block


def lead_figure(curves: dict[str, Any], *, level: int = 90) -> go.Figure | None:
    """Error by lead, one line per ``"region / alias"``: MAPE on top, ``level`` % coverage below.

    ``curves`` maps a name to the model's ``validation.by_lead`` block (lists per lead:
    ``lead``, ``mape``, ``coverage_<level>`` as a fraction). Names without a usable block
    (models trained before it was recorded) are left out; None when none is left.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    blocks = {name: b for name, b in ((n, _lead_block(v)) for n, v in curves.items()) if b is not None}
    if not blocks:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38],
                        subplot_titles=("MAPE by lead (%)", f"{level}% interval coverage by lead (%)"))
    for k, (name, block) in enumerate(blocks.items()):
        colour = COLOURS[k % len(COLOURS)]
        fig.add_trace(go.Scatter(x=block["lead"], y=block["mape"], mode="lines+markers", marker={"size": 4},
                                 name=name, legendgroup=name, line={"color": colour}, meta="lead-mape"), row=1, col=1)
        coverage = block.get(f"coverage_{level}")
        if isinstance(coverage, list) and len(coverage) == len(block["lead"]):
            fig.add_trace(go.Scatter(x=block["lead"], y=[None if c is None else 100 * c for c in coverage],
                                     mode="lines", name=name, legendgroup=name, showlegend=False,
                                     line={"color": colour}, meta="lead-coverage"), row=2, col=1)
    fig.add_hline(y=level, line={"color": "#7f7f7f", "dash": "dot"}, row=2, col=1)
    band = max(int(b.get("band_steps") or 1) for b in blocks.values())
    fig.update_xaxes(title_text="lead (steps after the forecast origin)" + (f"; bands of {band}" if band > 1 else ""),
                     row=2, col=1)
    fig.update_layout(title="Validation error by lead (day-ahead)",
                      template="plotly_white", height=520, legend={"orientation": "h", "y": -0.18})
    return fig


def hour_figure(curves: dict[str, Any], references: dict[str, Any]) -> go.Figure | None:
    """Validation MAPE by hour of day, one line per ``"region / alias"``, the reference's dashed.

    Args:
        curves: name → the model's ``validation.by_hour`` block (``tz``, 24 ``mape`` values).
        references: region → the reference's 24 MAPE values over the same hours.

    Returns:
        The figure, or None when no model recorded a usable block.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    zones = set()
    for k, (name, block) in enumerate(curves.items()):
        if not isinstance(block, dict) or not isinstance(block.get("mape"), list) or len(block["mape"]) != 24:
            continue
        zones.add(str(block.get("tz") or "UTC"))
        fig.add_trace(go.Scatter(x=list(range(24)), y=block["mape"], mode="lines+markers", name=name,
                                 line={"color": COLOURS[k % len(COLOURS)]}, meta="hour-mape"))
    if not fig.data:
        return None
    for region, mape in references.items():
        if isinstance(mape, list) and len(mape) == 24:
            fig.add_trace(go.Scatter(x=list(range(24)), y=mape, mode="lines", name=f"{region} / reference (operator)",
                                     line={"color": "#555", "dash": "dash"}, meta="hour-reference"))
    fig.update_layout(title="Validation MAPE by hour of day", yaxis_title="MAPE (%)",
                      xaxis={"title": f"hour of day (local time: {', '.join(sorted(zones))})", "dtick": 2},
                      template="plotly_white", height=380)
    return fig


# ---- the Data quality tab's plots -------------------------------------------------------------


def quality_figures(answer: dict[str, Any]) -> tuple[list[Figure], str | None, int]:
    """The four overview plots of ``POST /data/check``'s cleaned table, for its first region.

    Returns:
        ``(figures, region shown, number of regions)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from gridcast.quality import plots
    from gridcast.quality.tables import frame_from_columns

    clean = frame_from_columns(answer["clean"])
    report = answer.get("report") or {}
    tz = (answer.get("meta") or {}).get("timezone")
    regions = sorted(clean["region"].unique())
    region = regions[0]
    figures = [
        plots.series_with_flags(clean, report, region=region),
        plots.daily_profile_by_weekday(clean, region=region, tz=tz),
        plots.load_vs_temperature(clean, region=region),
        plots.monthly_boxplots(clean, region=region, tz=tz),
    ]
    return figures, region, len(regions)
