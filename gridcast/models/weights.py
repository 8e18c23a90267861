"""Combination weights per lead that keep learning from the members' errors.

Used by :class:`gridcast.models.ensemble.EnsembleForecaster`. Two pieces:

* :class:`LeadWeights` keeps, per lead (steps after the forecast origin, counted
  from 0), an exponentially weighted sum of the outer products ``e·eᵀ`` of the
  members' **relative** errors ``e_m = (ŷ_m − y) / |y|`` (relative, so the weights
  aim at MAPE-like accuracy and the numbers do not depend on the grid's size), and a
  half-life in time: every new batch of actuals first multiplies the sums by
  ``0.5^(Δt / half_life)``.
* :class:`PendingForecasts` keeps the members' forecasts made at recent origins
  until the actuals of their target steps arrive.

**The weights** of a lead minimise the combination's weighted mean squared error
``wᵀ Σ w`` over the simplex (``w ≥ 0``, ``Σ w = 1``), with ``Σ`` the sums of the
leads within ``± pool`` of it (neighbouring hours err alike; pooling steadies the
estimate). Why not inverse-MSE: the members' errors are strongly correlated (they
see the same weather and calendar), and then inverse-MSE weights can combine into
something worse than the best member — what the ensemble did on Spain 2018 (1.97 %
vs its LSTM's 1.87 %). The constrained minimum-variance combination accounts for the
correlation and, among its candidates, has every single member: evaluated on the
sums it was chosen on it is never worse than the best member. ``Σ`` is shrunk
towards its diagonal by ``shrinkage`` before solving (stability on few samples);
should that choice come out worse on the unshrunk sums than the best single member,
the best single member is taken instead, so the guarantee holds exactly.

With 2–4 members the simplex problem is solved exactly by trying every support (the
closed-form minimum-variance weights of each subset, kept when non-negative).

Example:
    >>> import numpy as np
    >>> lw = LeadWeights.empty(("a", "b"), n_leads=2, pool=0, shrinkage=0.0, half_life_s=86400.0)
    >>> rng = np.random.default_rng(0)
    >>> common = rng.standard_normal(500)
    >>> e = np.column_stack([common + 0.1 * rng.standard_normal(500), 2 * common])  # b: worse, correlated
    >>> lw.observe(np.zeros(500, dtype=int), e, at=0)
    >>> w = lw.weights()
    >>> bool(w[0, 0] > 0.99), w[1].tolist()  # lead 1 has no data: equal weights
    (True, [0.5, 0.5])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np


def simplex_min_variance(cov: np.ndarray, *, shrinkage: float = 0.0) -> np.ndarray:
    """The weights ``w ≥ 0, Σw = 1`` that minimise ``wᵀ·cov·w`` (exact, by support).

    ``cov`` is shrunk as ``(1 − shrinkage)·cov + shrinkage·diag(cov)`` for the choice;
    if the chosen weights do worse on the unshrunk ``cov`` than the best single
    member, that member gets all the weight. An all-zero ``cov`` gives equal weights.
    """
    cov = np.asarray(cov, dtype=float)
    m = cov.shape[0]
    diag = np.diag(cov)
    if not np.isfinite(cov).all() or diag.max() <= 0:
        return np.full(m, 1.0 / m)
    shrunk = (1.0 - shrinkage) * cov + shrinkage * np.diag(diag)
    best_w, best_obj = None, np.inf
    for k in range(1, m + 1):
        for support in combinations(range(m), k):
            idx = list(support)
            sub = shrunk[np.ix_(idx, idx)]
            try:
                raw = np.linalg.solve(sub, np.ones(k))
            except np.linalg.LinAlgError:
                raw = np.linalg.pinv(sub) @ np.ones(k)
            total = raw.sum()
            if not np.isfinite(total) or abs(total) < 1e-300:
                continue
            w_sub = raw / total
            if (w_sub < -1e-12).any():
                continue
            w = np.zeros(m)
            w[idx] = np.clip(w_sub, 0.0, None)
            w /= w.sum()
            obj = float(w @ shrunk @ w)
            if best_w is None or obj < best_obj * (1 - 1e-12):  # ties: the smaller support
                best_w, best_obj = w, obj
    single = int(np.argmin(diag))
    if best_w is None or float(best_w @ cov @ best_w) > diag[single] * (1 + 1e-9):  # not a rounding tie
        best_w = np.zeros(m)
        best_w[single] = 1.0
    return best_w


@dataclass(eq=False)
class LeadWeights:
    """Exponentially weighted error second moments per lead, and the weights from them.

    Attributes:
        members: member aliases, in the column order of the arrays.
        pool: leads on each side pooled into a lead's estimate.
        shrinkage: towards the diagonal, for the choice of weights.
        half_life_s: seconds after which an error counts half.
        cov: ``(n_leads, M, M)`` weighted sums of ``e·eᵀ``.
        count: ``(n_leads,)`` weighted numbers of errors.
        as_of: epoch nanoseconds the sums are decayed to (None: nothing seen yet).
    """

    members: tuple[str, ...]
    pool: int
    shrinkage: float
    half_life_s: float
    cov: np.ndarray
    count: np.ndarray
    as_of: int | None = None

    @classmethod
    def empty(cls, members, *, n_leads: int, pool: int, shrinkage: float, half_life_s: float) -> LeadWeights:
        m = len(members)
        return cls(tuple(members), int(pool), float(shrinkage), float(half_life_s),
                   np.zeros((n_leads, m, m)), np.zeros(n_leads))

    @property
    def n_leads(self) -> int:
        return self.cov.shape[0]

    def observe(self, leads: np.ndarray, errors: np.ndarray, *, at: int) -> None:
        """Decay to ``at`` (epoch ns), then add one error vector per row at its lead.

        Leads past the last tracked one count towards the last one; rows with a
        non-finite error (a member without a plausible forecast) are skipped.
        """
        if self.as_of is not None and at > self.as_of:
            factor = 0.5 ** ((at - self.as_of) / 1e9 / self.half_life_s)
            self.cov *= factor
            self.count *= factor
        self.as_of = at if self.as_of is None else max(self.as_of, at)
        errors = np.asarray(errors, dtype=float)
        ok = np.isfinite(errors).all(axis=1)
        leads = np.minimum(np.asarray(leads, dtype=int)[ok], self.n_leads - 1)
        errors = errors[ok]
        np.add.at(self.cov, leads, errors[:, :, None] * errors[:, None, :])
        np.add.at(self.count, leads, 1.0)

    def weights(self) -> np.ndarray:
        """``(n_leads, M)`` weights, each row on the simplex."""
        csum = np.concatenate([np.zeros((1, *self.cov.shape[1:])), np.cumsum(self.cov, axis=0)])
        out = np.empty((self.n_leads, len(self.members)))
        for lead in range(self.n_leads):
            lo, hi = max(0, lead - self.pool), min(self.n_leads, lead + self.pool + 1)
            out[lead] = simplex_min_variance(csum[hi] - csum[lo], shrinkage=self.shrinkage)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"cov": self.cov, "count": self.count,
                "as_of": np.array(-1 if self.as_of is None else self.as_of, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays, members, *, pool: int, shrinkage: float, half_life_s: float) -> LeadWeights:
        as_of = int(arrays["as_of"])
        return cls(tuple(members), int(pool), float(shrinkage), float(half_life_s),
                   np.array(arrays["cov"], dtype=float), np.array(arrays["count"], dtype=float),
                   None if as_of < 0 else as_of)


@dataclass(eq=False)
class PendingForecasts:
    """Members' forecasts from recent origins, waiting for their actuals.

    Each record: the first target (epoch ns), the members' means ``(M, H)`` (NaN for
    a member whose forecast was implausible; the ensemble adds the combination's mean
    as a last row, scored alike) and which targets are already scored.
    One record per first target: a later forecast for the same origin replaces it.
    """

    step_ns: int
    max_records: int = 64
    records: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, start: int, means: np.ndarray) -> None:
        self.records.pop(start, None)
        self.records[start] = (np.asarray(means, dtype=float), np.zeros(means.shape[1], dtype=bool))
        while len(self.records) > self.max_records:
            self.records.pop(min(self.records))

    def score(self, times: np.ndarray, actual: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (leads, relative errors ``(k, M)``) of every record's targets among ``times``.

        Targets get scored once; a record whose targets are all scored, or all at or
        before the newest of ``times``, is dropped.
        """
        times = np.asarray(times, dtype=np.int64)
        actual = np.asarray(actual, dtype=float)
        good = np.isfinite(actual) & (actual != 0)
        times, actual = times[good], actual[good]
        out = []
        newest = int(times.max()) if len(times) else None
        for start in sorted(self.records):
            means, scored = self.records[start]
            offset = times - start
            lead = offset // self.step_ns
            hit = (offset >= 0) & (offset % self.step_ns == 0) & (lead < means.shape[1])
            lead, y = lead[hit], actual[hit]
            fresh = ~scored[lead]
            lead, y = lead[fresh], y[fresh]
            if len(lead):
                scored[lead] = True
                out.append((lead, ((means[:, lead] - y) / np.abs(y)).T))
            last_target = start + (means.shape[1] - 1) * self.step_ns
            if scored.all() or (newest is not None and last_target <= newest):
                del self.records[start]
        return out
