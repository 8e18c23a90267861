"""What the Locust scenarios, the benchmark runner and the smoke test share.

* **Payloads**: a request history derived from the service's own recent actuals
  (``POST /recent``), stretched to the wanted length by repeating the weekly pattern
  and perturbed with noise, so every uncached request carries a *different* history
  (its own cache key) that the LSTM still finds plausible. No data file is read: the
  scenarios run against any deployment that answers ``/recent``.
* **Checks**: :func:`check_forecast` is the one definition of a correct answer
  (status aside): as many points as asked, ``lower <= mean <= upper`` everywhere,
  finite numbers, the region asked for.
* **A service under test**: :class:`ServiceProcess` starts ``bentoml serve`` the way
  ``gridcast serve`` does (same command line), optionally pinned to CPUs with
  ``taskset``, measures process start → ``/readyz`` OK, and reads the RSS of the whole
  process tree (API process + model process).

Example:
    >>> import numpy as np
    >>> base = [{"timestamp": "2024-01-01T00:00:00+00:00", "load_mw": 100.0},
    ...         {"timestamp": "2024-01-01T01:00:00+00:00", "load_mw": 110.0}]
    >>> hist = history_from(base, n=4, rng=np.random.default_rng(0), noise=0.0)
    >>> [h["timestamp"][11:16] for h in hist], [h["load_mw"] for h in hist]
    (['22:00', '23:00', '00:00', '01:00'], [100.0, 110.0, 100.0, 110.0])
"""

from __future__ import annotations

import math
import operator
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "load_tests" / "results"

#: columns a request's history may carry that /recent also returns
HISTORY_COLUMNS = ("load_mw", "temperature_c")
#: the LSTM's look-back is 7 days of hourly steps; histories are at least this long
MIN_HISTORY = 168


# ---- payloads ------------------------------------------------------------------------------


def history_from(
    base: Sequence[Mapping[str, Any]], *, n: int, rng: np.random.Generator, noise: float = 0.03
) -> list[dict]:
    """``n`` hourly observations ending where ``base`` ends, each value jittered.

    Older steps than ``base`` holds repeat it (the weekly pattern when ``base`` is a
    week), so any length can be asked for; multiplicative noise of relative size
    ``noise`` makes each history unique, hence a cache miss. Cheap to call per request
    (timestamps and the repeated base are built once per ``(base, n)``): the load
    generator must not be what limits a benchmark.

    Args:
        base: observations (``timestamp``, ``load_mw``, optional ``temperature_c``),
            oldest first, on an hourly grid.
        n: number of observations wanted.
        rng: the random source (one per simulated user).
        noise: relative standard deviation of the jitter on load.

    Returns:
        Observations as a request's ``history`` list.
    """
    if not base:
        raise ValueError("history_from needs at least one base observation")
    stamps, loads, temps = _history_frame(base, n)
    jitter = 1.0 + noise * rng.standard_normal(n) if noise else np.ones(n)
    values = np.round(loads * jitter, 3).tolist()
    return [{"timestamp": ts, "load_mw": v} if t is None else {"timestamp": ts, "load_mw": v, "temperature_c": t}
            for ts, v, t in zip(stamps, values, temps)]


def columnar_history(
    base: Sequence[Mapping[str, Any]], *, n: int, rng: np.random.Generator, noise: float = 0.03
) -> dict:
    """:func:`history_from` as the columnar payload, built as arrays (no dict per point).

    The same draws give the same JSON as ``columnar(history_from(...))`` (orjson with
    ``OPT_SERIALIZE_NUMPY``): the load is one jittered array, the rest is built once per
    ``(base, n)``. What keeps a load generator on one core from being what a benchmark
    of the batch endpoint measures (64 histories per call).

    Example:
        >>> import numpy as np, orjson
        >>> base = [{"timestamp": "2024-01-01T00:00:00+00:00", "load_mw": 100.0, "temperature_c": 5.0},
        ...         {"timestamp": "2024-01-01T01:00:00+00:00", "load_mw": 110.0}]
        >>> a = columnar_history(base, n=3, rng=np.random.default_rng(1))
        >>> b = columnar(history_from(base, n=3, rng=np.random.default_rng(1)))
        >>> orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(b)
        True
    """
    if not base:
        raise ValueError("columnar_history needs at least one base observation")
    stamps, loads, temps = _history_frame(base, n)
    jitter = 1.0 + noise * rng.standard_normal(n) if noise else np.ones(n)
    out: dict[str, Any] = {"start": stamps[0], "step": "1h", "load_mw": np.round(loads * jitter, 3)}
    if any(t is not None for t in temps):
        out["temperature_c"] = temps
    return out


_FRAMES: dict[tuple, tuple[list[str], np.ndarray, list[float | None]]] = {}


def _history_frame(base: Sequence[Mapping[str, Any]], n: int) -> tuple[list[str], np.ndarray, list[float | None]]:
    key = (id(base), len(base), str(base[0]["timestamp"]), str(base[-1]["timestamp"]), n)
    if key not in _FRAMES:
        last = datetime.fromisoformat(str(base[-1]["timestamp"])).astimezone(UTC)
        k = len(base)
        src = [base[(i - n) % k] for i in range(n)]
        stamps = [(last - timedelta(hours=n - 1 - i)).isoformat() for i in range(n)]
        temps = []
        for obs in src:
            temp = obs.get("temperature_c")
            temps.append(round(float(temp), 2) if temp is not None and math.isfinite(float(temp)) else None)
        _FRAMES[key] = (stamps, np.array([float(o["load_mw"]) for o in src]), temps)
    return _FRAMES[key]


def columnar(history: Sequence[Mapping[str, Any]]) -> dict:
    """An object-per-point hourly history as the columnar payload (``start``, ``step``, arrays).

    Both forms give the same forecast; the columnar one validates as arrays.

    Example:
        >>> columnar([{"timestamp": "2024-01-01T00:00:00+00:00", "load_mw": 1.0},
        ...           {"timestamp": "2024-01-01T01:00:00+00:00", "load_mw": 2.0, "temperature_c": 3.0}])
        {'start': '2024-01-01T00:00:00+00:00', 'step': '1h', 'load_mw': [1.0, 2.0], 'temperature_c': [None, 3.0]}
    """
    out: dict[str, Any] = {"start": history[0]["timestamp"], "step": "1h",
                           "load_mw": [p["load_mw"] for p in history]}
    if any(p.get("temperature_c") is not None for p in history):
        out["temperature_c"] = [p.get("temperature_c") for p in history]
    return out


def synthetic_base(rng: np.random.Generator, *, hours: int = MIN_HISTORY, level: float = 1000.0) -> list[dict]:
    """A plausible week (daily and weekly shape) when a deployment has no recent actuals."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    out = []
    for i in range(hours):
        ts = end - timedelta(hours=hours - 1 - i)
        daily = 1.0 + 0.25 * math.sin(2 * math.pi * (ts.hour - 8) / 24)
        weekly = 0.9 if ts.weekday() >= 5 else 1.0
        out.append({"timestamp": ts.isoformat(),
                    "load_mw": round(level * daily * weekly * (1 + 0.01 * rng.standard_normal()), 3),
                    "temperature_c": round(27 + 4 * math.sin(2 * math.pi * (ts.hour - 14) / 24), 2)})
    return out


def base_from_recent(body: Mapping[str, Any]) -> list[dict]:
    """The usable observations of a ``/recent`` answer (load present), oldest first."""
    rows = []
    for obs in body.get("observations") or []:
        load = obs.get("load_mw")
        if load is None or not math.isfinite(float(load)):
            continue
        rows.append({"timestamp": obs["timestamp"], "load_mw": float(load),
                     **{c: obs.get(c) for c in HISTORY_COLUMNS[1:] if obs.get(c) is not None}})
    return rows


# ---- checks --------------------------------------------------------------------------------


class AnswerPoint(msgspec.Struct):
    """What a check reads of a forecast point (other fields are skipped, not decoded)."""

    lower: float | None = None
    mean: float | None = None
    upper: float | None = None


class ForecastAnswer(msgspec.Struct):
    """What a check reads of one forecast answer."""

    region: str | None = None
    model: str | None = None
    fallback: bool | None = None
    fallback_reason: str | None = None
    points: list[AnswerPoint] | None = None


class BatchAnswer(msgspec.Struct):
    results: list[ForecastAnswer] | None = None


_ANSWER = msgspec.json.Decoder(ForecastAnswer)
_BATCH = msgspec.json.Decoder(BatchAnswer)


def decode_answer(raw: bytes) -> ForecastAnswer:
    """A ``/forecast`` body as a :class:`ForecastAnswer` (msgspec: about 4x faster than a dict per point).

    Raises:
        ValueError: not JSON, or a field of the wrong type (``msgspec.DecodeError`` is one).
    """
    return _ANSWER.decode(raw)


def decode_batch(raw: bytes) -> BatchAnswer:
    """A ``/forecast_batch`` body (its ``results``). Raises as :func:`decode_answer`."""
    return _BATCH.decode(raw)


def check_forecast(body: Any, *, region: str, horizon: int, model: str | None = None) -> str | None:
    """Why a forecast answer is wrong, or None when it is right.

    Args:
        body: one forecast result: a :class:`ForecastAnswer` (:func:`decode_answer`), or
            its decoded JSON.
        region: the region asked for.
        horizon: the number of steps asked for.
        model: when given, the alias that must have answered (no fallback allowed).
    """
    if not isinstance(body, ForecastAnswer):
        if not isinstance(body, Mapping):
            return f"answer is {type(body).__name__}, not an object"
        try:
            body = msgspec.convert(body, ForecastAnswer)
        except msgspec.ValidationError as exc:
            return f"malformed answer: {exc}"
    if body.region != region:
        return f"region {body.region!r} != {region!r}"
    points = body.points
    if points is None or len(points) != horizon:
        return f"{'no' if points is None else len(points)} points for horizon {horizon}"
    if not _points_ok(points):  # the usual case is checked a column at a time; else find the first bad point
        for i, p in enumerate(points):
            lo, mean, hi = p.lower, p.mean, p.upper
            if lo is None or mean is None or hi is None:
                return f"points[{i}] lacks lower/mean/upper"
            if not all(math.isfinite(v) for v in (lo, mean, hi)):
                return f"points[{i}] is not finite"
            if not lo <= mean <= hi:
                return f"points[{i}]: not lower <= mean <= upper ({lo:.1f}, {mean:.1f}, {hi:.1f})"
    if model is not None and (body.model != model or body.fallback):
        return f"{body.model!r} answered (fallback: {body.fallback_reason}), not {model!r}"
    return None


def _points_ok(points: list[AnswerPoint]) -> bool:
    """Every point has finite ``lower <= mean <= upper`` (a column at a time, no message)."""
    lo, mean, hi = [p.lower for p in points], [p.mean for p in points], [p.upper for p in points]
    try:  # finite bounds around the mean: a NaN or infinite mean fails a comparison; None raises
        return (all(map(math.isfinite, lo)) and all(map(math.isfinite, hi))
                and all(map(operator.le, lo, mean)) and all(map(operator.le, mean, hi)))
    except TypeError:
        return False


# ---- the service under test ------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model and load: printed next to every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # psutil comes with locust; keep the report working without it
        ram_gb = None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` when asked for and available."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *cmd]
    return list(cmd)


def wait_ready(url: str, *, timeout_s: float, proc: subprocess.Popen | None = None) -> float:
    """Seconds until ``GET {url}/readyz`` answers 200.

    Raises:
        RuntimeError: the process died or ``timeout_s`` passed first.
    """
    import httpx

    t0 = time.perf_counter()
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"{url}/readyz not OK after {timeout_s:.0f} s")
        time.sleep(0.1)


@dataclass
class ServiceProcess:
    """A ``bentoml serve`` subprocess of the gridcast service, as ``gridcast serve`` starts it."""

    port: int
    env: dict[str, str] = field(default_factory=dict)
    cpus: str | None = None
    log_path: Path | None = None
    host: str = "127.0.0.1"
    #: where ``bentoml serve`` runs (another checkout of gridcast, for a variant)
    cwd: Path = ROOT
    proc: subprocess.Popen | None = None
    cold_start_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout_s: float = 180.0) -> ServiceProcess:
        """Start and wait for readiness; ``cold_start_s`` = process start → ``/readyz`` OK."""
        from service.cli import command

        env = {**os.environ, **self.env, "GRIDCAST_HOST": self.host, "GRIDCAST_PORT": str(self.port)}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            pinned(command(self.host, self.port), self.cpus), cwd=self.cwd, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._log = log
        try:
            wait_ready(self.url, timeout_s=timeout_s, proc=self.proc)
        except RuntimeError:
            self.stop()
            raise
        self.cold_start_s = time.perf_counter() - t0
        return self

    def rss_mb(self) -> float:
        """Resident memory of the service's whole process tree (MB)."""
        import psutil

        total = 0
        for p in self._tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return round(total / 2**20, 1)

    def _tree(self) -> list:
        import psutil

        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the service's process tree has used so far.

        Divided by the requests served in between, it gives the service's CPU cost per
        request — a figure that, unlike latency, barely moves when other work shares
        the machine.
        """
        import psutil

        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def stop(self) -> None:
        """SIGTERM the process group (bentoml's workers included), SIGKILL after 20 s."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if getattr(self, "_log", None) not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def __enter__(self) -> ServiceProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def locust_command(
    *, host: str, users: int, spawn_rate: float, run_time: str, user_classes: Sequence[str] = (),
    csv_prefix: Path | None = None, html: Path | None = None, json_file: Path | None = None,
    cpus: str | None = None, extra: Sequence[str] = (),
) -> list[str]:
    """The headless Locust command line every runner uses (the defaults come from ``[tool.locust]``)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "load_tests" / "locustfile.py"), "--headless",
           "--host", host, "-u", str(users), "-r", str(spawn_rate), "-t", run_time, "--only-summary",
           "--stop-timeout", "10", "--exit-code-on-error", "1"]
    if csv_prefix:
        cmd += ["--csv", str(csv_prefix)]
    if html:
        cmd += ["--html", str(html)]
    if json_file:
        cmd += ["--json-file", str(json_file)]
    cmd += [*extra, *user_classes]
    return pinned(cmd, cpus)


def _percentile(hist: Mapping[float, int], q: float) -> float | None:
    """Locust-style percentile of a {rounded ms: count} histogram."""
    total = sum(hist.values())
    if not total:
        return None
    need, seen = q * total, 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= need:
            return float(ms)
    return float(max(hist))


def _summary(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    hist: dict[float, int] = {}
    for e in entries:
        for ms, n in e["response_times"].items():
            hist[float(ms)] = hist.get(float(ms), 0) + int(n)
    requests = sum(int(e["num_requests"]) for e in entries)
    start = min((e["start_time"] for e in entries), default=0.0)
    last = max((e["last_request_timestamp"] or 0.0 for e in entries), default=0.0)
    span = last - start
    failures = sum(int(e["num_failures"]) for e in entries)
    return {
        "requests": requests,
        "failures": failures,
        "rps": round(requests / span, 2) if span > 0 else 0.0,
        # throughput that counts: answers that passed every check
        "ok_rps": round((requests - failures) / span, 2) if span > 0 else 0.0,
        "p50_ms": _percentile(hist, 0.50),
        "p95_ms": _percentile(hist, 0.95),
        "p99_ms": _percentile(hist, 0.99),
        "max_ms": round(max((float(e["max_response_time"] or 0) for e in entries), default=0.0), 1),
        "mean_ms": round(sum(float(e["total_response_time"]) for e in entries) / requests, 1) if requests else 0.0,
    }


def read_stats_json(path: Path) -> dict[str, dict[str, Any]]:
    """Locust's ``--json-file`` output as ``{"METHOD name": summary, "Aggregated": summary}``.

    The JSON file is written after the last request finished (the CSV's final rows can
    miss requests still in flight when the run time ran out), so counts and failures
    here are complete. Throughput = requests / (first request → last request).
    """
    import json

    entries = json.loads(Path(path).read_text())
    out = {f"{e['method']} {e['name']}": _summary([e]) for e in entries}
    out["Aggregated"] = _summary(entries)
    return out
