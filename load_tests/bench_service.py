"""Service benchmark: cold start and single-request latency (p50 / p99).

* **Cold start**: process start (``bentoml serve``, as ``gridcast serve`` runs it) →
  ``GET /readyz`` answers 200, repeated ``--runs`` times. Target: ≤ 5 s.
* **Single-request latency**: one client, one request at a time, against the last
  started service: ``cached`` (the same request again: a cache hit), ``uncached`` (each
  request brings its own history, so the model runs; batches of one), and the
  stored-state request the README shows (``{"region", "model": "lstm", "horizon": 24}``).

The model store is the usual one (``BENTOML_HOME``); if it serves nothing, quick
models are trained first (not timed). Results are appended to
``load_tests/results/service.json`` and the ``service`` section of BENCHMARKS.md is
rewritten from the newest record with and without the UI mounted (``--no-ui``).

Usage::

    python load_tests/bench_service.py --runs 3 --requests 200
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from load_tests.common import RESULTS, ROOT, ServiceProcess, base_from_recent, check_forecast, free_port, \
    history_from, machine, synthetic_base

RESULTS_JSON = RESULTS / "service.json"
BENCHMARKS = ROOT / "BENCHMARKS.md"
log = logging.getLogger("bench_service")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def timed_requests(url: str, bodies: list[dict], *, region: str, horizon: int) -> dict[str, Any]:
    """Sequential POST /forecast; latency of each (ms), every answer checked."""
    import httpx

    latencies, failures, cached = [], [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for body in bodies:
            t0 = time.perf_counter()
            r = client.post("/forecast", json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            problem = None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:200]}"
            if problem is None:
                problem = check_forecast(r.json(), region=region, horizon=horizon)
                cached += bool(r.json().get("cached"))
            if problem:
                failures.append(problem)
    return {
        "n": len(bodies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "cache_hits": cached,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from gridcast.settings import get_settings
    from training.train_cli import ensure_quick_models

    settings = get_settings()
    ensure_quick_models(settings)
    env = {"GRIDCAST_UI_MOUNT": "true" if args.ui else "false"}
    cold, svc = [], None
    log_path = RESULTS / "service-serve.log"
    for i in range(args.runs):
        svc = ServiceProcess(port=free_port(), env=env, log_path=log_path).start(timeout_s=180)
        cold.append(round(svc.cold_start_s, 2))
        log.info("cold start %d/%d: %.2f s", i + 1, args.runs, svc.cold_start_s)
        if i < args.runs - 1:
            svc.stop()
    assert svc is not None
    try:
        rng = np.random.default_rng(args.seed)
        recent = httpx.post(f"{svc.url}/recent", json={"region": args.region, "n": 168}, timeout=30).json()
        base = base_from_recent(recent) if isinstance(recent, dict) else []
        if len(base) < 24:
            base = synthetic_base(rng)
        readme = {"region": args.region, "model": args.model, "horizon": args.horizon}
        same = {**readme, "history": history_from(base, n=args.history, rng=rng)}
        own = [{**readme, "history": history_from(base, n=args.history, rng=rng)}
               for _ in range(args.requests + args.warmup)]
        timed_requests(svc.url, own[: args.warmup], region=args.region, horizon=args.horizon)  # warm-up
        results = {
            "uncached": timed_requests(svc.url, own[args.warmup:], region=args.region, horizon=args.horizon),
            "cached": timed_requests(svc.url, [same] * args.requests, region=args.region, horizon=args.horizon),
            "stored_state": timed_requests(svc.url, [readme] * args.requests, region=args.region,
                                           horizon=args.horizon),
        }
        rss = svc.rss_mb()
        served = [f"{m['alias']}/{m['region']}" for m in httpx.get(f"{svc.url}/models", timeout=30).json()["models"]]
    finally:
        svc.stop()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "command": "python load_tests/bench_service.py " + " ".join(args.argv),
        "machine": machine(),
        "settings": {"batching": settings.batching, "max_batch_size": settings.max_batch_size,
                     "max_inflight_requests": settings.max_inflight_requests, "ui_mounted": args.ui},
        "request": {"region": args.region, "model": args.model, "horizon": args.horizon,
                    "history_points": args.history},
        "cold_start_s": cold,
        "rss_mb_after": rss,
        "served": served,
        "latency": results,
    }


#: the serving issue's cold-start target (process start -> /readyz), seconds
TARGET_COLD_S = 5.0


def render(rec: dict[str, Any]) -> str:
    m = rec["machine"]
    cold = rec["cold_start_s"]
    target = "meets" if max(cold) <= TARGET_COLD_S else "MISSES"
    lines = [
        f"### Service — cold start and single-request latency ({rec['date']} UTC)",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load average at start {m['load_avg'][0]} (shared with other work). Command: `{rec['command']}`. "
        f"Request: `{rec['request']['model']}`, horizon {rec['request']['horizon']}, region "
        f"`{rec['request']['region']}`; UI mounted: {'yes' if rec['settings']['ui_mounted'] else 'no'}.",
        "",
        f"Cold start (process start → `/readyz` OK), {len(cold)} runs: "
        + ", ".join(f"{c:.1f} s" for c in cold)
        + f" — median **{statistics.median(cold):.1f} s**, worst {max(cold):.1f} s ({target} the ≤ {TARGET_COLD_S:g} s target). "
        f"RSS of the whole process tree after the run: {rec['rss_mb_after']:.0f} MB.",
        "",
        "| one client, sequential | requests | p50 ms | p99 ms | mean ms | cache hits | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "uncached": f"uncached: own {rec['request']['history_points']}-point history each (model runs)",
        "cached": "cached: the same request again",
        "stored_state": "README request (history from the state store)",
    }
    for key, label in labels.items():
        r = rec["latency"][key]
        lines.append(f"| {label} | {r['n']} | **{r['p50_ms']:.1f}** | **{r['p99_ms']:.1f}** | {r['mean_ms']:.1f} | "
                     f"{r['cache_hits']} | {r['failures']} |")
    if rec.get("served"):
        lines += ["", f"Served models: {', '.join(rec['served'])}."]
    lines += ["", "Cold start is two Python processes one after the other (the `bentoml serve` CLI, then the "
              "service's worker: imports, the served models loaded, one warm-up forecast each); a mounted UI "
              "is built in a thread once the worker is up (Gradio's import is not before `/readyz`, but it shares "
              "the first seconds' CPU). Raw numbers: `load_tests/results/service.json`."]
    return "\n".join(lines)


def write_section(text: str) -> None:
    doc = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    begin, end = "<!-- BEGIN:service -->", "<!-- END:service -->"
    if begin not in doc or end not in doc:
        doc = doc.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="cold starts to time")
    p.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    p.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    p.add_argument("--region", default="region-1")
    p.add_argument("--model", default="lstm")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--history", type=int, default=336, help="points in each request's own history")
    p.add_argument("--ui", action=argparse.BooleanOptionalAction, default=True, help="mount the UI (the default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render-only", action="store_true", help="rewrite the BENCHMARKS.md section from the JSON")
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    records = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else []
    if args.render_only:
        rec = records[-1]
    else:
        rec = run(args)
        records.append(rec)
        RESULTS_JSON.write_text(json.dumps(records, indent=2) + "\n")
    # the newest record per UI setting: the UI mount is the largest part of the API's start-up
    latest = {r["settings"]["ui_mounted"]: r for r in records}
    write_section("\n\n".join(render(latest[k]) for k in sorted(latest, reverse=True)))
    print(render(rec))  # a script's report, not a request path
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
