"""``gridcast train``: fit models per region, validate them, save them to the model store.

For each region and model alias the data's last ``--val-days`` are held out: the model
is fitted on what comes before, then scored on day-ahead forecasts issued every day of
the held-out stretch (each from the history up to its origin, with the observed
weather as the future covariates). Then the held-out actuals are absorbed with
``update`` (no refit, so the served model is exactly the validated one, only with a
fresher context) and the model is saved; :func:`gridcast.store.save_model` promotes
it if its validation MAPE beats the served one.

Example:
    gridcast data sample --out out/sample.parquet --days 120 --regions 2
    gridcast train --data out/sample.parquet --models sarimax,lstm --quick
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError
from gridcast.guard import METADATA_KEY as PLAUSIBLE_BAND_KEY, PlausibleBand
from gridcast.schema import LOAD, REGION, WEATHER, infer_freq, region_frame, regular, steps_per_day
from training.validation import validate_forecaster, validation_levels

if TYPE_CHECKING:
    from gridcast.models.base import Forecaster
    from gridcast.settings import Settings
    from gridcast.store import SaveResult

log = logging.getLogger(__name__)

#: days of synthetic data `ensure_quick_models` generates
QUICK_DAYS = 120
#: held-out validation days (quick / full)
QUICK_VAL_DAYS = 7
LIBRARIES = ("gridcast", "bentoml", "tensorflow-cpu", "keras", "statsmodels", "pandas", "numpy", "holidays")


@dataclass(frozen=True)
class TrainOutcome:
    """One trained (region, alias): validation metrics and what the store did."""

    region: str
    alias: str
    metrics: dict[str, float]
    fit_seconds: float
    result: SaveResult


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train models per region and save them to the BentoML model store",
        description="Fit, validate (held-out days, day-ahead) and save models; the better one is served.",
    )
    p.add_argument("--data", default=None, help="canonical Parquet table (gridcast data sample/import/check)")
    p.add_argument("--models", default="sarimax,lstm", help="comma-separated aliases (naive, sarimax, lstm, ensemble)")
    p.add_argument("--regions", default=None, help="comma-separated regions (default: all in the data)")
    p.add_argument("--quick", action="store_true", help="small, fast settings (demo, tests)")
    p.add_argument("--val-days", type=int, default=None, help="held-out validation days (default: settings)")
    p.add_argument(
        "--ensure-quick", action="store_true",
        help="no --data: if nothing is served yet, train quick demo models on synthetic data (make run/bento)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gridcast.schema import read_table
    from gridcast.settings import get_settings

    settings = get_settings()
    console = Console()
    if not console.is_terminal:  # logs and CI: do not squeeze tags into 80 columns
        console = Console(width=160)
    if args.ensure_quick:
        from gridcast.store import served_models

        ensure_quick_models(settings)
        for m in served_models():
            console.print(f"served: {m.region}/{m.alias} {m.tag} (validation MAPE "
                          f"{m.metadata.get('validation', {}).get('mape', float('nan')):.2f}%)")
        return 0
    if args.data is None:
        raise UserInputError("--data is required (or --ensure-quick for demo models)", field="data")
    aliases = _parse_aliases(args.models)
    df, meta = read_table(args.data)
    regions = None if args.regions is None else [r.strip() for r in args.regions.split(",") if r.strip()]
    outcomes = train_models(df, meta, aliases=aliases, quick=args.quick, settings=settings,
                            regions=regions, val_days=args.val_days, data_path=str(args.data))
    table = Table(title="gridcast train: validation (held-out days, day-ahead)")
    for col in ("region", "model", "tag", "MAPE %", "MAE", "cov 80", "cov 95", "fit s", "served"):
        table.add_column(col)
    for o in outcomes:
        m = o.metrics
        table.add_row(o.region, o.alias, o.result.tag, f"{m['mape']:.2f}", f"{m['mae']:.1f}",
                      _pct(m.get("coverage_80")), _pct(m.get("coverage_95")), f"{o.fit_seconds:.1f}",
                      "promoted" if o.result.promoted else "not promoted")
    console.print(table)
    for o in outcomes:
        console.print(f"{o.region}/{o.alias}: {'promoted' if o.result.promoted else 'not promoted'} — {o.result.reason}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.0f}%"


def _parse_aliases(text: str) -> list[str]:
    from gridcast.models.base import REGISTRY

    aliases = [a.strip().lower() for a in text.split(",") if a.strip()]
    if not aliases:
        raise UserInputError("--models is empty", field="models")
    unknown = [a for a in aliases if a not in REGISTRY]
    if unknown:
        raise UserInputError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}", field="models")
    return list(dict.fromkeys(aliases))


def available_aliases(wanted: Sequence[str]) -> list[str]:
    """The aliases among ``wanted`` whose implementation is importable in this build."""
    from gridcast.models.base import REGISTRY

    out = []
    for alias in wanted:
        module = REGISTRY[alias].partition(":")[0]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                log.warning("model %s is not available in this build (%s); skipped", alias, exc.name)
                continue
            raise
        out.append(alias)
    return out


def _make(alias: str, *, quick: bool, settings: Settings, country: str | None, tz: str | None) -> Forecaster:
    """A new forecaster configured as the backtest builds it (``backtest_cli.model_factories``: one factory,
    so a setting such as ``GRIDCAST_SARIMAX_LONG_WINDOW_WEEKS`` reaches the trained model as it reaches the
    backtest); the LSTM reports its epochs here (``verbose`` 2)."""
    from training.backtest_cli import model_factories

    return model_factories([alias], settings=settings, country=country, tz=tz, quick=quick, verbose=2)[alias]()


def data_hash(frame: pd.DataFrame) -> str:
    """A short content hash of a region's frame (index and values), for audit."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def regular_frame(df: pd.DataFrame, region: str) -> pd.DataFrame:
    """One region on a regular UTC grid (missing steps become NaN rows)."""
    return regular(region_frame(df, region))


def train_models(
    df: pd.DataFrame,
    meta: dict[str, Any],
    *,
    aliases: Sequence[str],
    quick: bool,
    settings: Settings,
    regions: Sequence[str] | None = None,
    val_days: int | None = None,
    data_path: str | None = None,
) -> list[TrainOutcome]:
    """Fit, validate and save every (region, alias); returns what happened to each.

    Args:
        df: canonical table (one or more regions).
        meta: its metadata (``country`` / ``timezone`` feed the calendar when present).
        aliases: models to train.
        quick: small, fast settings.
        settings: the process settings.
        regions: subset of regions (default: all).
        val_days: held-out days (default: 7 quick, ``settings.train_val_days`` otherwise).
        data_path: recorded in the metadata.

    Raises:
        UserInputError: an unknown region, or too little data for the validation split.
    """
    from gridcast.store import save_model

    known = sorted(df[REGION].unique())
    regions = list(known if regions is None else regions)
    missing = [r for r in regions if r not in known]
    if missing:
        raise UserInputError(f"region(s) {', '.join(missing)} not in the data; it has: {', '.join(known)}",
                             field="regions")
    val_days = val_days if val_days is not None else (QUICK_VAL_DAYS if quick else settings.train_val_days)
    if val_days < 1:
        raise UserInputError("--val-days must be at least 1", field="val-days")
    country = meta.get("country") or settings.country
    tz = meta.get("timezone") or settings.region_timezone
    levels = validation_levels(settings.levels)
    versions = library_versions()
    outcomes = []
    for region in regions:
        frame = regular_frame(df, region)
        split = frame.index[-1] + pd.Timedelta(frame.index.freq) - pd.Timedelta(days=val_days)
        train = frame[frame.index < split]
        if len(train) < 2 * len(frame[frame.index >= split]) or train[LOAD].notna().sum() < 14 * steps_per_day(
            infer_freq(frame.index)
        ):
            raise UserInputError(
                f"region {region}: {len(frame)} rows are too few for {val_days} validation days", field="val-days"
            )
        for alias in aliases:
            forecaster = _make(alias, quick=quick, settings=settings, country=country, tz=tz)
            log.info("training %s for %s on %s .. %s", alias, region, train.index[0], train.index[-1])
            t0 = time.perf_counter()
            forecaster.fit(train)
            fit_seconds = time.perf_counter() - t0
            metrics = validate_forecaster(forecaster, frame, split=split, levels=levels, tz=tz)
            forecaster.update(frame[frame.index >= split])
            metadata = {
                "train_start": train.index[0].isoformat(),
                "train_end": train.index[-1].isoformat(),
                "context_end": frame.index[-1].isoformat(),
                "freq": infer_freq(frame.index),
                "data_hash": data_hash(frame),
                "data_path": data_path or "",
                "synthetic": bool(meta.get("synthetic", False)),
                "country": country,
                "timezone": tz,
                "features": getattr(forecaster, "feature_spec_", None)
                or {"target": LOAD, "weather": [c for c in WEATHER if c in frame.columns]},
                "params": forecaster.params,
                "quick": quick,
                "multi_region": False,
                "validation": {**metrics, "val_days": val_days, "protocol": "day-ahead, observed weather"},
                "fit_seconds": round(fit_seconds, 3),
                # the guard's band: forecasts outside it are answered by the fallback
                PLAUSIBLE_BAND_KEY: PlausibleBand.from_load(frame[LOAD].to_numpy(float)).to_metadata(),
                "versions": versions,
                "trained_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            }
            result = save_model(forecaster, region=region, metadata=_jsonable(metadata))
            outcomes.append(TrainOutcome(region=region, alias=alias, metrics=metrics,
                                         fit_seconds=fit_seconds, result=result))
    return outcomes


def _jsonable(obj: Any) -> Any:
    """Plain JSON-able types (BentoML metadata rejects numpy scalars, tuples of paths, ...)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def ensure_quick_models(settings: Settings) -> None:
    """Train quick demo models on synthetic data if nothing is served yet.

    Used by ``make run`` / ``make bento`` so a fresh clone has something to serve:
    two synthetic regions, quick naive (the fallback), SARIMAX and LSTM models.
    Does nothing when served models exist and load; served models saved in an older
    layout (:class:`~gridcast.errors.IncompatibleModelError`) are retrained.
    """
    from gridcast.errors import IncompatibleModelError
    from gridcast.store import load_forecaster, served_models, unserve

    served = served_models()
    stale = []
    for m in served:
        try:
            load_forecaster(m.tag)
        except IncompatibleModelError as exc:
            stale.append(m.tag)
            log.warning("%s", exc.detail)
    if served and not stale:
        log.info("served models exist; quick training skipped")
        return
    if stale:
        unserve(stale)
    from gridcast.synthetic import generate

    df, meta = generate(days=QUICK_DAYS, regions=2, seed=settings.seed, country=settings.country)
    aliases = available_aliases(("naive", "sarimax", "lstm"))
    log.info("no served models: training quick %s on synthetic data", ", ".join(aliases))
    train_models(df, meta, aliases=aliases, quick=True, settings=settings)
