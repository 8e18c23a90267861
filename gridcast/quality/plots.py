"""The plots a person looks at first, as matplotlib Figures (reused by the UI).

Each function takes a canonical table (and optionally a quality report) and returns
a :class:`matplotlib.figure.Figure` built without ``pyplot``: no global figure
state, no GUI backend, safe in a web worker. :func:`plot_all` writes them as PNGs.

* :func:`series_with_flags` — the load over time with the problems ``data check``
  flagged (and every missing stretch, seen straight from the data) marked;
* :func:`daily_profile_by_weekday` — the average day, one line per weekday, in local
  time: holidays, weekends and a shifted clock show up here first;
* :func:`load_vs_temperature` — the heating/cooling "smile" that makes temperature
  worth forecasting with;
* :func:`monthly_boxplots` — the annual cycle and its outliers.

Example:
    >>> from gridcast.synthetic import generate
    >>> df, _ = generate(days=14, seed=1)
    >>> fig = daily_profile_by_weekday(df, tz="Asia/Ho_Chi_Minh")
    >>> len(fig.axes[0].lines)
    7
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gridcast.schema import LOAD, REGION, TEMPERATURE, TIMESTAMP

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: more points than this in a scatter and it becomes a hexbin (readable, fast)
SCATTER_MAX = 20_000
#: distinct colours for flag kinds, in report order
#: keys of a report example that hold a time
TIME_KEYS = ("timestamp", "from", "to", "start", "end", "date")
FLAG_COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
                "tab:green", "black", "gold", "navy", "magenta", "lime", "teal")


def _one_region(df: pd.DataFrame, region: str | None) -> tuple[str, pd.DataFrame]:
    """The rows of ``region`` (default: the first one) on a sorted UTC index."""
    regions = sorted(df[REGION].unique())
    if not regions:
        raise ValueError("empty table: nothing to plot")
    region = region if region is not None else regions[0]
    part = df[df[REGION] == region].set_index(TIMESTAMP).sort_index()
    return region, part


def _local(index: pd.DatetimeIndex, tz: str | None) -> pd.DatetimeIndex:
    return index.tz_convert(tz) if tz else index


def flagged_times(report: dict[str, Any] | None, region: str | None = None) -> dict[str, list[pd.Timestamp]]:
    """Timestamps each quality check flagged, read from its ``examples``.

    The report's examples are small: a timestamp string, or a dict with
    ``timestamp``/``from``/``to``/``start``/``end``/``date`` (and possibly ``region``).
    Anything else is skipped — a plot must never fail because a report changed shape.
    """
    out: dict[str, list[pd.Timestamp]] = {}
    for name, check in ((report or {}).get("checks") or {}).items():
        if not isinstance(check, dict) or not check.get("count"):
            continue
        times: list[pd.Timestamp] = []
        for ex in check.get("examples") or []:
            if isinstance(ex, dict):
                if region is not None and ex.get("region") not in (None, region):
                    continue
                values: Iterable[Any] = [ex.get(k) for k in TIME_KEYS if ex.get(k)]
            else:
                values = [ex]
            for v in values:
                ts = _as_utc(v)
                if ts is not None:
                    times.append(ts)
        if times:
            out[name] = times
    return out


def flagged_spans(report: dict[str, Any] | None,
                  region: str | None = None) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Stretches (``from``..``to`` or ``start``..``end``) each check flagged, per check."""
    out: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for name, check in ((report or {}).get("checks") or {}).items():
        if not isinstance(check, dict):
            continue
        for ex in check.get("examples") or []:
            if not isinstance(ex, dict) or (region is not None and ex.get("region") not in (None, region)):
                continue
            a, b = _as_utc(ex.get("from", ex.get("start"))), _as_utc(ex.get("to", ex.get("end")))
            if a is not None and b is not None:
                out.setdefault(name, []).append((a, b))
    return out


def _as_utc(value: Any) -> pd.Timestamp | None:
    if not isinstance(value, (str, pd.Timestamp)):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def series_with_flags(df: pd.DataFrame, report: dict[str, Any] | None = None, *, region: str | None = None) -> Figure:
    """Load over time; flagged problems as coloured markers (and spans), missing stretches grey."""
    region, part = _one_region(df, region)
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax = fig.add_subplot()
    load = part[LOAD]
    ax.plot(load.index, load.to_numpy(), lw=0.6, color="tab:blue", label="load")
    # missing values, straight from the data: shade each run of NaN
    missing = load.isna().to_numpy()
    if missing.any():
        edges = np.flatnonzero(np.diff(np.r_[0, missing.astype(int), 0]))
        for k, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
            ax.axvspan(load.index[a], load.index[min(b, len(load) - 1)], color="grey", alpha=0.3,
                       label="missing" if k == 0 else None)
    flags = flagged_times(report, region)
    spans = flagged_spans(report, region)
    y_top = np.nanmax(load.to_numpy()) if load.notna().any() else 1.0
    for (name, times), colour in zip(flags.items(), FLAG_COLOURS * 4, strict=False):
        for a, b in spans.get(name, []):
            ax.axvspan(a, b, color=colour, alpha=0.25)
        at = pd.DatetimeIndex(times)
        y = load.reindex(at).to_numpy(dtype=float)
        y = np.where(np.isnan(y), y_top, y)
        ax.scatter(at, y, s=36, marker="v", color=colour, zorder=3, label=f"{name} ({len(times)} shown)")
    ax.set_title(f"{region}: load with flagged problems")
    ax.set_ylabel("load (MW)")
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="upper right", fontsize="small", ncols=2)
    return fig


def daily_profile_by_weekday(df: pd.DataFrame, *, region: str | None = None, tz: str | None = None) -> Figure:
    """Average load by local time of day, one line per weekday (Mon..Sun)."""
    region, part = _one_region(df, region)
    local = _local(pd.DatetimeIndex(part.index), tz)
    frame = pd.DataFrame({
        "tod": local.hour + local.minute / 60.0,
        "weekday": local.day_of_week,
        LOAD: part[LOAD].to_numpy(),
    })
    profile = frame.groupby(["weekday", "tod"])[LOAD].mean().unstack("weekday")
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    for wd in profile.columns:
        ax.plot(profile.index, profile[wd].to_numpy(), lw=2 if wd >= 5 else 1.2,
                ls="--" if wd >= 5 else "-", label=WEEKDAYS[int(wd)])
    ax.set_title(f"{region}: average daily profile by weekday ({tz or 'UTC'})")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("mean load (MW)")
    ax.set_xticks(range(0, 25, 3))
    ax.legend(ncols=7, fontsize="small", loc="upper center")
    return fig


def load_vs_temperature(df: pd.DataFrame, *, region: str | None = None) -> Figure:
    """Load against temperature, with the binned mean over it (the heating/cooling curve)."""
    region, part = _one_region(df, region)
    frame = part[[TEMPERATURE, LOAD]].dropna()
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    if len(frame) > SCATTER_MAX:
        ax.hexbin(frame[TEMPERATURE], frame[LOAD], gridsize=60, mincnt=1, cmap="Blues", bins="log")
    else:
        ax.scatter(frame[TEMPERATURE], frame[LOAD], s=4, alpha=0.35, color="tab:blue")
    if len(frame) >= 10:
        bins = np.arange(np.floor(frame[TEMPERATURE].min()), np.ceil(frame[TEMPERATURE].max()) + 1, 1.0)
        if len(bins) >= 2:
            binned = frame.groupby(pd.cut(frame[TEMPERATURE], bins), observed=True)[LOAD].mean()
            centres = [iv.mid for iv in binned.index]
            ax.plot(centres, binned.to_numpy(), color="tab:red", lw=2, label="mean per 1 °C")
            ax.legend(loc="upper center")
    ax.set_title(f"{region}: load vs temperature")
    ax.set_xlabel("temperature (°C)")
    ax.set_ylabel("load (MW)")
    return fig


def monthly_boxplots(df: pd.DataFrame, *, region: str | None = None, tz: str | None = None) -> Figure:
    """Distribution of load per calendar month (local time), all years together."""
    region, part = _one_region(df, region)
    months = _local(pd.DatetimeIndex(part.index), tz).month
    load = part[LOAD].to_numpy()
    present = sorted(set(months))
    data = [load[(months == m) & ~np.isnan(load)] for m in present]
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot(data, tick_labels=[MONTHS[m - 1] for m in present], showfliers=True,
               flierprops={"markersize": 2, "alpha": 0.4})
    ax.set_title(f"{region}: load by month")
    ax.set_ylabel("load (MW)")
    return fig


def plot_all(df: pd.DataFrame, report: dict[str, Any] | None, out_dir: str | Path, *,
             meta: dict[str, Any] | None = None, regions: Iterable[str] | None = None) -> list[Path]:
    """Write the four PNGs per region to ``out_dir``; return their paths.

    Args:
        df: canonical table.
        report: a ``data check`` report whose flags to mark (None: only missing values).
        out_dir: created if missing.
        meta: the table's metadata; its ``timezone`` makes profiles and months local.
        regions: which regions (default all).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tz = (meta or {}).get("timezone") or (meta or {}).get("region_timezone")
    paths: list[Path] = []
    for region in regions if regions is not None else sorted(df[REGION].unique()):
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(region))
        figures = {
            "series_flags": series_with_flags(df, report, region=region),
            "daily_profile": daily_profile_by_weekday(df, region=region, tz=tz),
            "load_vs_temperature": load_vs_temperature(df, region=region),
            "monthly_boxplots": monthly_boxplots(df, region=region, tz=tz),
        }
        for name, fig in figures.items():
            path = out / f"{slug}_{name}.png"
            fig.savefig(path, dpi=100)
            paths.append(path)
    return paths
