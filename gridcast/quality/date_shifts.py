"""Blocks of days labelled k days off, and two blocks of days swapped: found and repaired.

Owns the ``date_shift`` and ``date_swap`` checks of :mod:`gridcast.quality.checks`.

A month of load copied one row too far, a daily file saved under the wrong date, two
weekly files exchanged: the values are real, only their labels are wrong, and by whole
days. Each day of such a block fits the calendar (day of week, holiday, season) and
weather of the date ``k`` days away better than its own label. One day doing so is an
odd day (the ``day_type`` check); a run of days doing so *for the same k* is a
mislabelled block.

How: for every offset ``k`` in ±1..``MAX_SHIFT_DAYS``, each day's *gain* is its cost
under its own label minus its cost under the label ``k`` days away (calendar model of
:mod:`gridcast.quality.calendar_model`, in typical-day units, clipped so one holiday
cannot carry a block). On correctly labelled data the gains are negative almost
everywhere; a block shifted by ``k`` is a run of positive gains for that ``k``. The
run with the largest total gain is found in one pass (maximum-sum segment), and kept
when it is long enough, most of its days agree and its mean gain is far from zero
(t statistic). A block whose days belong ``+k`` away next to a block of the same
length whose days belong ``-k`` away, starting ``k`` days later, is a swap.

Limits: offsets up to ``MAX_SHIFT_DAYS``, blocks of at least ``MIN_BLOCK_DAYS``; a
shift by whole weeks keeps the day of the week, so only season and weather could tell
it, and a calendar model's seasonal misfit on real data (measured on Victoria) looks
just the same: offsets that are multiples of 7 are not looked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gridcast.quality.calendar_model import _CalendarModel

#: largest label offset looked for (days, either way)
MAX_SHIFT_DAYS = 35
#: a block is at least this many days (fewer: odd days — a holiday week, an unlisted
#: holiday next to a weekend — left to the day-type check)
MIN_BLOCK_DAYS = 7
#: each half of a swap at least this many days (the pair is evidence enough)
MIN_SWAP_HALF_DAYS = 5
#: its days' gains: mean above this many typical days' cost and a t statistic above
#: SHIFT_T; and of its *telling* days (|gain| above TELLING_GAIN typical days: those
#: whose day type changes with the label, e.g. a Friday holding a Saturday), at least
#: MIN_TELLING_DAYS, SHIFT_SHARE of them in favour. Between two working days the
#: gain is a coin toss, so those days must not dilute the vote.
SHIFT_MIN_MEAN = 0.5
SHIFT_T = 3.0
TELLING_GAIN = 1.0
MIN_TELLING_DAYS = 3
SHIFT_SHARE = 0.8
#: a day's gain is clipped to this many typical days' cost: one unlisted holiday
#: inside a block must not break it, one odd week outside must not make one
EVIDENCE_CLIP = 3.0
#: blocks looked for per offset
MAX_BLOCKS_PER_OFFSET = 3
#: the two halves of a swap may start this many days from where an exact swap would
SWAP_TOLERANCE_DAYS = 2


@dataclass
class Block:
    """A run of days (positions ``start..end`` in the model's days) whose loads belong ``offset`` days away."""

    start: int
    end: int
    offset: int
    gain: float  # total
    mean: float
    share: float  # of the telling days, the share in favour
    t: float
    weather_moved: bool


def _targets(model: _CalendarModel, k: int) -> np.ndarray:
    """Position of the day ``k`` days after each day (-1 when that date is not a complete day)."""
    dates = model.days.dates
    ordinal = np.asarray((dates - dates[0]).days, dtype=int)
    pos_of = np.full(int(ordinal.max()) + 1, -1)
    pos_of[ordinal] = np.arange(len(dates))
    tgt = ordinal + k
    out = np.full(len(dates), -1)
    inside = (tgt >= 0) & (tgt <= ordinal.max())
    out[inside] = pos_of[tgt[inside]]
    return out


def _gains(model: _CalendarModel, k: int, weather_moved: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each day's gain from re-labelling it ``k`` days later (0 where it cannot be scored)."""
    tgt = _targets(model, k)
    valid = (tgt >= 0) & model.days.ok
    i = np.flatnonzero(valid)
    gain = np.zeros(len(tgt))
    alt = model.fast_cost(i, tgt[i], i if weather_moved else tgt[i])
    gain[i] = np.clip((model.own[i] - alt) / model.typical, -EVIDENCE_CLIP, EVIDENCE_CLIP)
    return gain, valid, tgt


def _both_ways(model: _CalendarModel, gain: np.ndarray, valid: np.ndarray, s: int, e: int) -> bool:
    """Among the block's telling days in favour, one busier and one quieter than its label says.

    A week of mislabelled days always moves some working day onto a weekend label and
    some weekend day onto a working-day label; a run of unlisted holidays (a region
    that moved Christmas to Monday) only makes days quieter than labelled.
    """
    idx = np.arange(s, e + 1)[valid[s:e + 1] & (gain[s:e + 1] >= TELLING_GAIN)]
    if not len(idx):
        return False
    level = (model.days.load[idx] - model.calendar_part[idx] - model.weather_part[idx]).mean(axis=1)
    return bool((level > 0).any() and (level < 0).any())


def _best_segment(g: np.ndarray) -> tuple[int, int, float]:
    """The contiguous run with the largest sum (start, end inclusive, sum), in one pass.

    Example:
        >>> _best_segment(np.array([-1.0, 2, 3, -9, 4]))
        (1, 2, 5.0)
    """
    c = np.concatenate(([0.0], np.cumsum(g)))
    low = np.minimum.accumulate(c)[:-1]
    e = int(np.argmax(c[1:] - low))
    s = int(np.argmin(c[: e + 1]))
    return s, e, float(c[e + 1] - c[s])


def _blocks_for(model: _CalendarModel, k: int, weather_moved: bool, min_days: int) -> list[Block]:
    gain, valid, _ = _gains(model, k, weather_moved)
    g = gain.copy()
    found = []
    for _ in range(MAX_BLOCKS_PER_OFFSET):
        s, e, total = _best_segment(g)
        if total <= 0:
            break
        g[s:e + 1] = -1e9  # the next block must lie elsewhere
        x = gain[s:e + 1][valid[s:e + 1]]
        if len(x) < min_days:
            continue
        sd = float(np.std(x, ddof=1))
        t = float(np.mean(x) / (sd / np.sqrt(len(x)))) if sd > 0 else np.inf
        telling = x[np.abs(x) >= TELLING_GAIN]
        share = float((telling > 0).mean()) if len(telling) else 0.0
        block = Block(s, e, k, float(x.sum()), float(x.mean()), share, t, weather_moved)
        if (block.mean >= SHIFT_MIN_MEAN and block.t >= SHIFT_T and len(telling) >= MIN_TELLING_DAYS
                and share >= SHIFT_SHARE and _both_ways(model, gain, valid, s, e)):
            found.append(block)
    return found


def _nearest_alias(b: Block, candidates: list[Block]) -> Block:
    """The candidate for (mostly) the same days with the same day-of-week offset and the smallest |k|.

    Offsets ``k`` and ``k ± 7`` pair the same days of the week; between them only the
    season and the weather decide, which a calendar model fits imperfectly on real
    data (a late-autumn month may fit a month later better). Labels off by a few days
    are far more common than by a few weeks, so the smallest such offset wins.
    """
    best = b
    for c in candidates:
        overlap = min(b.end, c.end) - max(b.start, c.start) + 1
        if (c.offset - b.offset) % 7 == 0 and abs(c.offset) < abs(best.offset) and overlap >= 0.5 * (b.end - b.start + 1):
            best = c
    return best


def _union_half(model: _CalendarModel, a: Block, b: Block) -> Block:
    """The first half of a swap, widened to every day either half's evidence covers."""
    dates = model.days.dates
    k = pd.Timedelta(days=a.offset)
    first = min(dates[a.start], dates[b.start] - k)
    last = max(dates[a.end], dates[b.end] - k)
    s, e = int(np.searchsorted(dates, first)), int(np.searchsorted(dates, last))
    return Block(s, min(e, len(dates) - 1), a.offset, a.gain + b.gain, (a.mean + b.mean) / 2,
                 min(a.share, b.share), min(a.t, b.t), a.weather_moved)


def _confirm_partner(model: _CalendarModel, c: Block) -> Block | None:
    """The other half of a swap, if the days ``c.offset`` away from ``c`` belong ``-c.offset`` away.

    Searching finds one half; the other is then a prediction — where it must be and
    what offset it must have — and is confirmed (mean gain and telling days in favour)
    rather than searched for, so a half that lost against a day-of-week alias in
    the search is still found.
    """
    dates = model.days.dates
    k = pd.Timedelta(days=c.offset)
    s = int(np.searchsorted(dates, dates[c.start] + k))
    e = int(np.searchsorted(dates, dates[c.end] + k, side="right")) - 1
    if s >= len(dates) or e < s:
        return None
    gain, valid, _ = _gains(model, -c.offset, c.weather_moved)
    x = gain[s:e + 1][valid[s:e + 1]]
    telling = x[np.abs(x) >= TELLING_GAIN]
    if len(x) < MIN_SWAP_HALF_DAYS or len(telling) < 2:
        return None
    share = float((telling > 0).mean())
    if x.mean() < SHIFT_MIN_MEAN or share < SHIFT_SHARE or not _both_ways(model, gain, valid, s, e):
        return None
    sd = float(np.std(x, ddof=1))
    t = float(np.mean(x) / (sd / np.sqrt(len(x)))) if sd > 0 else np.inf
    return Block(s, e, -c.offset, float(x.sum()), float(x.mean()), share, t, c.weather_moved)


def _trim_pair(model: _CalendarModel, a: Block) -> Block | None:
    """Drop end days of a swap whose pair (day, day + k) does not, together, favour the swap.

    A block found by its best run can take in a neighbouring odd day (a holiday that
    fits another label by chance); as a *pair* with its partner such a day loses.
    """
    fwd, valid_f, tgt = _gains(model, a.offset, a.weather_moved)
    back, valid_b, _ = _gains(model, -a.offset, a.weather_moved)
    joint = np.array([fwd[i] + (back[tgt[i]] if tgt[i] >= 0 else 0.0) for i in range(a.start, a.end + 1)])
    keep = np.flatnonzero(joint > 0)
    if not len(keep):
        return None
    return Block(a.start + int(keep[0]), a.start + int(keep[-1]), a.offset, a.gain, a.mean, a.share, a.t,
                 a.weather_moved)


def find_blocks(model: _CalendarModel, weather_may_move: bool) -> tuple[list[Block], list[tuple[Block, Block]]]:
    """Mislabelled blocks: (shifts, swaps as (first half widened, second half)), strongest first.

    Swaps first: two blocks whose days belong ``+k`` and ``-k`` away, the second
    starting ``k`` days after the first, are stronger evidence together than either
    alone, so their halves may be shorter (``MIN_SWAP_HALF_DAYS``). Then shifts, the
    nearest day-of-week alias preferred, none overlapping.

    Args:
        model: the calendar model, fitted on the table with any day/month
            transposition already undone (else its days would look shifted).
        weather_may_move: also score the hypothesis that the weather moved with the
            load (same file, or unknown); the better one is kept per block.
    """
    candidates: list[Block] = []
    # whole weeks keep the day of the week: only season and weather could tell such a
    # shift, and a model's seasonal misfit looks the same — not looked for
    for k in [k for j in range(1, MAX_SHIFT_DAYS + 1) if j % 7 for k in (j, -j)]:
        for moved in (False, True) if weather_may_move and model.knots is not None else (False,):
            candidates += _blocks_for(model, k, moved, MIN_SWAP_HALF_DAYS)
    dates = model.days.dates
    taken = np.zeros(len(dates), dtype=bool)
    pairs = []
    for c in candidates:
        partner = _confirm_partner(model, c)
        if partner is not None:
            pairs.append((c, partner) if c.offset > 0 else (partner, c))
    swaps = []
    for a, b in sorted(pairs, key=lambda p: -(p[0].gain + p[1].gain)):
        wide = _trim_pair(model, _union_half(model, a, b))
        if wide is None:
            continue
        k = pd.Timedelta(days=a.offset)
        b = Block(int(np.searchsorted(dates, dates[wide.start] + k)),
                  min(int(np.searchsorted(dates, dates[wide.end] + k)), len(dates) - 1),
                  b.offset, b.gain, b.mean, b.share, b.t, b.weather_moved)
        if not taken[wide.start:wide.end + 1].any() and not taken[b.start:b.end + 1].any():
            swaps.append((wide, b))
            taken[wide.start:wide.end + 1] = True
            taken[b.start:b.end + 1] = True
    rest = [c for c in candidates if c.end - c.start + 1 >= MIN_BLOCK_DAYS and not taken[c.start:c.end + 1].any()]
    rest.sort(key=lambda b: -b.gain)
    shifts = []
    for b in rest:
        b = _nearest_alias(b, rest)
        if not taken[b.start:b.end + 1].any():
            shifts.append(b)
            taken[b.start:b.end + 1] = True
    return shifts, swaps


def _day(model: _CalendarModel, i: int) -> str:
    return model.days.dates[i].date().isoformat()


def describe_shift(model: _CalendarModel, b: Block) -> dict[str, Any]:
    """The report entry of a shifted block: dates, offset, evidence."""
    later = "later" if b.offset > 0 else "earlier"
    return {"from": _day(model, b.start), "to": _day(model, b.end), "days": b.end - b.start + 1,
            "offset_days": b.offset,
            "meaning": f"the load labelled {_day(model, b.start)}..{_day(model, b.end)} belongs to the dates "
                       f"{abs(b.offset)} day(s) {later}",
            "evidence": {"mean_gain": round(b.mean, 2), "telling_days_in_favour": round(b.share, 3),
                         "t": round(b.t, 1),
                         "weather": "moved with the load" if b.weather_moved else "stayed at its labels"}}


def describe_swap(model: _CalendarModel, a: Block, b: Block) -> dict[str, Any]:
    """The report entry of two swapped blocks."""
    return {"from": _day(model, a.start), "to": _day(model, a.end),
            "swapped_with": [_day(model, b.start), _day(model, b.end)],
            "days": (a.end - a.start + 1) + (b.end - b.start + 1), "offset_days": a.offset,
            "evidence": {"mean_gain": round((a.gain + b.gain) / max(1, (a.end - a.start + 1) + (b.end - b.start + 1)), 2),
                         "telling_days_in_favour": round(min(a.share, b.share), 3), "t": round(min(a.t, b.t), 1),
                         "weather": "moved with the load" if a.weather_moved else "stayed at its labels"}}


def block_dates(model: _CalendarModel, b: Block) -> list[str]:
    return [_day(model, i) for i in range(b.start, b.end + 1)]


def repair_shift(frame: pd.DataFrame, model: _CalendarModel, b: Block, columns: list[str]) -> int:
    """Move a shifted block's ``columns`` to the dates they belong to, in place.

    The days whose own data the file never held (the first ``k`` of a block shifted
    forward, the last ``k`` of one shifted back) are set missing: better a gap that
    the report names than a day of someone else's load.

    Returns:
        The number of days set missing.
    """
    spd = model.days.load.shape[1]
    tgt = _targets(model, b.offset)
    block = np.arange(b.start, b.end + 1)
    movable = block[tgt[block] >= 0]
    src_rows = model.days.starts[movable][:, None] + np.arange(spd)
    dst_rows = model.days.starts[tgt[movable]][:, None] + np.arange(spd)
    lost = np.setdiff1d(block, tgt[movable])
    lost_rows = (model.days.starts[lost][:, None] + np.arange(spd)).ravel()
    for col in columns:
        x = frame[col].to_numpy(dtype=float).copy()
        y = x.copy()
        y[dst_rows] = x[src_rows]
        y[lost_rows] = np.nan
        frame[col] = y
    return int(len(lost))


def repair_swap(frame: pd.DataFrame, model: _CalendarModel, a: Block, columns: list[str]) -> None:
    """Exchange the two blocks of a swap back, in place (nothing is lost)."""
    spd = model.days.load.shape[1]
    tgt = _targets(model, a.offset)
    block = np.arange(a.start, a.end + 1)
    movable = block[tgt[block] >= 0]
    ra = model.days.starts[movable][:, None] + np.arange(spd)
    rb = model.days.starts[tgt[movable]][:, None] + np.arange(spd)
    for col in columns:
        x = frame[col].to_numpy(dtype=float).copy()
        x[ra], x[rb] = x[rb], x[ra].copy()
        frame[col] = x
