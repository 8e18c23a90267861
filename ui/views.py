"""The UI's views: plain functions of a :class:`~ui.client.ServiceClient`, one per tab.

* :func:`live_view` — recent actuals and the latest published forecast (``POST /recent``),
  or, with no bridge, the state store's history and an on-demand forecast.
* :func:`forecast_view` — one forecast and the models to compare (``POST /forecast``,
  ``POST /forecast_batch``) → chart, table and a CSV file.
* :func:`models_view` — served versions, training ranges, validation and live metrics vs
  naive, error by lead and by hour of day (and the operator reference's) (``GET /models``).
* :func:`quality_view` — a demo data set (``GET /data/sample``) or an upload → the quality
  report (``POST /data/check``) and the data layer's four plots.

Every number comes from the service; the views only shape answers into what a tab shows
(:mod:`ui.figures`, :mod:`ui.uploads`). The tests call them directly against a real
service; :mod:`ui.app` wires them to Gradio components.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gridcast.errors import UserInputError
from ui.client import ServiceClient
from ui.figures import (
    forecast_figure,
    forecast_table,
    hour_figure,
    label,
    lead_figure,
    models_figure,
    observations_frame,
    quality_figures,
    region_timezone,
    when,
)
from ui.uploads import history_payload, quality_body, read_history_csv

if TYPE_CHECKING:
    from gridcast.settings import Settings

DEMO_CLEAN = "synthetic demo (clean)"
DEMO_FAULTY = "synthetic demo with injected faults"
UPLOADED = "uploaded file"
#: how many past observations the forecast chart shows for context
CONTEXT_POINTS = 7 * 24
#: demo data set size for the quality tab (the service makes it; enough room for every fault)
DEMO_DAYS = 60


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
    hour_figure: Any = None


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
        lines.append(f"**Live** — latest published forecast issued {when(result.get('issued_at'), tz)} "
                     f"by {label(result)} (`{result.get('model_version', '?')}`).")
    else:
        result = client.forecast({"region": region, "model": "best", "horizon": settings.stream_horizon})
        lines.append("**No live data**: no streaming bridge has published a forecast for this region "
                     "(embedded mode, or the bridge is not running). Showing the history in the service's "
                     "state store (the demo history when embedded) and an on-demand forecast by "
                     f"{label(result)} issued {when(result.get('issued_at'), tz)}.")
    n_scored, mape, mae = forecast_error_so_far(result, history)
    if n_scored:
        lines.append(f"**Forecast against actuals so far**: {n_scored} of {len(result.get('points', []))} points "
                     f"have arrived — MAPE {mape:.2f} %, MAE {mae:,.1f} MW." if mape is not None else
                     f"**Forecast against actuals so far**: {n_scored} points, MAE {mae:,.1f} MW.")
    scored = live_scores(catalog.models, region)
    if scored:
        lines.append("**Live error** of the forecasts served or published for this region, scored as the actuals "
                     "arrived (last 24 h): " + "; ".join(scored) + ".")
    if len(history):
        lines.append(f"Last observation: {when(history.index[-1], tz)} — {len(history)} observations shown.")
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
        f"**{len(first.get('points', []))} points** from **{label(first)}** (`{first.get('model_version')}`), "
        f"starting after {when(first.get('origin'), tz)}; history from {source}"
        + ("; served from the cache." if first.get("cached") else "."),
        *view.warnings,
    ])
    return view


#: validation metric → column title
METRIC_COLUMNS = {"mape": "MAPE (%)", "mae": "MAE (MW)", "rmse": "RMSE (MW)", "bias": "bias (MW)",
                  "coverage_80": "80% coverage", "coverage_90": "90% coverage", "coverage_95": "95% coverage"}
#: the operator's forecast over the validation hours where it has a value, when the training data had one,
#: and the model's MAPE over exactly those hours (like for like)
REFERENCE_COLUMNS = {"mape": "reference MAPE (%)", "model_mape": "MAPE on the reference's hours (%)"}


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


def _live_columns(live: dict[str, Any] | None) -> dict[str, Any]:
    """Live scores next to validation: MAPE over the last 24 h and 7 d, and how many points were scored."""
    windows = (live or {}).get("windows") or {}

    def mape(window: str) -> float | None:
        value = (windows.get(window) or {}).get("mape")
        return round(float(value), 3) if isinstance(value, int | float) else None

    return {"live MAPE 24 h (%)": mape("24h"), "live MAPE 7 d (%)": mape("7d"), "live n": (live or {}).get("n", 0)}


def live_scores(models: list[dict[str, Any]], region: str) -> list[str]:
    """``['lstm: MAPE 2.31 % over 24 points', ...]`` from the ``live`` blocks of ``GET /models``."""
    out = []
    for m in sorted(models, key=lambda m: m.get("alias", "")):
        day = ((m.get("live") or {}).get("windows") or {}).get("24h") or {}
        if m.get("region") == region and day.get("n") and isinstance(day.get("mape"), int | float):
            out.append(f"{m['alias']}: MAPE {day['mape']:.2f} % over {day['n']} points")
    return out


def forecast_error_so_far(result: dict[str, Any], history: pd.DataFrame) -> tuple[int, float | None, float | None]:
    """(points with an actual, MAPE %, MAE MW) of a forecast against the actuals that have arrived since."""
    if not len(history) or "load_mw" not in history or not result.get("points"):
        return 0, None, None
    stamps = pd.DatetimeIndex(pd.to_datetime([p["timestamp"] for p in result["points"]], utc=True))
    mean = pd.Series([p["mean"] for p in result["points"]], index=stamps)
    actual = history["load_mw"].reindex(stamps)
    both = actual.notna()
    if not both.any():
        return 0, None, None
    err = (mean[both] - actual[both]).abs()
    nonzero = actual[both] != 0
    mape = float((err[nonzero] / actual[both][nonzero].abs()).mean() * 100) if nonzero.any() else None
    return int(both.sum()), mape, float(err.mean())


def models_view(client: ServiceClient, *, settings: Settings) -> ModelsView:  # noqa: ARG001 - one signature for all views
    """Served versions with their training ranges and metrics vs naive (the Models tab)."""
    return summarise_models(client.models())


def summarise_models(models: list[dict[str, Any]]) -> ModelsView:
    """The Models tab for ``GET /models``' list: the table, the MAPE bars, error by lead and by hour.

    Models trained before the metadata recorded ``by_lead`` / ``by_hour`` / ``reference``
    keep their row and bar; they only have no curve (a note says so).
    """
    view = ModelsView()
    if not models:
        view.status = "The service serves no models yet: run `gridcast train` (or `make run`)."
        return view
    models = sorted(models, key=lambda m: (m["region"], m["alias"]))
    rows = []
    for m in models:
        metrics = _metrics(m)
        rng = m.get("training_range") or {}
        row = {"region": m["region"], "alias": m["alias"], "version": m.get("version", ""),
               "step": m.get("freq", ""), "trained on (UTC)": f"{str(rng.get('start') or '?')[:16]} → {str(rng.get('end') or '?')[:16]}"}
        for key, title in METRIC_COLUMNS.items():
            value = metrics.get(key)
            row[title] = round(float(value), 3) if isinstance(value, int | float) else None
        ref = _reference(metrics)
        for key, title in REFERENCE_COLUMNS.items():
            row[title] = ref.get(key) if isinstance(ref.get(key), int | float) else None
        row.update(_live_columns(m.get("live")))
        rows.append(row)
    naive = {r["region"]: r["MAPE (%)"] for r in rows if r["alias"] == "naive"}
    for r in rows:
        r["MAPE vs naive"] = (f"{100 * (1 - r['MAPE (%)'] / naive[r['region']]):+.1f}% skill"
                              if naive.get(r["region"]) and r["MAPE (%)"] is not None else "—")
    table = pd.DataFrame(rows)
    if table[REFERENCE_COLUMNS["mape"]].isna().all():
        table = table.drop(columns=list(REFERENCE_COLUMNS.values()))
    # what a person compares first on the left; identifiers (long tags) on the right
    first = ["region", "alias", "MAPE (%)", "live MAPE 24 h (%)", "live MAPE 7 d (%)", "MAPE vs naive"]
    view.table = table[first + [c for c in table.columns if c not in first]]

    # one reference curve per region: the operator's forecast does not depend on the model
    references: dict[str, Any] = {}
    for m in models:
        ref = _reference(_metrics(m))
        if isinstance(ref.get("mape"), int | float):
            references.setdefault(m["region"], ref)
    view.figure = models_figure(rows, {region: ref["mape"] for region, ref in references.items()})
    named = {f"{m['region']} / {m['alias']}": _metrics(m) for m in models}
    view.lead_figure = lead_figure({name: v.get("by_lead") for name, v in named.items()})
    view.hour_figure = hour_figure({name: v.get("by_hour") for name, v in named.items()},
                                   {region: ref.get("by_hour") for region, ref in references.items()})
    notes = [f"{len(models)} served models in {table['region'].nunique()} region(s). Metrics: held-out "
             "validation recorded at training time (day-ahead); skill = 1 − MAPE / naive MAPE. Live: the "
             "forecasts this deployment served or published, scored as actuals arrived (n = points scored)."]
    older = [name for name, v in named.items() if not isinstance(v.get("by_lead"), dict)]
    if older:
        notes.append(f"No error by lead or hour of day recorded for {', '.join(older)} (trained before "
                     "`gridcast train` recorded them; retrain to see them).")
    if references:
        notes.append("Reference: the operator's own forecast in the training data, scored over the validation "
                     "hours where it has a value; compare it with the model's MAPE on those same hours.")
    else:
        notes.append("No reference (operator) forecast was recorded for these models.")
    view.status = "\n\n".join(notes)
    return view


def _reference(metrics: dict[str, Any]) -> dict[str, Any]:
    ref = metrics.get("reference")
    return ref if isinstance(ref, dict) else {}


def quality_view(client: ServiceClient, source: str, upload: str | Path | None, *, settings: Settings) -> QualityView:  # noqa: ARG001 - one signature for all views
    """The quality report and the data layer's plots for a table (the Data quality tab).

    The service runs the checks (``POST /data/check``) on its demo data (``GET
    /data/sample``) or on the upload; this view draws what it answered.

    Raises:
        UserInputError: no upload, or an unreadable file.
        ServiceUnavailable / ServiceError: the service is down or refused the table
            (its ``field`` names the column, its detail the row).
    """
    if source in (DEMO_CLEAN, DEMO_FAULTY):
        body, name = client.sample(days=DEMO_DAYS, faults=source == DEMO_FAULTY), source
    elif upload:
        body, name = quality_body(upload), Path(upload).name
    else:
        raise UserInputError("upload a file first (canonical Parquet, or CSV with the canonical columns)",
                             field="upload")
    answer = client.check(body)
    report = answer.get("report") or {}
    rows = []
    for check, info in (report.get("checks") or {}).items():
        examples = info.get("examples") or []
        rows.append({"check": check, "count": info.get("count", 0), "action": info.get("action") or "",
                     "examples": "; ".join(_example(e) for e in examples[:3])})
    view = QualityView(report=report, checks=pd.DataFrame(rows, columns=["check", "count", "action", "examples"]))
    flagged = sum(int(r["count"] or 0) for r in rows if r["check"] != "schema")
    verdict = "**usable**" if answer.get("usable") else "**not usable**: " + "; ".join(answer.get("reasons") or [])
    view.status = (f"{name}: {answer.get('rows_in')} rows in, {answer.get('rows_clean')} on the clean grid "
                   f"(step {answer.get('freq') or '?'}); {flagged} problems flagged across "
                   f"{sum(1 for r in rows if r['count'])} checks — {verdict}.")
    view.figures, region, n_regions = quality_figures(answer)
    if n_regions > 1:
        view.status += f" Plots show {region} (of {n_regions} regions)."
    return view


def _example(e: Any) -> str:
    if isinstance(e, dict):
        return ", ".join(f"{k}={v}" for k, v in list(e.items())[:4])
    return str(e)
