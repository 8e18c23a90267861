"""``gridcast retrain --region R``: refresh a region's models from live data, promote only what is better.

The history comes from the state store (Redis: what the bridge has written from the
stream, ``settings.state_max_points`` hours per region) or from ``--data`` (a
canonical table). Each served alias of the region (or ``--models``) is fitted and
validated exactly as ``gridcast train`` does it (the last ``--val-days`` held out,
day-ahead forecasts with the observed weather), and :func:`gridcast.store.save_model`
promotes it only if its validation MAPE beats the served model's. From the state store,
without ``--val-days``, at most a third of the history is held out
(:func:`live_val_days`): the store keeps ``state_max_points`` hours (70 days by
default), fewer than the three times ``train_val_days`` a fit needs. A running service
picks a promoted model up by itself (``settings.served_poll_s``); no restart.

The service runs this command as a separate process when its drift trigger fires
(``settings.retrain_on_drift``): serving never fits.

Example:
    gridcast retrain --region ES                       # from Redis (GRIDCAST_REDIS_URL)
    gridcast retrain --region ES --data data/spain.parquet --models lstm
"""

from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd

from gridcast.errors import InsufficientDataError, UserInputError
from gridcast.schema import REGION, TIMESTAMP

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "retrain",
        help="retrain a region's models from the state store's history (or a data file); promote only if better",
        description="Fit and validate a region's models on live history (Redis) or --data; the store promotes a "
        "model only if it beats the served one; a running service swaps it in without a restart.",
    )
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", required=True, help="the region to retrain")
    p.add_argument("--data", default=None, help="canonical Parquet table (default: the state store's history)")
    p.add_argument("--models", default=None, help="comma-separated aliases (default: those served for the region)")
    p.add_argument("--quick", action="store_true", help="small, fast settings (demo, tests)")
    p.add_argument("--val-days", type=int, default=None, help="held-out validation days (default: settings)")


def history_table(region: str, *, settings) -> pd.DataFrame:
    """The region's history in the state store as a canonical table.

    Raises:
        UserInputError: no Redis configured (the embedded store lives inside the service process).
        InsufficientDataError: the store holds nothing for the region.
    """
    from gridcast.stores import make_state_store

    if not settings.redis_url:
        raise UserInputError("retraining from live history needs GRIDCAST_REDIS_URL (or pass --data)", field="data")
    frame = make_state_store(settings).history(region)
    if frame is None or frame.empty:
        raise InsufficientDataError(f"the state store holds no observations for {region!r}", field="region")
    table = frame.reset_index().rename(columns={"index": TIMESTAMP})
    table.insert(1, REGION, region)
    return table


def live_val_days(table: pd.DataFrame, *, settings) -> int:
    """Validation days for a fit on live history: ``train_val_days``, at most a third of the days held.

    Example:
        >>> from types import SimpleNamespace
        >>> t = pd.DataFrame({TIMESTAMP: pd.date_range("2024-01-01", periods=70 * 24, freq="h", tz="UTC")})
        >>> live_val_days(t, settings=SimpleNamespace(train_val_days=28))
        23
    """
    stamps = pd.DatetimeIndex(table[TIMESTAMP])
    days = int((stamps.max() - stamps.min() + pd.Timedelta(hours=1)) / pd.Timedelta(days=1))
    return max(1, min(settings.train_val_days, days // 3))


def run(args: argparse.Namespace) -> int:
    from gridcast.schema import read_table
    from gridcast.settings import get_settings
    from gridcast.store import served_models
    from training.train_cli import train_models

    settings = get_settings()
    val_days = args.val_days
    if args.data:
        df, meta = read_table(args.data)
    else:
        df, meta = history_table(args.region, settings=settings), {"source": "state store"}
        if val_days is None:
            val_days = live_val_days(df, settings=settings)
            log.info("retrain %s: %d validation days of %d days of live history", args.region, val_days,
                     df[TIMESTAMP].nunique() // 24)
    aliases = ([a.strip() for a in args.models.split(",") if a.strip()] if args.models
               else sorted({m.alias for m in served_models() if m.region == args.region}))
    if not aliases:
        raise UserInputError(f"no model is served for {args.region!r}; name --models", field="models")
    outcomes = train_models(df, meta, aliases=aliases, quick=args.quick, settings=settings, regions=[args.region],
                            val_days=val_days, data_path=args.data or "state")
    for o in outcomes:
        print(f"{o.region}/{o.alias}: MAPE {o.metrics['mape']:.2f}% — "
              f"{'promoted' if o.result.promoted else 'not promoted'}: {o.result.reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m training.retrain_cli`` (how the service's drift trigger starts it)."""
    parser = argparse.ArgumentParser(prog="gridcast retrain")
    _arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(parser.parse_args(argv))
    except UserInputError as exc:
        print(f"gridcast retrain: error: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
