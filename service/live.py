"""The service's half of the real-time loop: live scores, the hot swap, the drift trigger.

* :class:`LiveScores` keeps every forecast the service serves from state (or from a
  model's own context) in the ledger (:mod:`gridcast.scoring`), scores it when actuals
  arrive through ``POST /admin/observations`` (the bridge scores the stream's), and
  answers the ``live`` block of ``GET /models`` and the ``gridcast_live_*`` gauges.
  With Redis, recording leaves the request path: one worker thread writes them.
* :class:`ServedWatcher` polls the store's served pointer every
  ``settings.served_poll_s``; when a newer model was promoted it loads the changed
  models in its own thread (unchanged ones are reused), warms them up, and hands the
  service a new :class:`~gridcast.forecast.ForecastCore` to swap in with one
  assignment. A request holds the core it was planned with to the end, so requests in
  flight finish on the old models and every later one names the new version.
* The drift trigger (:class:`~gridcast.drift.DriftMonitor`, off by default) runs
  ``gridcast retrain --region R`` as a separate process: the service never fits.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from gridcast.catalog import ModelCatalog, ServedModel
from gridcast.forecast import Answer, ForecastCore, ModelRunner, Plan
from gridcast.schema import LOAD
from gridcast.drift import DriftMonitor
from gridcast.scoring import InMemoryLedger, live_metrics, make_ledger, record_of
from gridcast.settings import Settings

logger = logging.getLogger("gridcast.service.live")


class LiveScores:
    """The ledger of served forecasts, their live scores, gauges and the drift monitor."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = make_ledger(settings)
        # the embedded ledger takes microseconds: recorded inline; Redis: off the request path
        self._writer = None if isinstance(self.ledger, InMemoryLedger) else ThreadPoolExecutor(
            1, thread_name_prefix="gridcast-ledger")
        self.drift = DriftMonitor(ratio=settings.drift_ratio, duration_s=settings.drift_duration_s,
                                  min_points=settings.drift_min_points)
        self.retrains: list[str] = []
        self._children: list[subprocess.Popen] = []  # retrain processes launched by the drift trigger

    # -- forecasts and actuals ---------------------------------------------------------------
    def served(self, plan: Plan, answer: Answer) -> None:
        """Keep a forecast the service computed (not one from a client's own history)."""
        if plan.source == "request":
            return
        record = record_of(plan, answer)
        if self._writer is None:
            self.ledger.record([record])
        else:
            self._writer.submit(self._record_quietly, record)

    def _record_quietly(self, record: Any) -> None:
        try:
            self.ledger.record([record])
        except Exception:  # Redis away: the forecast goes unscored, the answer was already sent
            logger.warning("ledger unavailable; a served forecast is not kept for scoring", exc_info=True)

    def flush(self) -> None:
        """Wait for the forecasts queued for the ledger (tests, shutdown)."""
        if self._writer is not None:
            self._writer.submit(lambda: None).result(timeout=30)

    def actuals(self, region: str, frame: pd.DataFrame) -> int:
        """Score held forecasts with the load in ``frame`` (UTC index); returns points scored."""
        if LOAD not in frame:
            return 0
        epochs = pd.DatetimeIndex(frame.index).as_unit("s").asi8.tolist()
        pairs = [(int(t), float(v)) for t, v in zip(epochs, frame[LOAD].tolist(), strict=True) if v == v]
        self.flush()  # a forecast served a moment ago must be there to score
        return self.ledger.score(region, pairs)

    # -- reading the scores ---------------------------------------------------------------------
    def block(self, model: ServedModel, metrics: dict[str, dict] | None = None) -> dict:
        """The ``live`` block of one served model in ``GET /models``."""
        if metrics is None:
            metrics = self.region_metrics(model.region)
        windows = metrics.get(model.alias, {})
        return {"n": max((w["n"] for w in windows.values()), default=0), "windows": windows}

    def region_metrics(self, region: str) -> dict[str, dict]:
        """model -> window -> summary for ``region``; also sets the region's ``gridcast_live_*`` gauges."""
        from service import metrics

        scores = live_metrics(self.ledger.points(region), bands=self.settings.score_lead_bands)
        for model, windows in scores.items():
            for window, summary in windows.items():
                metrics.set_live(region, model, window, summary)
        return scores

    def refresh(self, catalog: ModelCatalog, *, now: float | None = None) -> dict[str, dict[str, dict]]:
        """Recompute every region's scores, set the gauges, and feed the drift monitor."""
        # finished retrain processes are reaped (poll), running ones kept: none stays a zombie
        self._children = [p for p in self._children if p.poll() is None]
        out = {}
        for region in catalog.regions():
            scores = self.region_metrics(region)
            out[region] = scores
            for served in catalog:
                if served.region != region or served.mape is None:
                    continue
                day = scores.get(served.alias, {}).get("24h")
                due = self.drift.observe(region, served.alias, live_mape=day and day["mape"],
                                         n=day["n"] if day else 0, validation_mape=served.mape,
                                         now=time.time() if now is None else now)
                if due and self.settings.retrain_on_drift:
                    self._retrain(region)
        return out

    def _retrain(self, region: str) -> None:
        """``gridcast retrain --region R`` in its own process; the watcher serves what it promotes."""
        logger.warning("live error of %s drifted past %.2fx validation for %d s: retraining", region,
                       self.settings.drift_ratio, self.settings.drift_duration_s)
        self.retrains.append(region)
        self._children.append(subprocess.Popen([sys.executable, "-m", "training.retrain_cli", "--region", region],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               start_new_session=True))


def signature(catalog: ModelCatalog) -> tuple[str, ...]:
    """What changes when a model is promoted: the served (region, alias, tag) entries."""
    return tuple(f"{m.region}|{m.alias}|{m.tag}" for m in catalog)


def run_by_runner(items: list[tuple[ModelRunner, Plan]]) -> list[Any]:
    """The batcher's call: each plan runs on the runner its core planned it with (old or new during a swap)."""
    out: list[Any] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for i, (runner, _) in enumerate(items):
        groups.setdefault(id(runner), []).append(i)
    for idx in groups.values():
        runner = items[idx[0]][0]
        for i, answer in zip(idx, runner.run([items[i][1] for i in idx]), strict=True):
            out[i] = answer
    return out


def build_runner(catalog: ModelCatalog, old: ModelRunner | None, metrics: Any) -> ModelRunner:
    """A runner for ``catalog``; forecasters of unchanged tags are reused from ``old``."""
    from gridcast.store import load_forecaster

    forecasters = {}
    for m in catalog:
        held = old.catalog.get(m.region, m.alias) if old is not None else None
        if held is not None and held.tag == m.tag and (m.region, m.alias) in old.forecasters:
            forecasters[(m.region, m.alias)] = old.forecasters[(m.region, m.alias)]
        else:
            forecasters[(m.region, m.alias)] = load_forecaster(m.tag)
            logger.info("loaded %s (%s/%s) for the swap", m.tag, m.region, m.alias)
    runner = ModelRunner(catalog, forecasters, metrics=metrics)
    runner.warm_up()
    return runner


class ServedWatcher(threading.Thread):
    """Polls the served pointer; on a change builds the new core and calls ``swap`` with it.

    Also refreshes the live scores (gauges, drift) every poll.
    """

    def __init__(self, *, every_s: float, current: Callable[[], ForecastCore], swap: Callable[[ForecastCore], None],
                 live: LiveScores) -> None:
        super().__init__(name="gridcast-served-watcher", daemon=True)
        self.every_s = every_s
        self.current = current
        self.swap = swap
        self.live = live
        self.stopped = threading.Event()
        self.swaps = 0
        self._pointer: str | None = "unread"  # the served pointer's tag at the last full read

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                self.check()
            except Exception:  # a broken store or Redis must not end the watching
                logger.exception("served-pointer check failed; trying again in %.0f s", self.every_s)

    def check(self) -> bool:
        """One poll: swap when the served set changed; True if it did.

        Only the served pointer's tag is read while it stays the same (one metadata
        file); every served model's metadata only after a promotion moved it.
        """
        from gridcast.store import served_models, served_pointer

        core = self.current()
        pointer = served_pointer()
        swapped = False
        if pointer == self._pointer:
            self.live.refresh(core.catalog)
            return swapped
        catalog = ModelCatalog.from_store(served_models())
        self._pointer = pointer
        if signature(catalog) != signature(core.catalog):
            runner = build_runner(catalog, core.runner, core.runner.metrics if core.runner else None)
            new = ForecastCore(settings=core.settings, catalog=runner.catalog, runner=runner, state=core.state,
                               cache=core.cache, metrics=core.metrics)
            self.swap(new)
            self.swaps += 1
            swapped = True
            logger.info("hot swap: now serving %s", ", ".join(signature(catalog)))
        self.live.refresh(self.current().catalog)
        return swapped
