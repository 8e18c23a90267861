"""Replay Spain's last month through the real loop: live scores with weather vintages, next to the no-weather path.

What it does (real Kafka and Redis, started by the project's scripts):

1. **Data.** Imports and date-repairs the Spain data set with the data layer (the
   ``gridcast data import`` / ``data check --repair-dates`` commands of BENCHMARKS.md's
   models section), into ``--work``.
2. **Models.** Trains the served models (``--models``, default LSTM and SARIMAX) with
   ``gridcast train`` on the data before ``--start`` (2018-12-01), into a model store
   of its own (``BENTOML_HOME=<work>/bentoml``; reused when it already serves them,
   ``--retrain`` forces a new fit).
3. **Replay**, once per mode (``weather`` and ``none``), each on fresh topics, consumer
   groups and Redis prefixes: one bridge process per model (``gridcast stream``,
   in-process forecasts, ``GRIDCAST_STREAM_MODEL=<alias>``). The ``--warmup-days``
   before ``--start`` go to the observations topic flat out (the models' context);
   then every hour of the month is sent on its own and the next only once every
   bridge has published the forecast from that hour (lockstep: one forecast per
   origin, as a live feed gives, as fast as the bridges go). In ``weather`` mode a
   weather-forecast vintage per day, issued at 12:00 UTC for the next 36 h, goes to
   the weather topic when the replay reaches its issue time; its temperature is the
   observed one plus the backtest's seeded forecast-like error
   (:func:`training.backtest.future_weather`, mode ``noisy``). In ``none`` mode the
   weather topic stays empty: the models' no-weather path.
4. **Scores**, read at the end from each bridge's ledger in Redis with the scoring
   module (:func:`gridcast.scoring.live_metrics`, the numbers ``GET /models`` and the
   gauges show): MAPE, MAE, bias and interval coverage per model, over the loop's
   30-day window (the month's last 30 days of targets) and per lead band.

Writes ``load_tests/results/replay.json`` and regenerates the ``replay`` section of
BENCHMARKS.md.

    nice -n 10 .venv/bin/python load_tests/bench_replay.py --spain ../shared/data/spain
    .venv/bin/python load_tests/bench_replay.py --render-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import redis

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "load_tests" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
GRIDCAST = [sys.executable, "-m", "training.cli"]
REGION = "ES"
REDIS_URL = "redis://127.0.0.1:6379/0"
BOOTSTRAP = "127.0.0.1:9092"
#: weather vintages: issued daily at this hour (UTC), covering this many hours ahead
ISSUE_HOUR = 12
LEAD_H = 36


def sh(script: str, action: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / script), action], check=True, capture_output=True)


def import_commands(spain: Path, work: Path) -> list[list[str]]:
    """The data layer's import and date repair (the commands of BENCHMARKS.md's models section)."""
    return [
        ["data", "import", str(spain / "energy_dataset.csv"), "--out", str(work / "spain_raw.parquet"),
         "--time-col", "time", "--load-col", "total load actual", "--reference-col", "total load forecast",
         "--region", REGION, "--country", "ES", "--tz", "Europe/Madrid",
         "--weather", str(spain / "weather_features.csv.gz"), "--station-col", "city_name",
         "--weather-time-col", "dt_iso", "--weather-temp-col", "temp", "--temp-unit", "K"],
        ["data", "check", str(work / "spain_raw.parquet"), "--repair-dates", "--report", str(work / "quality.json"),
         "--clean-out", str(work / "spain.parquet")],
    ]


def prepare_data(spain: Path, work: Path) -> Path:
    out = work / "spain.parquet"
    if not out.exists():
        for cmd in import_commands(spain, work):
            subprocess.run([*GRIDCAST, *cmd], cwd=ROOT, check=True, capture_output=True)
    return out


def served(aliases: list[str]) -> dict[str, dict]:
    """alias -> {tag, validation MAPE} of the region's served models in this process's store."""
    from gridcast.store import served_models

    return {m.alias: {"tag": m.tag, "validation_mape": (m.metadata.get("validation") or {}).get("mape")}
            for m in served_models() if m.region == REGION and m.alias in aliases}


def train(df: pd.DataFrame, meta: dict, work: Path, start: pd.Timestamp, aliases: list[str], *,
          retrain: bool) -> dict:
    """Fit the served models on the data before ``start`` (in the store of ``BENTOML_HOME``)."""
    from gridcast.schema import TIMESTAMP, write_table

    have = served(aliases)
    if not retrain and set(have) == set(aliases):
        return {"trained_now": False, "served": have}
    path = write_table(df[df[TIMESTAMP] < start], work / "spain_train.parquet", meta)
    t0 = time.monotonic()
    subprocess.run([*GRIDCAST, "train", "--data", str(path), "--models", ",".join(aliases), "--regions", REGION],
                   cwd=ROOT, check=True)
    return {"trained_now": True, "train_s": round(time.monotonic() - t0, 1), "served": served(aliases)}


def vintages(frame: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp, *, seed: int
             ) -> list[tuple[pd.Timestamp, bytes, bytes]]:
    """One vintage a day at ``ISSUE_HOUR`` UTC for the next ``LEAD_H`` hours: observed + the backtest's noise."""
    from gridcast.series import Series
    from gridcast.weather import message
    from training.backtest import Origin, future_weather

    out = []
    for issued in pd.date_range(first, last, freq="1D"):
        target0 = issued + pd.Timedelta(hours=1)  # lead 1 h: the backtest's origin is its first target
        weather = future_weather(frame, Origin(target0, LEAD_H, pd.DatetimeIndex([])), "noisy", seed=seed)
        doc = message(REGION, int(issued.timestamp()), Series.from_frame(weather, step=3600))
        if doc["points"]:
            out.append((issued, REGION.encode(), orjson.dumps(doc)))
    return out


class Run:
    """One mode's topics, and per model a consumer group, a Redis prefix and a bridge process."""

    def __init__(self, mode: str, aliases: list[str], store: Path) -> None:
        uid = uuid.uuid4().hex[:8]
        self.mode = mode
        self.topics = {k: f"replay{uid}.{k}" for k in ("observations", "requests", "forecasts", "dead_letter",
                                                         "weather")}
        self.prefixes = {a: f"replay{uid}{a}" for a in aliases}
        self.store = store
        self.r = redis.Redis.from_url(REDIS_URL)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def env(self, alias: str) -> dict[str, str]:
        return {
            **os.environ, "BENTOML_HOME": str(self.store), "GRIDCAST_REDIS_URL": REDIS_URL,
            "GRIDCAST_KAFKA_BOOTSTRAP": BOOTSTRAP, "GRIDCAST_FORECAST_VIA": "inprocess",
            "GRIDCAST_STREAM_MODEL": alias, "GRIDCAST_CONSUMER_GROUP": self.prefixes[alias],
            "GRIDCAST_REDIS_KEY_PREFIX": self.prefixes[alias], "GRIDCAST_STREAM_POLL_MS": "50",
            "GRIDCAST_STREAM_METRICS_EVERY_S": "30",
            **{f"GRIDCAST_TOPIC_{k.upper()}": v for k, v in self.topics.items()},
        }

    def start(self, work: Path) -> None:
        for alias in self.prefixes:
            self.logs[alias] = work / f"bridge-{self.mode}-{alias}.log"
            with open(self.logs[alias], "w") as log:
                self.procs[alias] = subprocess.Popen([*GRIDCAST, "stream"], cwd=ROOT, env=self.env(alias),
                                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        for alias, proc in self.procs.items():
            while "partitions assigned" not in self.logs[alias].read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bridge {alias} did not start: {self.logs[alias].read_text()[-2000:]}")
                time.sleep(0.5)

    def origins(self) -> dict[str, pd.Timestamp | None]:
        keys = [f"{p}:cache:latest:{REGION}" for p in self.prefixes.values()]
        return {a: (pd.Timestamp(json.loads(v)["origin"]) if v else None)
                for a, v in zip(self.prefixes, self.r.mget(keys), strict=True)}

    async def reached(self, ts: pd.Timestamp, timeout_s: float) -> bool:
        """Wait until every bridge's latest forecast starts from ``ts`` (False on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(o is not None and o >= ts for o in self.origins().values()):
                return True
            await asyncio.sleep(0.01)
        return False

    def stop(self) -> dict[str, int]:
        codes = {}
        for alias, proc in self.procs.items():
            proc.terminate()
            codes[alias] = proc.wait(timeout=120)
        return codes

    def cleanup(self) -> None:
        for prefix in self.prefixes.values():
            keys = list(self.r.scan_iter(f"{prefix}:*", count=1000))
            for i in range(0, len(keys), 1000):
                self.r.delete(*keys[i : i + 1000])
        asyncio.run(self._delete_topics())

    async def _delete_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            if mine := [t for t in self.topics.values() if t in existing]:
                await admin.delete_topics(mine)
        finally:
            await admin.close()


async def replay(run: Run, warm: pd.DataFrame, month: pd.DataFrame, weather: list, *, timeout_s: float) -> dict:
    """Warm-up flat out, then the month hour by hour in lockstep with the bridges."""
    from aiokafka import AIOKafkaProducer

    from streaming.replay import messages

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    try:
        t0 = time.monotonic()
        await asyncio.gather(*[await producer.send(run.topics["observations"], value=v, key=k)
                               for _, k, v in messages(warm)])
        if not await run.reached(warm["timestamp"].iloc[-1], timeout_s=600):
            raise RuntimeError(f"the bridges did not catch up with the warm-up: {run.origins()}")
        warm_s = time.monotonic() - t0
        pending = list(weather)
        sent_vintages, missed = 0, []
        t0 = time.monotonic()
        for ts, key, value in messages(month):
            while pending and pending[0][0] <= ts:  # a vintage before its hour's observation (as the replay does)
                _, wkey, wvalue = pending.pop(0)
                await (await producer.send(run.topics["weather"], value=wvalue, key=wkey))
                sent_vintages += 1
            await (await producer.send(run.topics["observations"], value=value, key=key))
            if not await run.reached(ts, timeout_s):
                missed.append(ts.isoformat())
        month_s = time.monotonic() - t0
    finally:
        await producer.stop()
    return {"warmup_s": round(warm_s, 1), "replay_s": round(month_s, 1), "hours": len(month),
            "vintages_sent": sent_vintages, "hours_without_forecast": missed}


def scores(run: Run, bands: tuple[int, ...]) -> dict[str, dict]:
    """Per model: the live metrics from its bridge's ledger, and how many forecasts named a vintage."""
    from gridcast.scoring import ForecastRecord, RedisLedger, live_metrics

    out = {}
    for alias, prefix in run.prefixes.items():
        ledger = RedisLedger(REDIS_URL, prefix=prefix)
        try:
            records = [ForecastRecord.from_json(v) for v in ledger.client.hvals(f"{prefix}:ledger:{REGION}")]
            out[alias] = {
                "forecasts_held": len(records),
                "forecasts_naming_a_vintage": sum(r.weather_issued_at is not None for r in records),
                "live": live_metrics(ledger.points(REGION), bands=bands),
            }
        finally:
            ledger.close()
    return out


def run_mode(mode: str, *, df: pd.DataFrame, aliases: list[str], work: Path, store: Path, start: pd.Timestamp,
             end: pd.Timestamp, warmup_days: int, seed: int, timeout_s: float) -> dict:
    from gridcast.schema import REGION as REGION_COL
    from gridcast.schema import TIMESTAMP, region_frame
    from gridcast.settings import get_settings

    rows = df[df[REGION_COL] == REGION]
    warm = rows[(rows[TIMESTAMP] >= start - pd.Timedelta(days=warmup_days)) & (rows[TIMESTAMP] < start)]
    month = rows[(rows[TIMESTAMP] >= start) & (rows[TIMESTAMP] < end)]
    weather = []
    if mode == "weather":
        first = start.normalize() - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR)
        weather = vintages(region_frame(df, REGION), first, month[TIMESTAMP].iloc[-1], seed=seed)
    run = Run(mode, aliases, store)
    try:
        run.start(work)
        timing = asyncio.run(replay(run, warm.reset_index(drop=True), month.reset_index(drop=True), weather,
                                    timeout_s=timeout_s))
        time.sleep(2)  # the last hour's scoring is in the same batch as its forecast; a margin for the ledger
        models = scores(run, tuple(get_settings().score_lead_bands))
    finally:
        codes = run.stop()
        run.cleanup()
    return {"mode": mode, **timing, "models": models, "bridge_exit_codes": codes}


# ---- the BENCHMARKS.md section ---------------------------------------------------------------------------
def _f(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:,.{nd}f}"


def render(results: dict) -> str:
    window = "30d"
    levels = sorted({lv for r in results["runs"] for alias, m in r["models"].items()
                     for lv in m["live"].get(alias, {}).get(window, {}).get("coverage", {})}, key=int)
    rows, band_rows = [], []
    bands: list[str] = []
    for r in results["runs"]:
        for alias, m in r["models"].items():
            w = m["live"].get(alias, {}).get(window)
            if not w:
                rows.append(f"| {r['mode']} | {alias} | 0 | — | — | — |" + " — |" * len(levels) + " — | — |")
                continue
            cov = " | ".join(_f(100 * w["coverage"][lv], 1) if lv in w["coverage"] else "—" for lv in levels)
            rows.append(
                f"| {r['mode']} | {alias} | {w['n']:,} | **{_f(w['mape'])}** | {_f(w['mae'], 0)} | {_f(w['bias'], 0)} "
                f"| {cov} | {m['forecasts_naming_a_vintage']} / {m['forecasts_held']} | {r['replay_s']:.0f} s |")
            bands = bands or list(w["bands"])
            band_rows.append(f"| {r['mode']} | {alias} | "
                             + " | ".join(_f(w["bands"].get(b, {}).get("mape")) for b in bands) + " |")
    t = results["training"]
    models = ", ".join(f"{a} `{s['tag']}` (validation MAPE {_f(s['validation_mape'])} %)"
                       for a, s in t["served"].items())
    missed = sum(len(r["hours_without_forecast"]) for r in results["runs"])
    return "\n".join([
        f"### Replay of Spain's last month through the loop ({results['date']})",
        "",
        f"Machine: {results['machine']} (load average {results['load_average']} at the end). "
        f"Command: `{results['command']}`.",
        "",
        f"Models trained on Spain before {results['start'][:10]} ({t['note']}): {models}. "
        f"Replay: {results['warmup_days']} days of warm-up flat out, then {results['start'][:10]} → "
        f"{results['last'][:16]} UTC hour by hour through the bridge (one bridge per model, in-process forecasts, "
        f"horizon {results['horizon']} h, one forecast per hour: the next hour is sent once every bridge has "
        f"published), forecasts scored by the bridge as the actuals arrive. `weather` = one vintage a day issued "
        f"at {ISSUE_HOUR:02d}:00 UTC for the next {LEAD_H} h on the weather topic: observed temperature plus the "
        f"backtest's `noisy` forecast error (seed {results['seed']}); `none` = no vintage (the no-weather path). "
        f"Scores: the loop's own {window} window (the targets of the replay's last 30 days: all of them when "
        f"fewer days are replayed), read from the "
        f"bridge's ledger in Redis with `gridcast.scoring.live_metrics`. Hours whose forecast did not come: "
        f"{missed}.",
        "",
        "| weather | model | n scored | live MAPE % | MAE MW | bias MW | "
        + " | ".join(f"{lv} % coverage" for lv in levels) + " | forecasts naming a vintage | replay took |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(levels) + "---:|---:|",
        *rows,
        "",
        "Live MAPE % by lead band (hours ahead):",
        "",
        "| weather | model | " + " | ".join(bands) + " |",
        "|---|---|" + "---:|" * len(bands),
        *band_rows,
        "",
        "Raw numbers (24 h and 7 d windows too): `load_tests/results/replay.json`.",
        *([f"\n{results['note']}"] if results.get("note") else []),
    ])


def write_section(text: str) -> None:
    md = BENCHMARKS.read_text()
    begin, end = "<!-- BEGIN:replay -->", "<!-- END:replay -->"
    if begin not in md:
        anchor = "<!-- BEGIN:streaming -->"
        md = md.replace(anchor, f"{begin}\n{end}\n\n{anchor}", 1)
    head, rest = md.split(begin, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spain", type=Path, default=ROOT.parent / "shared" / "data" / "spain",
                    help="the Spain data set (energy_dataset.csv, weather_features.csv.gz)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gridcast-bench-replay"),
                    help="data, model store (BENTOML_HOME) and bridge logs")
    ap.add_argument("--models", default="lstm,sarimax")
    ap.add_argument("--start", default="2018-12-01", help="first replayed hour (UTC); the models train before it")
    ap.add_argument("--days", type=int, default=31, help="days replayed from --start")
    ap.add_argument("--warmup-days", type=int, default=61, help="days before --start sent first (the context)")
    ap.add_argument("--modes", default="weather,none", help="weather (vintages) and/or none (no-weather path)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the vintages' forecast error")
    ap.add_argument("--timeout-s", type=float, default=60.0, help="longest wait for one hour's forecasts")
    ap.add_argument("--retrain", action="store_true", help="train even if the store already serves the models")
    ap.add_argument("--note", default="", help="a sentence added under the tables")
    ap.add_argument("--render-only", action="store_true", help="re-render BENCHMARKS.md from the saved JSON")
    args = ap.parse_args(argv)
    if args.render_only:
        results = json.loads((RESULTS / "replay.json").read_text())
        results["note"] = args.note or results.get("note", "")
        write_section(render(results))
        return 0

    work = args.work
    store = work / "bentoml"
    work.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(store)  # before the store is first touched: this run's own model store
    from gridcast.schema import read_table
    from gridcast.settings import get_settings

    aliases = [a.strip() for a in args.models.split(",") if a.strip()]
    start = pd.Timestamp(args.start, tz="UTC")
    end = start + pd.Timedelta(days=args.days)
    sh("redis.sh", "up")
    sh("kafka.sh", "up")
    df, meta = read_table(prepare_data(args.spain, work))
    training = train(df, meta, work, start, aliases, retrain=args.retrain)
    training["note"] = ("fitted in this run, " + f"{training['train_s']:.0f} s" if training["trained_now"]
                        else "already served by the store: fitted earlier by the same `gridcast train` on the same cut")
    runs = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        runs.append(run_mode(mode, df=df, aliases=aliases, work=work, store=store, start=start, end=end,
                             warmup_days=args.warmup_days, seed=args.seed, timeout_s=args.timeout_s))
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "models"}, indent=1), flush=True)
    last = df[(df["timestamp"] >= start) & (df["timestamp"] < end)]["timestamp"].iloc[-1]
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work, "
                   f"Python {platform.python_version()}",
        "command": "python load_tests/bench_replay.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "start": start.isoformat(), "last": last.isoformat(), "warmup_days": args.warmup_days, "seed": args.seed,
        "horizon": get_settings().stream_horizon, "training": training, "runs": runs, "note": args.note,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(results, indent=1, default=str))
    write_section(render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
