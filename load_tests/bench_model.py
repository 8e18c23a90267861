"""Model-only limits, in process: what the served LSTM computes without HTTP around it.

Two figures, in forecasts per second of CPU time on one core (``taskset`` it onto the
service's core, as ``load_tests/bench.py`` does, so they sit beside the service's own):

* **network** — the network call alone on a batch of 64 prepared inputs, each computed
  for the steps its request asks for (as ``predict_series`` does): the ceiling for any
  serving stack;
* **predict_series** — the forecaster's whole batched call on 64 requests, each its
  own 168–336-point history and a horizon of 1–168 steps: the network plus the feature
  preparation (window slicing, calendar table lookups, weather terms, intervals).

The gap between them is feature preparation. Prints one JSON object.

    taskset -c 1 .venv/bin/python load_tests/bench_model.py --batch 64 --repeats 50
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cpu(fn, repeats: int) -> float:
    """CPU seconds per call (process time: what one core spends, whatever else runs)."""
    fn()
    c0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - c0) / repeats


def model_limits(batch: int = 64, repeats: int = 50, seed: int = 0) -> dict:
    from gridcast.models.base import SeriesRequest
    from gridcast.models.lstm_features import inputs
    from gridcast.series import Series
    from gridcast.store import load_forecaster, served_models

    served = [m for m in served_models() if m.alias == "lstm"]
    if not served:
        raise SystemExit("no LSTM is served; run `make run` or `make bento` first (quick models)")
    model = load_forecaster(served[0].tag)
    rng = np.random.default_rng(seed)
    end = int(model.context_.index[-1].value // 10**9)
    step = model._step_s
    level = float(np.nanmean(model.context_["load_mw"]))
    requests = []
    for _ in range(batch):
        n = int(rng.choice([168, 240, 336]))
        start = end - (n - 1) * step - step * int(rng.integers(0, 48))
        columns = {"load_mw": level * (1 + 0.1 * rng.standard_normal(n)),
                   "temperature_c": 20 + 3 * rng.standard_normal(n)}
        requests.append(SeriesRequest(int(rng.choice([1, 6, 24, 48, 168])), (80, 95), Series(start, step, columns)))
    whole = _cpu(lambda: model.predict_series(requests), repeats)

    # the network alone, on the same batch prepared once
    d, spd, H = model.params["input_days"], model.spd_, model.H_
    last = np.array([r.history.end for r in requests])
    offsets = np.concatenate([-spd * step * np.arange(d - 1, -1, -1), step * np.arange(1, H + 1)])
    cal = model._calendar_rows(last[:, None] + offsets[None, :])
    L = model.window_
    enc, dec, base, _ = inputs(model, np.stack([r.history.load[-L:] for r in requests]),
                               np.stack([r.history.get("temperature_c")[-L:] for r in requests]),
                               cal[:, :d], cal[:, d:], np.full((batch, H), np.nan))
    # the steps each request asks for, as predict_series computes them (the head runs on those only)
    leads = np.array([r.horizon for r in requests])
    network = _cpu(lambda: model._run(enc, dec, base, leads=leads), repeats)
    return {
        "model": served[0].tag, "batch": batch, "repeats": repeats,
        "network_steps": "asked",  # the head on each request's own steps (before 2026-12-06 22:00: every step)
        "network_ms_per_batch": round(network * 1000, 3),
        "network_forecasts_per_s": round(batch / network),
        "predict_series_ms_per_batch": round(whole * 1000, 3),
        "predict_series_forecasts_per_s": round(batch / whole),
        "share_of_network_limit": round(network / whole, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args(argv)
    print(json.dumps(model_limits(args.batch, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
