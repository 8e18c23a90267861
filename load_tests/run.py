"""``make loadtest``: Locust headless against a service, reports under ``load_tests/results/``.

With ``--host`` (``make loadtest HOST=http://...``) it loads that deployment as it is.
Without, it starts the service itself on embedded defaults — quick demo models are
trained first if the model store serves none (as ``make run`` does) — on a free port,
so it never collides with a running ``make run``, and stops it afterwards.

Users, spawn rate and run time default to ``[tool.locust]`` in pyproject.toml; every
scenario class runs unless some are named. Outputs, in
``load_tests/results/loadtest-<UTC time>/``: ``stats_*.csv`` (Locust's CSVs),
``report.html`` and ``summary.json`` (totals and p50/p95/p99 per request name, plus
Locust's own JSON stats). The exit code is Locust's: non-zero when any request failed.

    .venv/bin/python load_tests/run.py --host http://127.0.0.1:3000 -u 32 -t 60s MixedUser
    LOADTEST_SHAPE=step .venv/bin/python load_tests/run.py -u 64 -t 2m UncachedForecastUser
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `load_tests.common` importable
    sys.path.insert(0, str(ROOT))

from load_tests.common import (  # noqa: E402
    RESULTS,
    ServiceProcess,
    free_port,
    machine,
    pinned,
    read_stats_json,
)

log = logging.getLogger("gridcast.loadtest")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", help="service URL; omitted = start one on embedded defaults")
    ap.add_argument("-u", "--users", type=int, help="concurrent users (default: [tool.locust])")
    ap.add_argument("-r", "--spawn-rate", type=float, help="users started per second")
    ap.add_argument("-t", "--run-time", help="e.g. 30s, 2m")
    ap.add_argument("--service-cpus", help="taskset CPU list for a service this command starts")
    ap.add_argument("--locust-cpus", help="taskset CPU list for Locust")
    ap.add_argument("user_classes", nargs="*", help="scenario classes (default: all, by weight)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # a plain `kill` must still stop the services this run started (the finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse(argv)
    out = RESULTS / f"loadtest-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)

    service = None
    host = args.host
    if host is None:
        from gridcast.settings import get_settings
        from training.train_cli import ensure_quick_models

        ensure_quick_models(get_settings())
        service = ServiceProcess(port=free_port(), cpus=args.service_cpus, log_path=out / "service.log")
        log.info("starting the service on embedded defaults at %s (log: %s)", service.url,
                 service.log_path.relative_to(ROOT))
        service.start()
        log.info("ready after %.1f s", service.cold_start_s)
        host = service.url
    host = host.rstrip("/")

    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "load_tests" / "locustfile.py"), "--headless",
           "--host", host, "--csv", str(out / "stats"), "--html", str(out / "report.html"),
           "--json-file", str(out / "locust"), "--only-summary"]
    for flag, value in (("-u", args.users), ("-r", args.spawn_rate), ("-t", args.run_time)):
        if value is not None:
            cmd += [flag, str(value)]
    cmd += args.user_classes
    log.info("locust against %s → %s", host, out.relative_to(ROOT))
    try:
        code = subprocess.call(pinned(cmd, args.locust_cpus), cwd=ROOT)
    finally:
        if service is not None:
            service.stop()

    locust_json = out / "locust.json"
    if not locust_json.exists():
        log.error("Locust wrote no statistics (exit code %s)", code)
        return code or 1
    stats = read_stats_json(locust_json)
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host,
        "started_service": service is not None,
        "cold_start_s": round(service.cold_start_s, 2) if service and service.cold_start_s else None,
        "command": cmd,
        "machine": machine(),
        "total": stats["Aggregated"],
        "by_name": {k: v for k, v in stats.items() if k != "Aggregated"},
        "locust_stats": json.loads(locust_json.read_text()),
        "env": {k: v for k, v in os.environ.items() if k.startswith("LOADTEST_")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    t = summary["total"]
    log.info("%d requests, %d failures, %.1f req/s, p50/p95/p99 %s/%s/%s ms — %s", t["requests"], t["failures"],
             t["rps"], t["p50_ms"], t["p95_ms"], t["p99_ms"], (out / "summary.json").relative_to(ROOT))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
