"""``gridcast backtest`` — score models on rolling or day-ahead origins (thin: see backtest.py).

Reads a canonical Parquet table, takes one region, builds each model from the
settings (country and time zone from the table's metadata unless given), runs
:func:`training.backtest.run_backtest` with a progress bar, prints a table, writes
JSON and (optionally) PNGs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backtest", help="leakage-free backtest of models (rolling or day-ahead origins)")
    p.add_argument("--data", type=Path, required=True, help="canonical Parquet table (cleaned)")
    p.add_argument("--models", default="naive,sarimax", help="comma-separated: naive,sarimax,lstm,ensemble")
    p.add_argument("--horizon", type=int, default=24, help="steps per forecast (rolling protocol; default 24)")
    p.add_argument("--start", required=True, help="first origin / first scored day (UTC date or time)")
    p.add_argument("--end", required=True, help="end of the backtest (exclusive, UTC)")
    p.add_argument("--step", default="24h", help="time between origins, rolling protocol (default 24h)")
    p.add_argument("--refit", default="7D", help="refit a model after this long (default 7D); updates in between")
    p.add_argument("--protocol", choices=["rolling", "day-ahead"], default="rolling",
                   help="rolling origins, or issue 12:00 UTC on D-1 and score day D")
    p.add_argument("--weather", choices=["oracle", "noisy", "noisy-ar1", "none"], default="noisy",
                   help="future weather given to models: observed (upper bound), forecast-like (noise 0.5 -> 2.0 C "
                        "from lead 1 to 36 h, independent per hour; noisy-ar1: correlated hours), or none")
    p.add_argument("--reference-col", default="reference_mw",
                   help="outside forecast column scored side by side, if present (default reference_mw)")
    p.add_argument("--region", default=None, help="region to backtest (default: the only one)")
    p.add_argument("--country", default=None, help="holiday country (default: table metadata, then settings)")
    p.add_argument("--tz", default=None, help="region time zone (default: table metadata, then settings)")
    p.add_argument("--levels", default="80,90,95", help="interval levels to score (default 80,90,95)")
    p.add_argument("--quick", action="store_true", help="quick model settings (tests, demos)")
    p.add_argument("--seed", type=int, default=None, help="seed of the noisy weather (default: settings)")
    p.add_argument("--out", type=Path, required=True, help="JSON file for config, metrics and timings")
    p.add_argument("--forecasts-out", type=Path, default=None, help="also write every scored forecast (Parquet)")
    p.add_argument("--plots", type=Path, default=None, help="directory for PNGs (error by lead, a sample week)")
    p.set_defaults(func=run)


def model_factories(aliases: list[str], *, settings, country: str | None, tz: str | None,
                    quick: bool = False, verbose: int = 0) -> dict[str, Any]:
    """name -> a function returning a new forecaster configured from the settings.

    The one place where a model's constructor arguments come from the settings: the
    backtest and ``gridcast train`` (``train_cli._make``) both build their models here.
    ``verbose``: the LSTM's Keras progress (0 in backtests, one line per epoch in training).
    """
    from gridcast.models.base import REGISTRY, make

    unknown = [a for a in aliases if a not in REGISTRY]
    if unknown:
        from gridcast.errors import UserInputError

        raise UserInputError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}", field="models")

    def params(alias: str) -> dict[str, Any]:
        if alias == "sarimax":
            return {"window_weeks": settings.sarimax_window_weeks, "country": country, "tz": tz,
                    "long_window_weeks": settings.sarimax_long_window_weeks, **({"maxiter": 10} if quick else {})}
        if alias == "lstm":
            return {"country": country, "tz": tz, "seed": settings.seed, "quick": quick, "verbose": verbose}
        if alias == "ensemble":
            # the SARIMAX member is refitted weekly inside the ensemble (seconds), the
            # LSTM member only when the ensemble itself is refitted (minutes); the buffer
            # it refits on covers its window, the two-stage form's long one included
            return {"members": ["sarimax", "lstm"],
                    "member_params": {m: params(m) for m in ("sarimax", "lstm")},
                    "member_refit_days": {"sarimax": 7},
                    "buffer_days": max(settings.sarimax_window_weeks, settings.sarimax_long_window_weeks) * 7 + 7}
        return {}

    def build(alias: str):
        # the LSTM also reads its sizes (input days, units, epochs ...) from the settings object
        # itself; not through params: an ensemble saves its members' params as JSON
        return make(alias, **params(alias), **({"settings": settings} if alias == "lstm" else {}))

    return {a: (lambda a=a: build(a)) for a in aliases}


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.backtest import BacktestConfig, run_backtest
    from training.backtest_report import plot_results, render_table
    from gridcast.errors import UserInputError
    from gridcast.schema import REGION, read_table, region_frame
    from gridcast.settings import get_settings

    settings = get_settings()
    if not args.data.exists():
        raise UserInputError(f"no such file: {args.data}", field="data")
    df, meta = read_table(args.data)
    regions = sorted(df[REGION].unique())
    region = args.region or (regions[0] if len(regions) == 1 else None)
    if region is None or region not in regions:
        raise UserInputError(f"choose a region with --region: {', '.join(map(str, regions))}", field="region")
    frame = region_frame(df, region)
    try:
        levels = tuple(int(x) for x in args.levels.split(","))
        start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
        pd.Timedelta(args.step), pd.Timedelta(args.refit)
    except ValueError as exc:
        raise UserInputError(f"bad --levels/--start/--end/--step/--refit: {exc}") from None
    config = BacktestConfig(
        start=start, end=end, horizon=args.horizon, step=args.step, refit=args.refit,
        protocol=args.protocol, weather=args.weather, levels=levels,
        seed=settings.seed if args.seed is None else args.seed,
    )
    country = args.country or meta.get("country") or settings.country
    tz = args.tz or meta.get("timezone") or settings.region_timezone
    aliases = [a.strip() for a in args.models.split(",") if a.strip()]
    factories = model_factories(aliases, settings=settings, country=country, tz=tz, quick=args.quick)

    console = Console(stderr=True, soft_wrap=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        result = run_backtest(frame, factories, config, reference_col=args.reference_col, progress=progress)

    # a pipe or log file gets the full table, not one squeezed to 80 columns
    out = Console() if sys.stdout.isatty() else Console(width=160)
    out.print(render_table(result, title=f"{region}: {config.protocol}, weather {config.weather}"))
    payload = {"data": str(args.data), "region": region, "country": country, "tz": tz, **result.to_json()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str))
    for name, g in result.guard.items():
        if g["flagged"] or sum(g["member_drops"].values()):
            console.print(f"[yellow]guard: {name}: {g['flagged']} of {g['checked']} forecasts implausible, answered by "
                          f"{g['answered_by']}; member forecasts dropped: {g['member_drops']}[/yellow]")
    console.print(f"metrics: {args.out}")
    if args.forecasts_out:
        args.forecasts_out.parent.mkdir(parents=True, exist_ok=True)
        result.forecasts.to_parquet(args.forecasts_out)
    if args.plots:
        for path in plot_results(result, args.plots):
            console.print(f"plot: {path}")
    return 0
