"""Backtest scores and reports: point and interval metrics per model and lead, the table, the plots.

:func:`compute_metrics` scores the forecasts :func:`training.backtest.run_backtest`
collected (MAPE, MAE, RMSE, bias, interval coverage and width, pinball loss), overall
and per lead; :func:`render_table` and :func:`plot_results` show a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _point_metrics(actual: np.ndarray, mean: np.ndarray) -> dict[str, float]:
    err = mean - actual
    nz = actual != 0
    return {
        "n": int(len(actual)),
        "mape": float(np.mean(np.abs(err[nz]) / np.abs(actual[nz])) * 100) if nz.any() else float("nan"),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
    }


def _pinball(actual: np.ndarray, pred: np.ndarray, q: float) -> float:
    diff = actual - pred
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))


def score(group: pd.DataFrame, levels: Sequence[int]) -> dict[str, float]:
    """Metrics for one set of scored rows (rows without an actual or forecast skipped)."""
    g = group[group["actual"].notna() & group["mean"].notna()]
    if g.empty:
        return {"n": 0}
    actual, mean = g["actual"].to_numpy(float), g["mean"].to_numpy(float)
    out = _point_metrics(actual, mean)
    losses = [_pinball(actual, mean, 0.5)]
    for lv in levels:
        lo, hi = f"lo-{lv}", f"hi-{lv}"
        if lo not in g or g[lo].isna().all():
            continue
        lo_v, hi_v = g[lo].to_numpy(float), g[hi].to_numpy(float)
        out[f"coverage_{lv}"] = float(np.mean((actual >= lo_v) & (actual <= hi_v)) * 100)
        out[f"width_{lv}"] = float(np.mean(hi_v - lo_v))
        q = (1 - lv / 100) / 2
        losses += [_pinball(actual, lo_v, q), _pinball(actual, hi_v, 1 - q)]
    out["pinball"] = float(np.mean(losses))
    return out


def compute_metrics(forecasts: pd.DataFrame, levels: Sequence[int]) -> dict[str, Any]:
    """``{model: {"overall": {...}, "by_lead": {lead: {...}}}}``."""
    out: dict[str, Any] = {}
    for name, g in forecasts.groupby("model", sort=False):
        out[str(name)] = {
            "overall": score(g, levels),
            "by_lead": {int(lead): score(lg, levels) for lead, lg in g.groupby("lead")},
        }
    return out


# -- presentation (used by the CLI and the benchmark) ------------------------------
def render_table(result: Any, title: str | None = None):  # result: training.backtest.BacktestResult
    """A rich table: one row per model, overall metrics."""
    from rich.table import Table

    levels = result.config.get("levels", [])
    table = Table(title=title or f"backtest ({result.config.get('protocol')}, weather {result.config.get('weather')})")
    for col in ("model", "n", "MAPE %", "MAE", "RMSE", "bias", *[f"cov{lv} %" for lv in levels], "pinball",
                "fit s", "upd ms/step", "pred ms", "flagged"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in result.metrics.items():
        o = m["overall"]
        t = result.timings.get(name, {})

        def f(v: Any, fmt: str = ".1f") -> str:
            return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)

        table.add_row(
            name, str(o.get("n", 0)), f(o.get("mape"), ".2f"), f(o.get("mae"), ".0f"), f(o.get("rmse"), ".0f"),
            f(o.get("bias"), ".0f"), *[f(o.get(f"coverage_{lv}")) for lv in levels], f(o.get("pinball"), ".1f"),
            f(t.get("fit_s_mean"), ".2f"), f(t.get("update_ms_per_step"), ".2f"), f(t.get("predict_ms_median"), ".1f"),
            _flagged(result.guard.get(name)),
        )
    return table


def _flagged(g: dict[str, Any] | None) -> str:
    """'flagged/checked' plus member drops, '—' for rows without a guard (the reference)."""
    if not g:
        return "—"
    text = f"{g['flagged']}/{g['checked']}"
    drops = sum(g.get("member_drops", {}).values())
    return f"{text} (+{drops} member)" if drops else text


def plot_results(result: Any, out_dir) -> list:
    """PNGs: MAPE by lead per model, and the last scored week with the widest band."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, m in result.metrics.items():
        leads = sorted(m["by_lead"])
        ax.plot(leads, [m["by_lead"][lead].get("mape", np.nan) for lead in leads], marker=".", label=name)
    ax.set_xlabel("lead (steps after the origin)")
    ax.set_ylabel("MAPE %")
    ax.set_title("Error by lead")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "error_by_lead.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fc = result.forecasts
    end = fc["timestamp"].max()
    week = fc[fc["timestamp"] > end - pd.Timedelta(days=7)]
    # one forecast per target: the latest origin (rolling origins overlap)
    week = week.sort_values("origin").drop_duplicates(["model", "timestamp"], keep="last")
    levels = result.config.get("levels", [])
    widest = max(levels) if levels else None
    fig, ax = plt.subplots(figsize=(12, 4.5))
    actual = week.drop_duplicates("timestamp").set_index("timestamp")["actual"].sort_index()
    ax.plot(actual.index, actual.to_numpy(), color="black", lw=1.5, label="actual")
    for name, g in week.groupby("model", sort=False):
        g = g.set_index("timestamp").sort_index()
        line, = ax.plot(g.index, g["mean"].to_numpy(), lw=1, label=str(name))
        if widest and f"lo-{widest}" in g and g[f"lo-{widest}"].notna().any():
            ax.fill_between(g.index, g[f"lo-{widest}"].to_numpy(float), g[f"hi-{widest}"].to_numpy(float),
                            color=line.get_color(), alpha=0.12)
    ax.set_title(f"Last scored week (bands: {widest} % intervals)" if widest else "Last scored week")
    ax.set_ylabel("load (MW)")
    ax.grid(alpha=0.3)
    ax.legend(ncol=4, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    paths.append(out_dir / "sample_week.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
