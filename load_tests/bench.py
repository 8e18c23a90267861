"""The load benchmark suite: regenerates the ``load`` section of BENCHMARKS.md.

One run, one machine, one build, side by side:

1. **Batching ON vs OFF** — uncached LSTM forecasts (:class:`UncachedForecastUser`:
   each request its own history, random horizon) at 1, 8, 32, 64 and 128 closed-loop
   users against a ``bentoml serve`` of the service with adaptive batching on, then the
   same against a second one started with ``GRIDCAST_BATCHING=false`` (the setting the
   service reads for ``batchable=``). Throughput, p50/p95/p99, failures, and the mean
   model batch size from the service's own ``gridcast_model_batch_size`` histogram.
   **Interleaved** (``pairs``): both services side by side, ``--pairs`` alternating
   rounds at 64 users; the headline ratio is the median round's, which the machine's
   drift over minutes does not decide.
2. **Cached path at a fixed arrival rate** — :class:`CachedForecastUser` paced with
   Poisson arrivals (``poisson_throughput``) so users × rate = the target (500 req/s by default).
3. **Cold start** (process start → ``/readyz`` OK) of both services, and service RSS
   (its process tree) idle and at its highest under load.
4. **Memory soak** — :class:`MixedUser` for ``--soak-s`` seconds, RSS sampled every
   few seconds; "flat" = the last minute's median within 5 % of the first minute's.

CPU split: the service runs under ``taskset -c {--service-cpus}`` and Locust under
``taskset -c {--locust-cpus}`` (default: service on CPU 1, Locust on CPU 0 of a 2-core
machine), so the load generator cannot steal the service's core; Locust uses
FastHttpUser (gevent + geventhttpclient), which keeps one core ahead of the service.

Every run appends a JSON record to ``load_tests/results/load.json`` and prints it; the
tables are regenerated from the latest record of each part, each with its command,
machine and date. ``--others`` then runs the other ``load_tests/bench_*.py`` scripts
(each rewrites its own section).

    .venv/bin/python load_tests/bench.py                      # everything (≈ 25 min)
    .venv/bin/python load_tests/bench.py --only batching --duration 20
    .venv/bin/python load_tests/bench.py --only cached,soak --soak-s 600
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `load_tests.common` importable
    sys.path.insert(0, str(ROOT))

from load_tests.common import (  # noqa: E402
    RESULTS,
    ServiceProcess,
    free_port,
    locust_command,
    machine,
    read_stats_json,
)

log = logging.getLogger("gridcast.bench")

BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS_JSON = RESULTS / "load.json"
PARTS = ("model", "batching", "pairs", "payload", "batch64", "overload", "cached", "soak", "variant")
#: the history form uncached requests send (``--payload``; locustfile's LOADTEST_PAYLOAD)
PAYLOAD = {"form": "objects"}
UNCACHED = "POST /forecast [uncached lstm]"
CACHED = "POST /forecast [cached]"

#: targets of the serving issue (one service core)
TARGET_RATIO, TARGET_P99_BATCHED, TARGET_P99_CACHED, TARGET_FLAT = 2.5, 250.0, 25.0, 0.05
TARGET_RPS_64, TARGET_CPU_MS, TARGET_BATCH64_FPS, TARGET_CPU_HIT_MS, TARGET_P99_503 = 500.0, 2.0, 3000.0, 0.5, 50.0
TARGET_PREDICT_FPS, TARGET_COLD_S = 5000.0, 5.0


class RssSampler:
    """Samples a service's RSS every ``every_s`` seconds in a thread."""

    def __init__(self, service: ServiceProcess, every_s: float = 1.0) -> None:
        self.service, self.every_s = service, every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((round(time.perf_counter() - self._t0, 1), self.service.rss_mb()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)


def batch_counts(url: str) -> tuple[float, float]:
    """(sum, count) of the service's ``gridcast_model_batch_size`` histogram, all processes."""
    import httpx

    total = count = 0.0
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return 0.0, 0.0
    for line in text.splitlines():
        m = re.match(r"gridcast_model_batch_size_(sum|count)\{[^}]*\}\s+(\S+)", line)
        if m:
            if m.group(1) == "sum":
                total += float(m.group(2))
            else:
                count += float(m.group(2))
    return total, count


def run_locust(
    *, url: str, users: int, run_time: str, user_class: str, out: Path, cpus: str | None,
    env: dict[str, str] | None = None, spawn_rate: float | None = None,
) -> dict[str, Any]:
    """One headless Locust run; returns the per-name and total summaries."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = locust_command(host=url, users=users, spawn_rate=spawn_rate or users, run_time=run_time,
                         user_classes=[user_class], csv_prefix=out, json_file=out, cpus=cpus)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    run_env["LOADTEST_PAYLOAD"] = PAYLOAD["form"]
    run_env.update(env or {})
    done = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=3600)
    stats_path = out.with_name(out.name + ".json")
    if not stats_path.exists():
        raise RuntimeError(f"locust wrote no stats (exit {done.returncode}):\n{done.stderr[-2000:]}")
    stats = read_stats_json(stats_path)
    failures_path = out.with_name(out.name + "_failures.csv")
    errors = failures_path.read_text().strip().splitlines()[1:6] if failures_path.exists() else []
    return {"total": stats["Aggregated"], "by_name": {k: v for k, v in stats.items() if k != "Aggregated"},
            "errors": errors}


def start_service(args: argparse.Namespace, *, batching: bool, tag: str) -> ServiceProcess:
    env = {"GRIDCAST_BATCHING": "true" if batching else "false", "GRIDCAST_UI_MOUNT": "false"}
    svc = ServiceProcess(port=free_port(), env=env, cpus=args.service_cpus,
                         log_path=args.out / f"service-{tag}.log")
    log.info("starting the service (batching %s) on %s", "ON" if batching else "OFF", svc.url)
    svc.start(timeout_s=args.ready_timeout)
    log.info("ready after %.1f s, RSS %.0f MB", svc.cold_start_s, svc.rss_mb())
    return svc


def warm_up(args: argparse.Namespace, svc: ServiceProcess, user_class: str) -> None:
    """A short unrecorded run: TensorFlow traces its function, caches fill, connections open."""
    run_locust(url=svc.url, users=4, run_time=f"{args.warmup_s}s", user_class=user_class,
               out=args.out / f"warmup-{user_class}", cpus=args.locust_cpus)


def bench_levels(args: argparse.Namespace, svc: ServiceProcess, mode: str) -> list[dict]:
    rows = []
    warm_up(args, svc, "UncachedForecastUser")
    for users in args.levels:
        s0, c0 = batch_counts(svc.url)
        cpu0 = svc.cpu_seconds()
        with RssSampler(svc) as rss:
            res = run_locust(url=svc.url, users=users, run_time=f"{args.duration}s",
                             user_class="UncachedForecastUser", out=args.out / f"{mode}-{users}u",
                             cpus=args.locust_cpus)
        cpu = svc.cpu_seconds() - cpu0
        s1, c1 = batch_counts(svc.url)
        row = {"users": users, **res["total"], "rss_peak_mb": rss.peak,
               "cpu_ms_per_req": round(1000 * cpu / res["total"]["requests"], 1) if res["total"]["requests"] else None,
               "mean_batch": round((s1 - s0) / (c1 - c0), 2) if c1 > c0 else None,
               "model_calls": int(s1 - s0), "batches": int(c1 - c0), "errors": res["errors"]}
        log.info("batching %s, %3d users: %.1f req/s, p50/p95/p99 %s/%s/%s ms, %d failures, mean batch %s",
                 mode, users, row["rps"], row["p50_ms"], row["p95_ms"], row["p99_ms"], row["failures"],
                 row["mean_batch"])
        rows.append(row)
    return rows


def bench_pairs(args: argparse.Namespace) -> dict:
    """Batching ON vs OFF at 64 users, interleaved: the ratio, robust to the machine's drift.

    The levels above measure ON, then OFF, minutes apart; on a shared machine whose speed
    drifts by tens of percent within minutes, that ratio swings with the drift (1.88× and
    3.45× in two runs five minutes apart). Here both services run side by side on the
    service's core (the idle one costs nothing measurable) and ``--pairs`` rounds of
    ``--pair-s`` seconds each measure both, ON first in even rounds and OFF first in odd
    ones. The headline is the median of the rounds' ratios; each round's service CPU
    per request is kept too.
    """
    on = start_service(args, batching=True, tag="pairs-on")
    try:
        off = start_service(args, batching=False, tag="pairs-off")
    except BaseException:
        on.stop()
        raise
    rounds: list[dict] = []
    try:
        for svc in (on, off):
            warm_up(args, svc, "UncachedForecastUser")
        for k in range(args.pairs):
            order = (("on", on), ("off", off)) if k % 2 == 0 else (("off", off), ("on", on))
            row: dict[str, Any] = {"first": order[0][0]}
            for mode, svc in order:
                cpu0 = svc.cpu_seconds()
                res = run_locust(url=svc.url, users=64, run_time=f"{args.pair_s}s", user_class="UncachedForecastUser",
                                 out=args.out / f"pairs-{k}-{mode}", cpus=args.locust_cpus)
                t = res["total"]
                row[mode] = {"ok_rps": round(_ok_rps(t), 1), "p99_ms": t["p99_ms"], "failures": t["failures"],
                             "requests": t["requests"],
                             "cpu_ms_per_req": round(1000 * (svc.cpu_seconds() - cpu0) / t["requests"], 3)
                             if t["requests"] else None}
            row["ratio"] = round(row["on"]["ok_rps"] / row["off"]["ok_rps"], 2) if row["off"]["ok_rps"] else None
            log.info("pairs round %d: ON %.0f req/s, OFF %.0f req/s, ratio %s", k, row["on"]["ok_rps"],
                     row["off"]["ok_rps"], row["ratio"])
            rounds.append(row)
    finally:
        on.stop()
        off.stop()
    ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
    cpu = [r["off"]["cpu_ms_per_req"] / r["on"]["cpu_ms_per_req"] for r in rounds
           if r["on"]["cpu_ms_per_req"] and r["off"]["cpu_ms_per_req"]]
    return {"users": 64, "round_s": args.pair_s, "rounds": rounds,
            "median_ratio": round(statistics.median(ratios), 2) if ratios else None,
            "median_cpu_ratio": round(statistics.median(cpu), 2) if cpu else None}


def bench_payload(args: argparse.Namespace, svc: ServiceProcess) -> list[dict]:
    """The uncached load at 64 users with each history form, on the same service."""
    rows = []
    for form in ("objects", "columnar"):
        cpu0 = svc.cpu_seconds()
        res = run_locust(url=svc.url, users=64, run_time=f"{args.duration}s", user_class="UncachedForecastUser",
                         out=args.out / f"payload-{form}", cpus=args.locust_cpus, env={"LOADTEST_PAYLOAD": form})
        cpu = svc.cpu_seconds() - cpu0
        row = {"form": form, **res["by_name"].get(UNCACHED, res["total"]), "errors": res["errors"]}
        row["cpu_ms_per_req"] = round(1000 * cpu / row["requests"], 2) if row["requests"] else None
        log.info("payload %s, 64 users: %.1f req/s, p99 %s ms, %s ms CPU/req", form, _ok_rps(row), row["p99_ms"],
                 row["cpu_ms_per_req"])
        rows.append(row)
    return rows


def bench_cached(args: argparse.Namespace, svc: ServiceProcess) -> dict:
    warm_up(args, svc, "CachedForecastUser")
    users = args.cached_users
    per_user = args.cached_rate / users
    cpu0 = svc.cpu_seconds()
    res = run_locust(url=svc.url, users=users, run_time=f"{args.duration}s", user_class="CachedForecastUser",
                     out=args.out / "cached", cpus=args.locust_cpus,
                     env={"LOADTEST_USER_RATE": f"{per_user:.4f}"})
    cpu = svc.cpu_seconds() - cpu0
    row = {"target_rps": args.cached_rate, "users": users, **res["by_name"].get(CACHED, res["total"]),
           "errors": res["errors"]}
    row["cpu_ms_per_req"] = round(1000 * cpu / row["requests"], 2) if row["requests"] else None
    log.info("cached at %s req/s: achieved %.1f, p50/p95/p99 %s/%s/%s ms, %d failures", args.cached_rate,
             row["rps"], row["p50_ms"], row["p95_ms"], row["p99_ms"], row["failures"])
    return row


def bench_model(args: argparse.Namespace) -> dict:
    """The model-only limits, in process, pinned to the service's core (load_tests/bench_model.py)."""
    cmd = [sys.executable, str(ROOT / "load_tests" / "bench_model.py")]
    if args.service_cpus:
        cmd = ["taskset", "-c", args.service_cpus, *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    log.info("model limits: network %s forecasts/s, predict_series %s forecasts/s (batch %s)",
             row["network_forecasts_per_s"], row["predict_series_forecasts_per_s"], row["batch"])
    return row


def bench_batch64(args: argparse.Namespace, svc: ServiceProcess) -> dict:
    """``/forecast_batch`` with 64 uncached forecasts per call, a few closed-loop users."""
    cpu0 = svc.cpu_seconds()
    res = run_locust(url=svc.url, users=args.batch64_users, run_time=f"{args.duration}s", user_class="Batch64User",
                     out=args.out / "batch64", cpus=args.locust_cpus)
    cpu = svc.cpu_seconds() - cpu0
    row = {**res["total"], "users": args.batch64_users, "errors": res["errors"]}
    row["forecasts_per_s"] = round(64 * _ok_rps(row), 1)
    row["cpu_ms_per_forecast"] = round(1000 * cpu / (64 * row["requests"]), 3) if row["requests"] else None
    log.info("batch of 64: %.1f calls/s = %.0f forecasts/s, p99 %s ms", row["rps"], row["forecasts_per_s"],
             row["p99_ms"])
    return row


def served_buckets(url: str, route: str = "/forecast") -> dict[str, list[tuple[float, float]]]:
    """The service's own latency histogram of ``route`` (``gridcast_http_request_duration_seconds``):
    ``{status: [(upper bound s, cumulative count), ...]}``, from its arrival at the service's
    outermost layer to its answer (what the client's figure adds is the network, the event
    loop's queue before the request is read, and the load generator itself)."""
    import httpx

    out: dict[str, list[tuple[float, float]]] = {}
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return out
    for line in text.splitlines():
        m = re.match(r'gridcast_http_request_duration_seconds_bucket\{(.*)\}\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("route") == route:
            out.setdefault(labels["status"], []).append((float(labels["le"]), float(m.group(2))))
    return {k: sorted(v) for k, v in out.items()}


def bucket_quantiles(before: list[tuple[float, float]], after: list[tuple[float, float]],
                     qs: tuple[float, ...] = (0.5, 0.99)) -> dict[str, float | None]:
    """Upper bucket bounds (ms) holding each quantile of the answers counted between two reads."""
    prior = dict(before)
    counts = [(le, n - prior.get(le, 0.0)) for le, n in after]
    total = counts[-1][1] if counts else 0.0
    out: dict[str, float | None] = {}
    for q in qs:
        bound = next((le for le, n in counts if total and n >= q * total), None)
        out[f"p{q * 100:g}_ms"] = None if bound is None or bound == float("inf") else round(bound * 1000, 1)
    return out


def bench_overload(args: argparse.Namespace, svc: ServiceProcess) -> dict:
    """Past saturation: only 200 and 503 (+ Retry-After), and the 503s fast.

    Every user starts in the same instant; Locust's figures count from ``--warmup-s``
    into the run (``LOADTEST_MEASURE_AFTER_S``), so the arrival burst (every user's
    first request within 0.1 s) is left out of them. The service's own histogram, and
    the failure count, cover the whole run.
    """
    before = served_buckets(svc.url)
    res = run_locust(url=svc.url, users=args.overload_users, run_time=f"{args.duration + args.warmup_s}s",
                     user_class="OverloadUser", out=args.out / "overload", cpus=args.locust_cpus,
                     spawn_rate=args.overload_users,
                     env={"LOADTEST_RETRY_AFTER": args.retry_after, "LOADTEST_MEASURE_AFTER_S": str(args.warmup_s)})
    ok = res["by_name"].get(UNCACHED, {})
    refused = res["by_name"].get("POST /forecast [503]", {})
    after = served_buckets(svc.url)
    served = {status: bucket_quantiles(before.get(status, []), buckets) for status, buckets in after.items()}
    row = {"users": args.overload_users, "retry_after": args.retry_after, "measure_after_s": args.warmup_s,
           "ok": ok, "refused": refused,
           "served": served, "failures": res["total"]["failures"],
           "errors": res["errors"]}
    log.info("overload %d users: %s ok (p99 %s ms), %s refused with 503 (p99 %s ms), %d failures",
             args.overload_users, ok.get("requests"), ok.get("p99_ms"), refused.get("requests"),
             refused.get("p99_ms"), row["failures"])
    return row


def _served(o: dict, status: str) -> str:
    """The service-side p50 / p99 (upper bucket bounds) of one status, or – (older records)."""
    q = (o.get("served") or {}).get(status)
    return f"≤ {_ms(q['p50_ms'])} / ≤ {_ms(q['p99_ms'])}" if q and q.get("p99_ms") is not None else "–"


#: how OverloadUser's refused users come back (LOADTEST_RETRY_AFTER), as the overload section says it
_RETRY_AFTER = {
    "jitter": "A refused user waits its `Retry-After` plus up to as much again at random before its next "
              "request, as retry policies with jitter do (`--retry-after exact`: exactly the `Retry-After`).",
    "exact": "A refused user waits exactly its `Retry-After` before its next request, so the users refused in "
             "one instant come back in one instant (a herd).",
    "ignore": "A refused user retries at once (a flood of refusals).",
}


def bench_variant(args: argparse.Namespace) -> dict:
    """The same uncached load against another design: a git ref of gridcast, in a worktree.

    Used to measure whether a separate model process earns its cost: the default ref is
    the last version that ran the models in a second BentoML service behind
    ``bentoml.depends``. It gets its own model store (quick models trained by its own
    code) and the same CPU pinning.
    """
    ref = args.variant_ref
    src = args.out / "variant-src"
    subprocess.run(["git", "worktree", "add", "--detach", str(src), ref], cwd=ROOT, check=True,
                   capture_output=True)
    env = {"BENTOML_HOME": str(args.out / "variant-bentoml"), "PYTHONPATH": str(src),
           "GRIDCAST_UI_MOUNT": "false", "GRIDCAST_MAX_LATENCY_MS": "5000"}
    try:
        train = ("import logging; logging.basicConfig(level=logging.WARNING); "
                 "from training.settings import get_settings; from training.store import ensure_quick_models; "
                 "ensure_quick_models(get_settings())")
        subprocess.run([sys.executable, "-c", train], cwd=src, env={**os.environ, **env}, check=True,
                       capture_output=True, timeout=1800)
        svc = ServiceProcess(port=free_port(), env=env, cpus=args.service_cpus, cwd=src,
                             log_path=args.out / "service-variant.log")
        svc.start(timeout_s=args.ready_timeout)
        try:
            warm_up(args, svc, "UncachedForecastUser")
            cpu0 = svc.cpu_seconds()
            res = run_locust(url=svc.url, users=64, run_time=f"{args.duration}s", user_class="UncachedForecastUser",
                             out=args.out / "variant-64u", cpus=args.locust_cpus)
            cpu = svc.cpu_seconds() - cpu0
        finally:
            svc.stop()
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(src)], cwd=ROOT, check=False, capture_output=True)
    row = {"ref": ref, "users": 64, **res["total"], "cold_start_s": round(svc.cold_start_s, 2),
           "cpu_ms_per_req": round(1000 * cpu / res["total"]["requests"], 1) if res["total"]["requests"] else None,
           "errors": res["errors"]}
    log.info("variant %s, 64 users: %.1f req/s, p99 %s ms, %s ms CPU/req", ref, row["rps"], row["p99_ms"],
             row["cpu_ms_per_req"])
    return row


def bench_soak(args: argparse.Namespace, svc: ServiceProcess) -> dict:
    with RssSampler(svc, every_s=5.0) as rss:
        res = run_locust(url=svc.url, users=args.soak_users, run_time=f"{int(args.soak_s)}s",
                         user_class=args.soak_class, out=args.out / "soak", cpus=args.locust_cpus)
    samples = rss.samples
    window = min(60.0, args.soak_s / 4)
    first = [mb for t, mb in samples if t <= window]
    last = [mb for t, mb in samples if t >= samples[-1][0] - window]
    start, end = statistics.median(first), statistics.median(last)
    minutes = max((samples[-1][0] - samples[0][0]) / 60, 1e-9)
    row = {"seconds": args.soak_s, "users": args.soak_users, "user_class": args.soak_class, **res["total"],
           "errors": res["errors"], "rss_first_mb": start, "rss_last_mb": end, "rss_peak_mb": rss.peak,
           "growth_mb_per_min": round((end - start) / minutes, 2), "samples": samples}
    row.update(second_half(samples))
    row["flat"] = abs(end - start) <= TARGET_FLAT * start
    log.info("soak %ss: RSS %.0f → %.0f MB (peak %.0f), %d requests, %d failures", args.soak_s, start, end,
             rss.peak, row["requests"], row["failures"])
    return row


def second_half(samples: list[tuple[float, float]]) -> dict[str, float]:
    """RSS growth over the second half of a soak (MB/min), past the warm-up.

    Allocator arenas, TensorFlow and bounded caches grow for a while after start; a
    leak keeps growing after that. Least-squares slope of the second half's samples.
    """
    half = [(t, mb) for t, mb in samples if t >= samples[-1][0] / 2]
    if len(half) < 3:
        return {"growth_2nd_half_mb_per_min": 0.0}
    ts, mbs = [t for t, _ in half], [mb for _, mb in half]
    mt, mm = statistics.fmean(ts), statistics.fmean(mbs)
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (mb - mm) for t, mb in half) / var if var else 0.0
    return {"growth_2nd_half_mb_per_min": round(slope * 60, 2)}


# ---- BENCHMARKS.md -------------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _ok_rps(row: dict) -> float:
    """Successful answers per second (older records only kept the raw request rate)."""
    if "ok_rps" in row:
        return row["ok_rps"]
    n = row.get("requests") or 0
    return row.get("rps", 0.0) * (1 - row.get("failures", 0) / n) if n else 0.0


def _header(rec: dict) -> str:
    m = rec["machine"]
    return (f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
            f"load average at start {m['load_avg'][0]} (the machine is shared: other work ran too). "
            f"Split: service on CPU {rec['service_cpus'] or 'any'}, Locust on CPU {rec['locust_cpus'] or 'any'} "
            f"(taskset). Date: {rec['date']}. Command: `{rec['command']}`.")


def render(records: list[dict]) -> str:
    latest = {part: next((r for r in reversed(records) if part in r), None) for part in PARTS}
    out: list[str] = targets_table(latest)
    rec = latest["model"]
    if rec:
        m = rec["model"]
        out += ["### Model-only limits (in process, on the service's core)", "", _header(rec), "",
                f"`load_tests/bench_model.py` on the served LSTM `{m['model']}`, batches of {m['batch']}, "
                "CPU time per call (one core). The network call alone is the ceiling; the gap to "
                "`predict_series` is feature preparation.", "",
                "| what | ms CPU per batch | forecasts/s on one core |", "|---|---|---|",
                f"| the network's forward pass alone, {m['batch']} prepared inputs "
                f"({'each on the steps its request asks for' if m.get('network_steps') == 'asked' else 'every step'}) | "
                f"{m['network_ms_per_batch']} | "
                f"{m['network_forecasts_per_s']:,} |",
                f"| `predict_series`, {m['batch']} requests (each its own history) | "
                f"{m['predict_series_ms_per_batch']} | {m['predict_series_forecasts_per_s']:,} "
                f"({m['share_of_network_limit']:.0%} of the network limit) |", ""]
    rec = latest["batching"]
    if rec:
        b = rec["batching"]
        on = {r["users"]: r for r in b["on"]}
        off = {r["users"]: r for r in b["off"]}
        out += ["### Uncached LSTM forecasts — batching ON vs OFF", "", _header(rec), "",
                f"Closed loop ({rec['duration_s']} s per level), req/s = answers that passed every check per "
                "second (failed requests excluded), each request its own 168–336-point history "
                f"({_form(rec)}) and a horizon of 1–168 steps (`UncachedForecastUser`). Mean batch = model calls per "
                "computed batch (`gridcast_model_batch_size`). CPU ms/req = CPU time of the service's process "
                "tree per request (user + system): unlike latency it barely moves when other work shares the "
                "machine, so 1000 / it estimates the requests/s one dedicated core would serve.", "",
                "| users | ON req/s | ON p50 / p95 / p99 ms | ON failures | ON mean batch | ON CPU ms/req "
                "| OFF req/s | OFF p50 / p95 / p99 ms | OFF failures | OFF mean batch | OFF CPU ms/req | ON / OFF |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for users in sorted(set(on) | set(off)):
            a, z = on.get(users, {}), off.get(users, {})
            ratio = _ok_rps(a) / _ok_rps(z) if z and _ok_rps(z) else None
            out.append(
                f"| {users} | {_ok_rps(a):.1f} | {_ms(a.get('p50_ms'))} / {_ms(a.get('p95_ms'))} / "
                f"{_ms(a.get('p99_ms'))} | {a.get('failures', '–')} / {a.get('requests', '–')} | "
                f"{a.get('mean_batch') or '–'} | {a.get('cpu_ms_per_req') or '–'} | {_ok_rps(z):.1f} | "
                f"{_ms(z.get('p50_ms'))} / {_ms(z.get('p95_ms'))} / {_ms(z.get('p99_ms'))} | "
                f"{z.get('failures', '–')} / {z.get('requests', '–')} | {z.get('mean_batch') or '–'} | "
                f"{z.get('cpu_ms_per_req') or '–'} | "
                f"{'–' if ratio is None else f'{ratio:.2f}×'} |")
        if 64 in on and 64 in off and _ok_rps(off[64]):
            ratio, p99 = _ok_rps(on[64]) / _ok_rps(off[64]), on[64]["p99_ms"]
            p99_met = p99 is not None and p99 <= TARGET_P99_BATCHED
            out += ["", f"**Headline (64 users): ON/OFF throughput {ratio:.2f}× (target ≥ {TARGET_RATIO:g}×: "
                    f"{'met' if ratio >= TARGET_RATIO else 'missed'}), ON p99 {_ms(p99)} ms (target ≤ "
                    f"{TARGET_P99_BATCHED:.0f} ms: {'met' if p99_met else 'missed'}).**"]
        cs = rec.get("cold_start") or {}
        if cs:
            out += ["", "| service | cold start (process start → `/readyz` OK) | RSS idle MB | RSS peak under load MB |",
                    "|---|---|---|---|"]
            for mode in ("on", "off"):
                if mode in cs:
                    c = cs[mode]
                    out.append(f"| batching {mode.upper()} | {c['seconds']:.1f} s | {c['rss_idle_mb']:.0f} | "
                               f"{c['rss_peak_mb']:.0f} |")
        if rec.get("note"):
            out += ["", rec["note"]]
        out.append("")
    rec = latest["payload"]
    if rec:
        out += ["### History payload: objects vs columnar", "", _header(rec), "",
                f"The same uncached load (`UncachedForecastUser` × 64, {rec['duration_s']} s, batching ON) with the "
                "history sent object per point (`[{timestamp, load_mw, temperature_c}, ...]`) and as arrays "
                "(`{start, step, load_mw: [...], temperature_c: [...]}`). Both give the same forecasts "
                "(tests/service/test_one_path.py).", "",
                "| history form | req/s | p50 / p95 / p99 ms | failures / requests | service CPU ms/req |",
                "|---|---|---|---|---|"]
        for r in rec["payload"]:
            out.append(f"| {r['form']} | {_ok_rps(r):.1f} | {_ms(r.get('p50_ms'))} / {_ms(r.get('p95_ms'))} / "
                       f"{_ms(r.get('p99_ms'))} | {r.get('failures', '–')} / {r.get('requests', '–')} | "
                       f"{r.get('cpu_ms_per_req') or '–'} |")
        out.append("")
    rec = latest["pairs"]
    if rec:
        x = rec["pairs"]
        out += ["### Batching ON vs OFF, interleaved (64 users)", "", _header(rec), "",
                f"Both services side by side on the service's core, {len(x['rounds'])} rounds of {x['round_s']} s "
                f"(`UncachedForecastUser` × 64, history {_form(rec)}), ON first in even rounds and OFF first in odd "
                "ones: the machine's drift over minutes falls on both sides of each ratio. The headline is the "
                "median round.", "",
                "| round | first | ON req/s | ON p99 ms | ON CPU ms/req | OFF req/s | OFF p99 ms | OFF CPU ms/req "
                "| ON / OFF |", "|---|---|---|---|---|---|---|---|---|"]
        for k, r in enumerate(x["rounds"]):
            a, z = r["on"], r["off"]
            out.append(f"| {k} | {r['first'].upper()} | {a['ok_rps']:.1f} | {_ms(a['p99_ms'])} | "
                       f"{a['cpu_ms_per_req']} | {z['ok_rps']:.1f} | {_ms(z['p99_ms'])} | {z['cpu_ms_per_req']} | "
                       f"{r['ratio']}× |")
        out += ["", f"**Median ON/OFF throughput {x['median_ratio']}× (target ≥ {TARGET_RATIO:g}×: "
                f"{'met' if (x['median_ratio'] or 0) >= TARGET_RATIO else 'missed'}); median ratio of service "
                f"CPU per request (OFF / ON) {x['median_cpu_ratio']}×.**", ""]
        if rec.get("note"):
            out += [rec["note"], ""]
    rec = latest["variant"]
    if rec and latest["batching"]:
        v = rec["variant"]
        a = {r["users"]: r for r in rec.get("batching", latest["batching"]["batching"])["on"]}.get(64, {})
        out += ["### One process or two", "", _header(rec), "",
                f"The same uncached load (`UncachedForecastUser` × 64, {rec['duration_s']} s) against this version "
                f"(API and models in one process, in-process batcher) and against `{v['ref']}` (the models in a "
                "second BentoML service behind `bentoml.depends`, BentoML's adaptive batching), each with its own "
                "quick models, on the same pinned core.", "",
                "| design | req/s | p50 / p95 / p99 ms | service CPU ms/req | cold start |", "|---|---|---|---|---|",
                f"| one process (this version) | {_ok_rps(a):.1f} | {_ms(a.get('p50_ms'))} / {_ms(a.get('p95_ms'))} / "
                f"{_ms(a.get('p99_ms'))} | {a.get('cpu_ms_per_req') or '–'} | "
                f"{(rec.get('cold_start') or latest['batching'].get('cold_start') or {}).get('on', {}).get('seconds', '–')} s |",
                f"| two processes (`{v['ref']}`) | {_ok_rps(v):.1f} | {_ms(v['p50_ms'])} / {_ms(v['p95_ms'])} / "
                f"{_ms(v['p99_ms'])} | {v.get('cpu_ms_per_req') or '–'} | {v['cold_start_s']} s |", ""]
    rec = latest["batch64"]
    if rec:
        x = rec["batch64"]
        out += ["### `/forecast_batch`, 64 forecasts per call", "", _header(rec), "",
                f"`Batch64User` × {x['users']} closed loop, {rec['duration_s']} s, every forecast its own history.", "",
                "| calls/s | forecasts/s | p50 / p95 / p99 ms per call | failures / calls | service CPU ms per forecast |",
                "|---|---|---|---|---|",
                f"| {_ok_rps(x):.1f} | {x['forecasts_per_s']:,.0f} | {_ms(x['p50_ms'])} / {_ms(x['p95_ms'])} / "
                f"{_ms(x['p99_ms'])} | {x['failures']} / {x['requests']} | {x.get('cpu_ms_per_forecast') or '–'} |", ""]
    rec = latest["overload"]
    if rec:
        o = rec["overload"]
        ok, no = o["ok"] or {}, o["refused"] or {}
        out += ["### Overload", "", _header(rec), "",
                f"`OverloadUser` × {o['users']} closed loop (far past saturation), {rec['duration_s']} s: a 503 with "
                "`Retry-After` is the expected refusal (the service's in-flight or queue bound is reached), anything but "
                "200/503 fails. " + _RETRY_AFTER.get(o.get("retry_after", "exact"), ""), "",
                "| answer | requests | req/s | p50 / p95 / p99 ms (Locust) | p50 / p99 ms in the service |",
                "|---|---|---|---|---|",
                f"| 200 (forecast) | {ok.get('requests', 0)} | {ok.get('rps', 0):.1f} | {_ms(ok.get('p50_ms'))} / "
                f"{_ms(ok.get('p95_ms'))} / {_ms(ok.get('p99_ms'))} | {_served(o, '200')} |",
                f"| 503 + Retry-After | {no.get('requests', 0)} | {no.get('rps', 0):.1f} | {_ms(no.get('p50_ms'))} / "
                f"{_ms(no.get('p95_ms'))} / {_ms(no.get('p99_ms'))} | {_served(o, '503')} |",
                "", f"Other answers (failures): {o['failures']}. \"In the service\": the service's own histogram "
                "(`gridcast_http_request_duration_seconds`, upper bucket bounds), from the request's arrival at its "
                "outermost ASGI layer to the answer; Locust's figure adds the network, the event loop's queue before "
                "the request is read, and the load generator (one core for 256 users). "
                + (f"Locust's figures count from {o['measure_after_s']} s into the run (`LOADTEST_MEASURE_AFTER_S`): "
                   "the arrival burst (all users' first requests within 0.1 s) is left out of them, not out of the "
                   "service's histogram or the failures." if o.get("measure_after_s") else
                   "Locust's figures include the arrival burst (all users' first requests within 0.1 s)."), ""]
    rec = latest["cached"]
    if rec:
        c = rec["cached"]
        met = c["p99_ms"] is not None and c["p99_ms"] <= TARGET_P99_CACHED and c["failures"] == 0
        out += ["### Cached forecasts at a fixed arrival rate", "", _header(rec), "",
                f"`CachedForecastUser` (the same few region/horizon forecasts from the service's state), "
                f"{c['users']} users paced with Poisson arrivals (`poisson_throughput`) to {c['target_rps']} req/s in total, "
                f"{rec['duration_s']} s.", "",
                "| target req/s | achieved req/s | p50 / p95 / p99 ms | max ms | failures / requests | "
                f"service CPU ms/req | p99 ≤ {TARGET_P99_CACHED:.0f} ms |",
                "|---|---|---|---|---|---|---|",
                f"| {c['target_rps']} | {_ok_rps(c):.1f} | {_ms(c['p50_ms'])} / {_ms(c['p95_ms'])} / "
                f"{_ms(c['p99_ms'])} | {_ms(c['max_ms'])} | {c['failures']} / {c['requests']} | "
                f"{c.get('cpu_ms_per_req') or '–'} | {'met' if met else 'missed'} |", ""]
        if rec.get("note"):
            out += [rec["note"], ""]
    soaks: dict[str, dict] = {}
    for r in records:  # the latest soak of each scenario
        if "soak" in r:
            soaks[r["soak"].get("user_class", "MixedUser")] = r
    if soaks:
        out += ["### Memory soak", "",
                "Service RSS (API + model process) sampled every 5 s under a steady load. Flat = the last "
                f"minute's median within {TARGET_FLAT:.0%} of the first minute's; the second-half slope tells "
                "warm-up growth that levels off from growth that goes on.", ""]
        for cls, rec in soaks.items():
            s = rec["soak"]
            what = {"MixedUser": "cached, uncached, batch, `/models`, `/recent`",
                    "CachedForecastUser": "cache hits only"}.get(cls, cls)
            out += [f"**`{cls}` × {s['users']}** ({what}), {s['seconds'] / 60:.1f} min. {_header(rec)}", "",
                    "| duration | requests | failures | req/s | p99 ms | RSS first min → last min MB | peak MB | "
                    "growth MB/min (whole / 2nd half) | flat |",
                    "|---|---|---|---|---|---|---|---|---|",
                    f"| {s['seconds'] / 60:.1f} min | {s['requests']} | {s['failures']} | {_ok_rps(s):.1f} | "
                    f"{_ms(s['p99_ms'])} | {s['rss_first_mb']:.0f} → {s['rss_last_mb']:.0f} | "
                    f"{s['rss_peak_mb']:.0f} | {s['growth_mb_per_min']:+.2f} / "
                    f"{second_half(s['samples'])['growth_2nd_half_mb_per_min']:+.2f} | "
                    f"{'yes' if s['flat'] else 'no'} |", ""]
            if rec.get("note"):
                out += [rec["note"], ""]
    out.append("Raw numbers (every level, RSS samples, first failure messages): `load_tests/results/load.json`; "
               "Locust CSVs under `load_tests/results/bench-*/`.")
    return "\n".join(out)


def _form(rec: dict) -> str:
    """How a record's uncached requests sent their history."""
    return "as arrays: the columnar form" if rec.get("payload_form") == "columnar" else "object per point"


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "missed")


def targets_table(latest: dict[str, dict | None]) -> list[str]:
    """The serving issue's targets, each with its figure from the newest record that has it."""
    rows = []
    rec = latest["batching"]
    if rec:
        on = {r["users"]: r for r in rec["batching"]["on"]}
        off = {r["users"]: r for r in rec["batching"]["off"]}
        if 64 in on:
            a = on[64]
            rows.append((f"uncached `/forecast`, 64 users, service on one core (history {_form(rec)})",
                         f"≥ {TARGET_RPS_64:.0f} req/s, p99 ≤ {TARGET_P99_BATCHED:.0f} ms, ≤ {TARGET_CPU_MS} ms CPU/req",
                         f"{_ok_rps(a):.0f} req/s, p99 {_ms(a['p99_ms'])} ms, {a.get('cpu_ms_per_req')} ms CPU/req "
                         f"(one core: {1000 / a['cpu_ms_per_req']:.0f} req/s)" if a.get("cpu_ms_per_req") else "–",
                         _verdict(_ok_rps(a) >= TARGET_RPS_64 and (a["p99_ms"] or 1e9) <= TARGET_P99_BATCHED
                                  and (a.get("cpu_ms_per_req") or 1e9) <= TARGET_CPU_MS)))
        if 64 in on and 64 in off and _ok_rps(off[64]) and not latest["pairs"]:
            ratio = _ok_rps(on[64]) / _ok_rps(off[64])
            rows.append((f"batching ON / OFF, 64 users (history {_form(rec)})", f"≥ {TARGET_RATIO}×", f"{ratio:.2f}×", _verdict(ratio >= TARGET_RATIO)))
    pairs = latest["pairs"]
    if pairs:
        x = pairs["pairs"]
        ratios = [r["ratio"] for r in x["rounds"] if r["ratio"] is not None]
        rows.append((f"batching ON / OFF, 64 users (history {_form(pairs)}), interleaved rounds",
                     f"≥ {TARGET_RATIO}×", f"{x['median_ratio']}× (median of {len(ratios)} rounds: "
                     f"{min(ratios)}–{max(ratios)}×; service CPU per request OFF / ON {x['median_cpu_ratio']}×)"
                     if ratios else "–", _verdict((x["median_ratio"] or 0) >= TARGET_RATIO)))
    for r in (latest["payload"] or {}).get("payload", []):
        rows.append((f"uncached `/forecast`, 64 users, batching ON, history {_form({'payload_form': r['form']})}",
                     f"≥ {TARGET_RPS_64:.0f} req/s, p99 ≤ {TARGET_P99_BATCHED:.0f} ms, ≤ {TARGET_CPU_MS} ms CPU/req",
                     f"{_ok_rps(r):.0f} req/s, p99 {_ms(r['p99_ms'])} ms, {r.get('cpu_ms_per_req')} ms CPU/req",
                     _verdict(_ok_rps(r) >= TARGET_RPS_64 and (r["p99_ms"] or 1e9) <= TARGET_P99_BATCHED
                              and (r.get("cpu_ms_per_req") or 1e9) <= TARGET_CPU_MS)))
    if rec:
        cs = (rec.get("cold_start") or {}).get("on")
        if cs:
            rows.append(("cold start (process start → `/readyz`)", f"≤ {TARGET_COLD_S:.0f} s", f"{cs['seconds']:.1f} s",
                         _verdict(cs["seconds"] <= TARGET_COLD_S)))
    rec = latest["model"]
    if rec:
        m = rec["model"]
        rows.append(("`predict_series`, 64 requests, in process", f"≥ {TARGET_PREDICT_FPS:,.0f} forecasts/s",
                     f"{m['predict_series_forecasts_per_s']:,} forecasts/s ({m['share_of_network_limit']:.0%} of "
                     f"the network's {m['network_forecasts_per_s']:,})",
                     _verdict(m["predict_series_forecasts_per_s"] >= TARGET_PREDICT_FPS)))
    rec = latest["batch64"]
    if rec:
        x = rec["batch64"]
        rows.append(("`/forecast_batch`, 64 forecasts per call", f"≥ {TARGET_BATCH64_FPS:,.0f} forecasts/s",
                     f"{x['forecasts_per_s']:,.0f} forecasts/s", _verdict(x["forecasts_per_s"] >= TARGET_BATCH64_FPS)))
    rec = latest["cached"]
    if rec:
        c = rec["cached"]
        rows.append((f"cached (the README request, history from the state), {c['target_rps']:.0f} req/s paced",
                     f"p99 ≤ {TARGET_P99_CACHED:.0f} ms, ≤ {TARGET_CPU_HIT_MS} ms CPU per hit",
                     f"p99 {_ms(c['p99_ms'])} ms, {c.get('cpu_ms_per_req')} ms CPU per hit",
                     _verdict((c["p99_ms"] or 1e9) <= TARGET_P99_CACHED
                              and (c.get("cpu_ms_per_req") or 1e9) <= TARGET_CPU_HIT_MS)))
    rec = latest["overload"]
    if rec:
        o = rec["overload"]
        p99 = (o["refused"] or {}).get("p99_ms")
        rows.append((f"overload, {o['users']} users", f"only 200/503; 503 p99 ≤ {TARGET_P99_503:.0f} ms",
                     f"{o['failures']} other answers; 503 p99 {_ms(p99)} ms at Locust"
                     f"{' after the arrival burst' if o.get('measure_after_s') else ''}, ≤ "
                     f"{_ms(((o.get('served') or {}).get('503') or {}).get('p99_ms'))} ms in the service "
                     f"(retries: {o.get('retry_after', 'exact')})",
                     _verdict(o["failures"] == 0 and p99 is not None and p99 <= TARGET_P99_503)))
    if not rows:
        return []
    out = ["### Serving targets", "", "Each figure from the newest run of its part (below, with its command).", "",
           "| what | target | measured | |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return out + [""]


def write_section(text: str) -> None:
    doc = BENCHMARKS.read_text()
    begin, end = "<!-- BEGIN:load -->", "<!-- END:load -->"
    if begin not in doc or end not in doc:
        doc = doc.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def load_records() -> list[dict]:
    if not RESULTS_JSON.exists():
        return []
    return json.loads(RESULTS_JSON.read_text())


# ---- main ----------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma list of parts: {', '.join(PARTS)}")
    ap.add_argument("--levels", default="1,8,32,64,128", help="concurrent users, batching ON vs OFF")
    ap.add_argument("--duration", type=int, default=30, help="seconds per level (and the cached run)")
    ap.add_argument("--warmup-s", type=int, default=8, help="unrecorded warm-up before measuring (s)")
    ap.add_argument("--cached-rate", type=float, default=500.0, help="cached path: total arrival rate (req/s)")
    ap.add_argument("--variant-ref", default="a625377",
                    help="git ref of the design to compare with (default: the two-process service)")
    ap.add_argument("--payload", choices=("objects", "columnar"), default="objects",
                    help="history form of the uncached requests (the 'payload' part runs both)")
    ap.add_argument("--pairs", type=int, default=6, help="pairs: interleaved ON/OFF rounds at 64 users")
    ap.add_argument("--pair-s", type=int, default=15, help="pairs: seconds of each side of a round")
    ap.add_argument("--batch64-users", type=int, default=4, help="/forecast_batch of 64: closed-loop users")
    ap.add_argument("--overload-users", type=int, default=256, help="overload: closed-loop users")
    ap.add_argument("--retry-after", choices=tuple(_RETRY_AFTER), default="jitter",
                    help="overload: how a refused user comes back (LOADTEST_RETRY_AFTER)")
    ap.add_argument("--cached-users", type=int, default=50, help="cached path: users sharing that rate")
    ap.add_argument("--soak-s", type=float, default=600.0, help="memory soak length (s)")
    ap.add_argument("--soak-users", type=int, default=16, help="memory soak: number of users")
    ap.add_argument("--soak-class", default="MixedUser", help="memory soak: the scenario (a locustfile user class)")
    ap.add_argument("--service-cpus", default="1", help="taskset CPU list for the service ('' = no pinning)")
    ap.add_argument("--locust-cpus", default="0", help="taskset CPU list for Locust ('' = no pinning)")
    ap.add_argument("--ready-timeout", type=float, default=300.0, help="longest wait for /readyz (s)")
    ap.add_argument("--no-train", action="store_true", help="do not train quick models when the store is empty")
    ap.add_argument("--others", action="store_true", help="then run the other load_tests/bench_*.py scripts")
    ap.add_argument("--note", default="", help="a sentence added under this run's tables")
    ap.add_argument("--render-only", action="store_true", help="only regenerate BENCHMARKS.md from the JSON")
    args = ap.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.service_cpus = args.service_cpus or None
    args.locust_cpus = args.locust_cpus or None
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # a plain `kill` must still stop the services this run started (the finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse(argv)
    PAYLOAD["form"] = args.payload
    if args.render_only:
        write_section(render(load_records()))
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    args.out = RESULTS / f"bench-{stamp}"
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_train:
        from gridcast.settings import get_settings
        from training.train_cli import ensure_quick_models

        ensure_quick_models(get_settings())

    rec: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python load_tests/bench.py", shlex.join(sys.argv[1:] if argv is None else argv)]).strip(),
        "machine": machine(), "duration_s": args.duration,
        "service_cpus": args.service_cpus, "locust_cpus": args.locust_cpus, "note": args.note,
        "payload_form": args.payload,
    }
    if "model" in args.parts:
        rec["model"] = bench_model(args)
    if "batching" in args.parts:
        rec["batching"], rec["cold_start"] = {}, {}
        for mode, batching in (("on", True), ("off", False)):
            svc = start_service(args, batching=batching, tag=mode)
            try:
                idle = svc.rss_mb()
                rows = bench_levels(args, svc, mode)
                rec["batching"][mode] = rows
                rec["cold_start"][mode] = {"seconds": round(svc.cold_start_s, 2), "rss_idle_mb": idle,
                                           "rss_peak_mb": max(r["rss_peak_mb"] for r in rows)}
                if batching and "payload" in args.parts:
                    rec["payload"] = bench_payload(args, svc)
                if batching and "batch64" in args.parts:
                    rec["batch64"] = bench_batch64(args, svc)
                if batching and "overload" in args.parts:
                    rec["overload"] = bench_overload(args, svc)
                if batching and "cached" in args.parts:
                    rec["cached"] = bench_cached(args, svc)
                if batching and "soak" in args.parts:
                    rec["soak"] = bench_soak(args, svc)
            finally:
                svc.stop()
        on = {r["users"]: r for r in rec["batching"]["on"]}
        off = {r["users"]: r for r in rec["batching"]["off"]}
        if 64 in on and 64 in off and _ok_rps(off[64]):
            ratio = _ok_rps(on[64]) / _ok_rps(off[64])
            rec["batching"]["headline"] = {
                "ratio": round(ratio, 2), "ratio_met": ratio >= TARGET_RATIO, "p99_on_ms": on[64]["p99_ms"],
                "p99_met": on[64]["p99_ms"] is not None and on[64]["p99_ms"] <= TARGET_P99_BATCHED,
            }
    elif {"cached", "soak", "batch64", "overload", "payload"} & set(args.parts):
        svc = start_service(args, batching=True, tag="on")
        try:
            rec["cold_start"] = {"on": {"seconds": round(svc.cold_start_s, 2), "rss_idle_mb": svc.rss_mb(),
                                        "rss_peak_mb": svc.rss_mb()}}
            if "payload" in args.parts:
                rec["payload"] = bench_payload(args, svc)
            if "batch64" in args.parts:
                rec["batch64"] = bench_batch64(args, svc)
            if "overload" in args.parts:
                rec["overload"] = bench_overload(args, svc)
            if "cached" in args.parts:
                rec["cached"] = bench_cached(args, svc)
            if "soak" in args.parts:
                rec["soak"] = bench_soak(args, svc)
        finally:
            svc.stop()

    if "pairs" in args.parts:
        rec["pairs"] = bench_pairs(args)
    if "variant" in args.parts:
        rec["variant"] = bench_variant(args)

    records = load_records() + [rec]
    RESULTS_JSON.write_text(json.dumps(records, indent=1))
    print(json.dumps({k: v for k, v in rec.items() if k != "soak"} | (
        {"soak": {k: v for k, v in rec["soak"].items() if k != "samples"}} if "soak" in rec else {}), indent=1))
    write_section(render(records))
    log.info("BENCHMARKS.md load section regenerated; raw: %s", RESULTS_JSON.relative_to(ROOT))

    if args.others:
        for script in sorted((ROOT / "load_tests").glob("bench_*.py")):
            log.info("running %s", script.name)
            subprocess.run([sys.executable, str(script)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
