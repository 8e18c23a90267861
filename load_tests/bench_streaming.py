"""Benchmark the streaming pipeline: replay → Kafka → one bridge → Redis + forecasts topic.

Three phases against the real broker and Redis (started by the project's scripts),
each on its own topics, consumer group and Redis prefix, with ONE bridge process
(``gridcast stream``) whose RSS is sampled from ``/proc``:

1. **throughput** — ``--regions`` regions × ``--hours`` hours replayed as fast as the
   producer can; sustained obs/s = observations / (first produce → last one in Redis).
2. **latency** — the same regions paced at ``--rate`` obs/s (whole hours at a time,
   like a live feed); end-to-end latency = forecast published (after its Redis write;
   the Kafka timestamp of the forecast message) − produce time of the observation
   that completed the data point (carried in the forecast's ``trigger``).
3. **soak** — paced at ``--rate`` for ``--soak-s`` seconds; bridge RSS over time.

Every phase checks zero loss: Redis holds exactly the observations sent per region
(up to ``state_max_points``, the retention) and every region's latest forecast starts
after its last observation.

    .venv/bin/python load_tests/bench_streaming.py              # writes results + BENCHMARKS.md section
    .venv/bin/python load_tests/bench_streaming.py --soak-s 600  # the 10-minute soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import redis

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "load_tests" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"


def sh(script: str, action: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / script), action], check=True, capture_output=True)


def observations(regions: int, hours: int, start: pd.Timestamp) -> list[tuple[bytes, bytes, int]]:
    """(key, value, hour index) in time order: a daily cycle + noise per region (seeded)."""
    rng = np.random.default_rng(7)
    idx = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    base = rng.uniform(300, 3000, regions)
    hour = idx.hour.to_numpy()
    out = []
    for i, ts in enumerate(idx):
        iso = ts.isoformat()
        cycle = 1 + 0.3 * np.sin((hour[i] - 6) * np.pi / 12)
        loads = base * cycle * (1 + rng.normal(0, 0.02, regions))
        for r in range(regions):
            doc = {"region": f"r{r:03d}", "timestamp": iso, "load_mw": round(float(loads[r]), 2),
                   "temperature_c": round(25 + 5 * np.sin(hour[i] * np.pi / 12), 1)}
            out.append((doc["region"].encode(), json.dumps(doc, separators=(",", ":")).encode(), i))
    return out


#: the model store the bridge loads (``--via inprocess``: one LSTM served per bench region)
MODEL_STORE: dict[str, str | None] = {"home": None}


def serve_lstms(regions: int, *, until: pd.Timestamp) -> str:
    """A private model store with a quick LSTM served for each bench region (``r000``…).

    One quick LSTM is trained on synthetic data (a daily and weekly cycle, like the bench's
    series) for the 120 days before ``until`` (the bench's first hour: a model serves the
    months after its training data, and its calendar table covers them) and saved once
    per region, so the in-process bridge forecasts every region with an LSTM through the
    core, in one batched call per poll, and not with the seasonal-naive fallback it uses
    for a region nothing is served for.
    """
    first = (until - pd.Timedelta(days=120)).strftime("%Y-%m-%d")
    home = tempfile.mkdtemp(prefix="gridcast-bench-store-")
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from gridcast.synthetic import generate\n"
        "from gridcast.schema import region_frame\n"
        "from gridcast.models.lstm import LSTMForecaster\n"
        "from gridcast.store import save_model\n"
        f"df, _ = generate(days=120, regions=1, seed=7, start={first!r})\n"
        "frame = region_frame(df, 'region-1')[['load_mw']]\n"
        "fc = LSTMForecaster(quick=True, verbose=0).fit(frame)\n"
        f"for r in range({regions}):\n"
        "    save_model(fc, region=f'r{r:03d}', metadata={'validation': {'mape': 1.0}, 'freq': '1h', 'quick': True})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "BENTOML_HOME": home}, check=True,
                   timeout=1800)
    return home


class Phase:
    """One phase's names, settings environment and Redis checks."""

    def __init__(self, name: str, regions: int) -> None:
        uid = uuid.uuid4().hex[:8]
        self.name = name
        self.regions = [f"r{r:03d}" for r in range(regions)]
        self.prefix = f"bench{uid}"
        self.env = {
            "GRIDCAST_REDIS_URL": "redis://127.0.0.1:6379/0",
            "GRIDCAST_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
            "GRIDCAST_TOPIC_OBSERVATIONS": f"bench{uid}.obs",
            "GRIDCAST_TOPIC_REQUESTS": f"bench{uid}.req",
            "GRIDCAST_TOPIC_FORECASTS": f"bench{uid}.fc",
            "GRIDCAST_TOPIC_DEAD_LETTER": f"bench{uid}.dl",
            "GRIDCAST_TOPIC_WEATHER": f"bench{uid}.wx",
            "GRIDCAST_CONSUMER_GROUP": f"bench{uid}",
            "GRIDCAST_REDIS_KEY_PREFIX": self.prefix,
            "GRIDCAST_STREAM_METRICS_EVERY_S": "5",
        }
        self.r = redis.Redis()
        self.answered: dict[str, int] = {}  # forecasts published, per answering model
        if MODEL_STORE["home"]:
            self.env["BENTOML_HOME"] = MODEL_STORE["home"]

    @property
    def obs_topic(self) -> str:
        return self.env["GRIDCAST_TOPIC_OBSERVATIONS"]

    def total(self) -> int:
        pipe = self.r.pipeline(transaction=False)
        for region in self.regions:
            pipe.zcard(f"{self.prefix}:idx:{region}")
        return sum(pipe.execute())

    def latest_origins(self) -> dict[str, str | None]:
        keys = [f"{self.prefix}:cache:latest:{r}" for r in self.regions]
        return {r: (json.loads(v)["origin"] if v else None) for r, v in zip(self.regions, self.r.mget(keys), strict=True)}

    def cleanup(self) -> None:
        keys = list(self.r.scan_iter(f"{self.prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            self.r.delete(*keys[i : i + 1000])
        asyncio.run(self._delete_topics())

    async def _delete_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
        try:
            await admin.start()
            names = [v for k, v in self.env.items() if k.startswith("GRIDCAST_TOPIC_")]
            existing = set(await admin.list_topics())
            if mine := [t for t in names if t in existing]:
                await admin.delete_topics(mine)
        finally:
            await admin.close()


class BridgeProcess:
    def __init__(self, phase: Phase, via: str) -> None:
        env = {**os.environ, **phase.env, "GRIDCAST_FORECAST_VIA": via}
        self.log = open(Path(tempfile.gettempdir()) / f"gridcast-bench-bridge-{phase.name.split()[0]}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "training.cli", "stream"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def cpu_s(self) -> float:
        """User + system CPU seconds the bridge has used (from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024

    def wait_assigned(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "partitions assigned" in Path(self.log.name).read_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited: {Path(self.log.name).read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError("bridge did not get partitions")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.log.close()
        return rc


async def produce(phase: Phase, msgs: list[tuple[bytes, bytes, int]], *, rate: float | None,
                  regions: int) -> tuple[float, float]:
    """Send ``msgs``; ``rate`` = obs/s paced one hour (all regions) at a time, None = flat out."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all", linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    t0 = time.monotonic()
    try:
        pending = []
        step_s = regions / rate if rate else 0.0
        for n, (key, value, hour) in enumerate(msgs):
            if rate and n % regions == 0:
                due = t0 + hour * step_s
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
            pending.append(await producer.send(phase.obs_topic, value=value, key=key))
            if len(pending) >= 10_000 or (rate and n % regions == regions - 1):
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return t0, time.monotonic()


async def forecast_latencies(phase: Phase, *, expect_last: dict[str, str], timeout_s: float) -> list[float]:
    """End-to-end latencies (ms) of every forecast on the topic, read once the last ones are there."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(phase.env["GRIDCAST_TOPIC_FORECASTS"], bootstrap_servers="127.0.0.1:9092",
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    lat, seen_last = [], set()
    answered = phase.answered
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(seen_last) < len(expect_last):
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for msgs in batch.values():
                for m in msgs:
                    doc = json.loads(m.value)
                    lat.append(m.timestamp - doc["trigger"]["produced_ms"])
                    who = f"{doc.get('model')} (fallback)" if doc.get("fallback") else str(doc.get("model"))
                    answered[who] = answered.get(who, 0) + 1
                    if doc["origin"] == expect_last.get(doc["region"]):
                        seen_last.add(doc["region"])
    finally:
        await consumer.stop()
    return lat


def wait_complete(phase: Phase, expected: int, last_iso: str, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if phase.total() >= expected and all(o == last_iso for o in phase.latest_origins().values()):
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"{phase.name}: only {phase.total()} of {expected} observations after {timeout_s}s")


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run_phase(name: str, *, regions: int, hours: int, rate: float | None, via: str, start: pd.Timestamp,
              rss_every_s: float = 5.0) -> dict:
    phase = Phase(name, regions)
    msgs = observations(regions, hours, start)
    last_iso = pd.Timestamp(start + pd.Timedelta(hours=hours - 1)).isoformat()
    bridge = BridgeProcess(phase, via)
    rss: list[tuple[float, float]] = []
    try:
        bridge.wait_assigned()
        rss.append((0.0, bridge.rss_mb()))
        cpu0 = bridge.cpu_s()
        sampling = {"stop": False}

        async def sample_rss() -> None:
            t0 = time.monotonic()
            while not sampling["stop"]:
                await asyncio.sleep(rss_every_s)
                rss.append((round(time.monotonic() - t0, 1), round(bridge.rss_mb(), 1)))

        async def main() -> tuple[float, float]:
            sampler = asyncio.create_task(sample_rss())
            try:
                return await produce(phase, msgs, rate=rate, regions=regions)
            finally:
                sampling["stop"] = True
                await sampler

        t0, t_sent = asyncio.run(main())
        expected = min(hours, int(os.environ.get("GRIDCAST_STATE_MAX_POINTS", 24 * 7 * 10))) * regions
        t_done = wait_complete(phase, expected, last_iso, timeout_s=300)
        cpu = bridge.cpu_s() - cpu0
        lat = asyncio.run(forecast_latencies(phase, expect_last=dict.fromkeys(phase.regions, last_iso),
                                             timeout_s=60))
        rss.append((round(time.monotonic() - bridge.started, 1), round(bridge.rss_mb(), 1)))
        held = phase.total()
        origins = phase.latest_origins()
    finally:
        rc = bridge.stop()
        phase.cleanup()
    n = len(msgs)
    return {
        "phase": name,
        "forecast_via": via,
        "regions": regions,
        "hours": hours,
        "observations": n,
        "paced_rate_obs_s": rate,
        "produce_s": round(t_sent - t0, 2),
        "produce_obs_s": round(n / (t_sent - t0)),
        "end_to_end_s": round(t_done - t0, 2),
        "sustained_obs_s": round(n / (t_done - t0)),
        "bridge_cpu_s": round(cpu, 2),
        "obs_per_bridge_cpu_s": round(n / cpu) if cpu > 0 else None,
        "forecasts_published": len(lat),
        "answered_by": dict(sorted(phase.answered.items(), key=lambda kv: -kv[1])),
        "latency_ms": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": pct(lat, 100)},
        "loss_check": {"expected_in_redis": expected, "held_in_redis": held,
                       "latest_forecast_at_last_point": sum(o == last_iso for o in origins.values()),
                       "ok": held == expected and all(o == last_iso for o in origins.values())},
        "bridge_rss_mb": rss,
        "bridge_exit_code": rc,
    }


def _producer(rate: float | None) -> str:
    return "flat out" if not rate else f"paced {rate:,.0f} obs/s"


def render(results: dict) -> str:
    rows = []
    for p in results["phases"]:
        lat = p["latency_ms"]
        rss = [m for _, m in p["bridge_rss_mb"]]
        rows.append(
            f"| {p['phase']} | {p['forecast_via']} | {p['regions']} × {p['hours']} h = {p['observations']:,} | "
            f"{_producer(p['paced_rate_obs_s'])} | "
            f"**{p['sustained_obs_s']:,}** | {p['obs_per_bridge_cpu_s']:,} | {lat['p50']} / **{lat['p99']}** | "
            f"{'yes' if p['loss_check']['ok'] else '**NO**'} ({p['loss_check']['held_in_redis']:,}) | "
            f"{min(rss):.0f} → {max(rss):.0f} (end {rss[-1]:.0f}) | "
            + (" · ".join(f"{k} {v:,}" for k, v in p.get("answered_by", {}).items()) or "–") + " |"
        )
    return "\n".join([
        f"### Streaming — one bridge, real Kafka {results['kafka']} + Redis ({results['date']})",
        "",
        f"Machine: {results['machine']} (load average {results['load_average']} while it ran). "
        f"Command: `{results['command']}`. "
        "Targets: ≥ 2,000 obs/s, p99 ≤ 500 ms, zero loss, stable RSS.",
        "",
        "| phase | forecasts via | observations | producer | sustained obs/s (produce → all in Redis) "
        "| obs per bridge CPU-second | latency p50 / p99 ms (produce → forecast in Redis + published) "
        "| zero loss (held) | bridge RSS MB | forecasts published, by model |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Reading the table: in the flat-out phase latency is mostly the backlog the producer builds "
        "ahead of the bridge (queueing, not the bridge); in the paced phases the producer sets the rate, "
        "and 'sustained' also counts the drain after the last send — the bridge kept up when it is close "
        "to the paced rate. 'obs per bridge CPU-second' is the machine-independent cost: the rate one "
        "unshared core would carry. Raw numbers, RSS samples included: `load_tests/results/streaming.json`.",
        *([f"\n{results['note']}"] if results.get("note") else []),
    ])


def write_section(text: str) -> None:
    md = BENCHMARKS.read_text()
    begin, end = "<!-- BEGIN:streaming -->", "<!-- END:streaming -->"
    head, rest = md.split(begin, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regions", type=int, default=100)
    ap.add_argument("--hours", type=int, default=24 * 21, help="hours per region in the throughput phase")
    ap.add_argument("--rate", type=float, default=2000.0, help="paced phases: observations per second")
    ap.add_argument("--latency-hours", type=int, default=24 * 10, help="hours per region in the latency phase")
    ap.add_argument("--soak-s", type=float, default=180.0, help="soak length (s); 0 skips the soak")
    ap.add_argument("--via", default="naive", choices=["naive", "inprocess"], help="the bridge's forecaster")
    ap.add_argument("--note", default="", help="a sentence added under the table")
    ap.add_argument("--render-only", action="store_true", help="re-render BENCHMARKS.md from the saved JSON")
    args = ap.parse_args(argv)
    if args.render_only:
        results = json.loads((RESULTS / "streaming.json").read_text())
        if args.note:
            results["note"] = args.note
        write_section(render(results))
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    sh("redis.sh", "up")
    sh("kafka.sh", "up")
    start = pd.Timestamp("2020-01-06", tz="UTC")
    if args.via == "inprocess":
        MODEL_STORE["home"] = serve_lstms(args.regions, until=start)
    phases = [run_phase("throughput", regions=args.regions, hours=args.hours, rate=None, via=args.via, start=start)]
    print(json.dumps(phases[-1], indent=1)[:1500], flush=True)
    phases.append(run_phase("latency", regions=args.regions, hours=args.latency_hours, rate=args.rate,
                            via=args.via, start=start))
    print(json.dumps(phases[-1], indent=1)[:1500], flush=True)
    if args.soak_s > 0:
        soak_hours = int(args.soak_s * args.rate / args.regions)
        phases.append(run_phase(f"soak {args.soak_s:.0f} s", regions=args.regions, hours=soak_hours,
                                rate=args.rate, via=args.via, start=start, rss_every_s=10.0))
        print(json.dumps(phases[-1], indent=1)[:1500], flush=True)
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work, Python {platform.python_version()}",
        "kafka": os.environ.get("KAFKA_VERSION", "4.1.0"),
        "command": "python load_tests/bench_streaming.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": args.note,
        "load_average": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "phases": phases,
    }
    out = RESULTS / "streaming.json"
    out.write_text(json.dumps(results, indent=1))
    write_section(render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
