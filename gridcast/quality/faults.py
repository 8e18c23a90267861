"""Inject a known set of data faults into a clean table, and record exactly what was done.

Real load files arrive with duplicates, gaps, spikes, stuck meters, Kelvin stretches,
local-time labels and day/month-swapped dates. The quality check
(:mod:`gridcast.quality.checks`) must find each of them; this module makes a table whose
faults are known to the row, so the tests (and ``gridcast data sample --faults``) can
compare what was found with what was put in.

Placement keeps the faults apart so that each one can be counted exactly: they go into
the first region only, every fault but the date transposition on local days whose
day-of-month is above 12 (those can never be part of a day/month swap), on different
days where room allows, away from the first and last week.

``meta["faults"]`` maps each check name (the same names as the quality report) to
``{"count": int, ...details}``; ``count`` is what the check should report:

==========================  ====================================================
``duplicates_exact``        extra identical rows
``duplicates_conflicting``  timestamps with a second, different row (load +5 %)
``gaps``                    missing steps (rows removed: one long gap, singles)
``spikes``                  single loads multiplied by 1.6 or 0.45
``flatlines``               runs of a repeated load (``steps`` gives the length)
``temperature_unit``        temperatures written in Kelvin (one day's stretch)
``clock_change``            rows labelled in local wall time instead of UTC
``date_transposition``      local dates holding the day/month-swapped date's data
                            (every pair of the first calendar year; none in tables
                            shorter than 180 days)
``bounds``                  values outside physical bounds (negative load, 75 °C)
``date_shift``              (opt-in) a block of days whose load belongs ``k`` days
                            away (``dates``, ``offset_days``; ``lost_dates``: the
                            days whose own load the faulty file no longer holds)
``date_swap``               (opt-in) two blocks of days exchanged (``dates``,
                            ``offset_days``)
==========================  ====================================================

The two opt-in calendar faults are not in the default set (:data:`FAULTS`, what
``data sample --faults`` injects) but in :data:`ALL_FAULTS`; ask for them by name.

Example:
    >>> from gridcast.synthetic import generate
    >>> df, meta = generate(days=200, seed=1)
    >>> bad, meta = inject_faults(df, meta, seed=1)
    >>> meta["faults"]["duplicates_exact"]["count"], int(bad.duplicated().sum())
    (5, 5)
    >>> meta["faults"]["date_transposition"]["dates"][:3]
    ['2023-01-02', '2023-01-03', '2023-01-04']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridcast.quality.calendar_model import CALENDAR_MIN_TRAIN_DAYS
from gridcast.schema import LOAD, REFERENCE, REGION, TEMPERATURE, TIMESTAMP, infer_freq, steps_per_day, validate

FAULTS = (
    "duplicates_exact",
    "duplicates_conflicting",
    "gaps",
    "spikes",
    "flatlines",
    "temperature_unit",
    "clock_change",
    "date_transposition",
    "bounds",
)
#: calendar faults injected only when asked for by name
CALENDAR_FAULTS = ("date_shift", "date_swap")
ALL_FAULTS = FAULTS + CALENDAR_FAULTS
#: how many of each point fault
N_EXACT, N_CONFLICTING, N_SINGLE_GAPS, N_SPIKES = 5, 4, 3, 4
LONG_GAP_STEPS = 8
#: steps kept free around each fault
FAULT_MARGIN = 2
FLATLINE_STEPS = 10
#: a table shorter than this gets no date transposition (too short to see one)
MIN_TRANSPOSITION_SPAN_DAYS = 180
#: days kept free of faults at each end (spike and profile references need neighbours)
EDGE_DAYS = 8
#: the load file's columns (the ones a day/month swap moves); the rest is weather
LOAD_FILE_COLUMNS = (LOAD, REFERENCE)


def inject_faults(
    df: pd.DataFrame,
    meta: dict[str, Any] | None,
    *,
    seed: int = 0,
    freq: str | None = None,
    kinds: tuple[str, ...] | list[str] | None = None,
    transposition_days: int | None = None,
    moved_columns: list[str] | tuple[str, ...] | None = None,
    shift_days: int = 1,
    shift_block_days: int = 30,
    swap_offset_days: int | None = None,
    swap_block_days: int = 7,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return a faulty copy of a clean canonical table and what was injected.

    Args:
        df: a clean table on a regular grid (e.g. from :func:`gridcast.synthetic.generate`).
        meta: its metadata (``timezone`` places local days; ``sources`` is split into a
            load file and a weather file when all columns share one source, because the
            date transposition moves only the load file's columns).
        seed: random seed for positions and factors.
        freq: the table's step; inferred when not given.
        kinds: which faults (names in :data:`ALL_FAULTS`); :data:`FAULTS` by default.
        transposition_days: None (default) swaps every day/month pair of the table's
            first calendar year — like the real defect, a file whose ``dd.mm`` dates
            were read ``mm.dd``; a number swaps only the pairs whose both dates fall in
            that many first days (a partial, non-systematic defect).
        moved_columns: the columns the calendar faults move (default: the load file's,
            from ``meta["sources"]``) — e.g. only ``load_mw`` while the metadata says
            the temperature came from the same file, as when one column of a file was
            re-dated by hand.
        shift_days / shift_block_days: ``date_shift``: the block's offset ``k`` (its
            labelled day ``d`` holds the load of ``d + k``) and length.
        swap_offset_days / swap_block_days: ``date_swap``: how far apart the two blocks
            start (default: seeded, 10..30 days, not whole weeks) and their length.

    Returns:
        The faulty table (canonical columns; rows sorted by region and timestamp, file
        order kept among equal timestamps) and ``meta`` with ``faults``.

    Raises:
        ValueError: an unknown fault name.
    """
    kinds = tuple(FAULTS if kinds is None else kinds)
    unknown = sorted(set(kinds) - set(ALL_FAULTS))
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(ALL_FAULTS)}")
    meta = dict(meta or {})
    df = validate(df)
    freq = freq or meta.get("freq") or infer_freq(df[TIMESTAMP])
    step = pd.Timedelta(freq)
    spd = steps_per_day(freq)
    tz = meta.get("timezone") or "UTC"
    rng = np.random.default_rng(seed)
    region = sorted(df[REGION].unique())[0]
    mask = (df[REGION] == region).to_numpy()
    rest = df[~mask]
    part = df[mask].reset_index(drop=True)
    faults: dict[str, dict[str, Any]] = {name: {"count": 0} for name in kinds}

    local = pd.DatetimeIndex(part[TIMESTAMP]).tz_convert(tz)
    dates = local.normalize().tz_localize(None)
    day_start = _day_starts(dates, spd)
    slots = _slots(day_start, rng)

    # -- calendar faults first: they move whole days of the load file's columns
    sources = dict(meta.get("sources") or {})
    if any(k in kinds for k in ("date_transposition", *CALENDAR_FAULTS)):
        moved = [c for c in part.columns if c in LOAD_FILE_COLUMNS]
        if sources and len(set(sources.values())) == 1 and moved_columns is None:
            # one synthetic source: say the load columns came from a load file and the
            # weather from a correctly labelled weather file, as in the real defect
            base = next(iter(sources.values()))
            sources = {c: f"{base}:load" if c in LOAD_FILE_COLUMNS else f"{base}:weather" for c in sources}
            meta["sources"] = sources
        elif sources.get(LOAD):
            moved = [c for c in part.columns if sources.get(c) == sources[LOAD]]
        if moved_columns is not None:
            moved = [c for c in part.columns if c in moved_columns]
    if "date_transposition" in kinds:
        part, faults["date_transposition"] = _transpose(part, dates, day_start, spd, moved, transposition_days)
    if "date_shift" in kinds:
        part, faults["date_shift"] = _shift_block(part, day_start, spd, moved, shift_days, shift_block_days, rng)
    if "date_swap" in kinds:
        k = swap_offset_days or int(rng.choice([d for d in range(10, 31) if d % 7]))
        part, faults["date_swap"] = _swap_blocks(part, day_start, spd, moved, k, swap_block_days, rng,
                                                 avoid=faults.get("date_shift", {}).get("dates", []))

    clock_slot = slots.pop("clock", None)
    points = slots["points"]
    busy = np.zeros(len(part), dtype=bool)
    if clock_slot is not None:
        busy[int(day_start[clock_slot]): int(day_start[clock_slot]) + 4 * spd] = True
    cursor = iter(range(len(points) * 4))

    def next_pos(span: int = 1, inner: bool = False) -> int:
        """A free run of ``span`` steps inside one day, a different day each call while days last.

        Faults keep ``FAULT_MARGIN`` steps apart so each is seen, and counted, on its own.
        """
        for i in cursor:
            start = int(day_start[points[i % len(points)]])
            offsets = rng.permutation(spd - span + 1)
            for offset in offsets[(offsets >= 2) & (offsets <= spd - span - 2)] if inner else offsets:
                p = start + int(offset)
                lo, hi = max(p - FAULT_MARGIN, 0), p + span + FAULT_MARGIN
                if not busy[lo:hi].any():
                    busy[lo:hi] = True
                    return p
        raise ValueError("table too short to place every fault apart")

    load = part[LOAD].to_numpy(dtype=float).copy()
    temp = part[TEMPERATURE].to_numpy(dtype=float).copy()
    ts = part[TIMESTAMP]

    if "spikes" in kinds:
        # inside a local day, not on its first or last steps: next to the start of a
        # holiday the neighbouring step's residual jumps too, and counts would blur
        pos = [next_pos(span=1, inner=True) for _ in range(N_SPIKES)]
        factors = rng.choice([1.6, 0.45], size=N_SPIKES)
        load[pos] = load[pos] * factors
        faults["spikes"] = {"count": N_SPIKES, "timestamps": [ts[p].isoformat() for p in pos],
                            "factors": factors.tolist()}
    if "flatlines" in kinds:
        p = next_pos(FLATLINE_STEPS)
        load[p:p + FLATLINE_STEPS] = load[p]
        faults["flatlines"] = {"count": 1, "steps": FLATLINE_STEPS, "from": ts[p].isoformat()}
    if "temperature_unit" in kinds:
        p = next_pos(spd)  # a whole local day: the only free span of that length starts at midnight
        temp[p:p + spd] += 273.15
        faults["temperature_unit"] = {"count": spd, "from": ts[p].isoformat(), "to": ts[p + spd - 1].isoformat()}
    if "bounds" in kinds:
        p1, p2 = next_pos(), next_pos()
        load[p1] = -abs(load[p1])
        temp[p2] = 75.0
        items = [{"timestamp": ts[p1].isoformat(), "column": LOAD}, {"timestamp": ts[p2].isoformat(), "column": TEMPERATURE}]
        if "humidity_pct" in part:
            p3 = next_pos()
            hum = part["humidity_pct"].to_numpy(dtype=float).copy()
            hum[p3] = 140.0
            part["humidity_pct"] = hum
            items.append({"timestamp": ts[p3].isoformat(), "column": "humidity_pct"})
        faults["bounds"] = {"count": len(items), "values": items}
    part[LOAD] = load
    part[TEMPERATURE] = temp

    # -- row-level faults: build the list of rows, then shift / drop / copy
    order = np.arange(len(part))
    drop = np.zeros(len(part), dtype=bool)
    new_ts = part[TIMESTAMP].copy()
    if "clock_change" in kinds and clock_slot is not None:
        p = int(day_start[clock_slot])
        length = 2 * spd
        offset = local[p].utcoffset()
        k = int(abs(offset) / step) if offset else 0
        if k:
            new_ts.iloc[p:p + length] = part[TIMESTAMP].iloc[p:p + length] + k * step
            faults["clock_change"] = {"count": length, "from": ts[p].isoformat(),
                                      "to": ts[p + length - 1].isoformat(), "shift": str(k * step)}
        else:
            faults["clock_change"] = {"count": 0, "note": f"{tz} is UTC: local time cannot be mislabelled"}
    if "gaps" in kinds:
        p = next_pos(LONG_GAP_STEPS)
        drop[p:p + LONG_GAP_STEPS] = True
        singles = [next_pos() for _ in range(N_SINGLE_GAPS)]
        drop[singles] = True
        faults["gaps"] = {"count": LONG_GAP_STEPS + N_SINGLE_GAPS, "longest_gap_steps": LONG_GAP_STEPS,
                          "long_gap_from": ts[p].isoformat(), "single": [ts[s].isoformat() for s in singles]}
    part = part.assign(**{TIMESTAMP: new_ts})
    extra = []
    if "duplicates_exact" in kinds:
        pos = [next_pos() for _ in range(N_EXACT)]
        extra.append(part.iloc[pos])
        faults["duplicates_exact"] = {"count": N_EXACT, "timestamps": [ts[p].isoformat() for p in pos]}
    if "duplicates_conflicting" in kinds:
        pos = [next_pos() for _ in range(N_CONFLICTING)]
        copy = part.iloc[pos].copy()
        copy[LOAD] = copy[LOAD] * 1.05
        extra.append(copy)
        faults["duplicates_conflicting"] = {"count": N_CONFLICTING, "timestamps": [ts[p].isoformat() for p in pos],
                                            "rule": "second row's load is 5 % higher"}
    kept = part[~drop]
    # stable sort keeps file order among equal timestamps: originals before copies,
    # and a clock-shifted stretch (written earlier) before the rows it overlaps
    out = pd.concat([kept.assign(_o=order[~drop]), *[e.assign(_o=e.index.to_numpy()) for e in extra]])
    out = out.sort_values(["_o"], kind="stable").drop(columns="_o")
    out = pd.concat([rest, out], ignore_index=True)
    out = out.sort_values([REGION, TIMESTAMP], kind="stable").reset_index(drop=True)
    meta["faults"] = faults
    meta["faults_region"] = region
    return out, meta


def _day_starts(dates: pd.DatetimeIndex, spd: int) -> pd.Series:
    """First row position of each complete local day (one day's steps), by date."""
    codes, uniques = pd.factorize(dates)
    counts = np.bincount(codes)
    first = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    full = counts[codes[first]] == spd
    return pd.Series(first[full], index=pd.DatetimeIndex(uniques[codes[first[full]]]))


def _slots(day_start: pd.Series, rng: np.random.Generator) -> dict[str, Any]:
    """Days for the faults: a 3-day run for the clock change, then single days, spread out.

    Only days with day-of-month > 12 (never part of a day/month swap) away from both
    ends; consecutive picks at least two days apart.
    """
    days = day_start.index
    inner = days[(days >= days[0] + pd.Timedelta(days=EDGE_DAYS)) & (days <= days[-1] - pd.Timedelta(days=EDGE_DAYS))]
    eligible = [d for d in inner if d.day > 12]
    taken: set[pd.Timestamp] = set()
    out: dict[str, Any] = {}
    have = set(days)
    for d in eligible:
        run = [d + pd.Timedelta(days=i) for i in range(4)]
        if d.day <= 24 and all(r in have and r.day > 12 for r in run):
            out["clock"] = d
            taken |= {d + pd.Timedelta(days=i) for i in range(-2, 6)}
            break
    order = rng.permutation(len(eligible))
    points: list[pd.Timestamp] = []
    for i in order:
        d = eligible[i]
        if all(abs((d - t).days) >= 2 for t in taken):
            points.append(d)
            taken.add(d)
    if not points:
        raise ValueError("table too short to place faults: need local days with day-of-month > 12 away from the ends")
    out["points"] = points
    return out


def _transpose(part: pd.DataFrame, dates: pd.DatetimeIndex, day_start: pd.Series, spd: int,
               columns: list[str], window_days: int | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Swap whole local days (y-m-d ↔ y-d-m, m < d <= 12), moving ``columns``.

    Which pairs: with ``window_days`` None, every pair of the table's first calendar
    year (a file read month-first); else those with both dates in the first
    ``window_days`` days (a partial defect).
    """
    have = day_start.index
    span = (have[-1] - have[0]).days + 1
    if span < MIN_TRANSPOSITION_SPAN_DAYS:
        # the calendar check needs seasons on both sides of a swap to see it
        return part, {"count": 0, "note": f"table too short: {span} days, a visible transposition needs "
                                          f"{MIN_TRANSPOSITION_SPAN_DAYS}"}
    if window_days is None:
        inside = have.year == have[0].year
    else:
        inside = have < dates[0] + pd.Timedelta(days=window_days)
    chosen = set(have[inside])
    pairs = []
    for d in have[inside]:
        if d.day <= 12 and d.month < d.day:
            other = pd.Timestamp(year=d.year, month=d.day, day=d.month)
            if other in chosen:
                pairs.append((d, other))
    if not pairs:
        return part, {"count": 0, "note": "no day/month pair inside the table"}
    checkable = int((have.day > 12).sum())
    if checkable < CALENDAR_MIN_TRAIN_DAYS:
        # the calendar check needs this many days that cannot be swapped to learn from;
        # a defect nobody could see in so short a table would only be noise here
        return part, {"count": 0, "note": f"table too short: {checkable} complete days with day > 12, "
                                          f"the calendar check needs {CALENDAR_MIN_TRAIN_DAYS}"}
    a = np.array([day_start[d] for d, _ in pairs])[:, None] + np.arange(spd)
    b = np.array([day_start[o] for _, o in pairs])[:, None] + np.arange(spd)
    part = part.copy()
    for col in columns:
        x = part[col].to_numpy(dtype=float).copy()
        x[a], x[b] = x[b], x[a].copy()
        part[col] = x
    swapped = sorted([d.date().isoformat() for d, _ in pairs] + [o.date().isoformat() for _, o in pairs])
    return part, {"count": len(swapped), "pairs": len(pairs), "dates": swapped, "columns": columns}


def _block_start(day_start: pd.Series, span: int, rng: np.random.Generator, avoid: set[pd.Timestamp]) -> pd.Timestamp:
    """A seeded first day for ``span`` consecutive complete days, in the table's later half.

    The later half: a default transposition sits in the first calendar year, and the
    two faults are meant to be counted apart.
    """
    have = set(day_start.index)
    days = day_start.index
    lo, hi = len(days) // 2, len(days) - span - EDGE_DAYS
    options = [d for d in days[lo:max(lo, hi)]
               if all((d + pd.Timedelta(days=i)) in have and (d + pd.Timedelta(days=i)) not in avoid
                      for i in range(-1, span + 1))]
    if not options:
        raise ValueError(f"table too short to place a block of {span} days")
    return options[int(rng.integers(len(options)))]


def _move_days(part: pd.DataFrame, day_start: pd.Series, spd: int, columns: list[str],
               dst: list[pd.Timestamp], src: list[pd.Timestamp]) -> pd.DataFrame:
    """Copy whole local days ``src`` → ``dst`` (all from the original values) for ``columns``."""
    a = np.array([day_start[d] for d in dst])[:, None] + np.arange(spd)
    b = np.array([day_start[d] for d in src])[:, None] + np.arange(spd)
    part = part.copy()
    for col in columns:
        x = part[col].to_numpy(dtype=float)
        y = x.copy()
        y[a] = x[b]
        part[col] = y
    return part


def _iso_days(days: list[pd.Timestamp]) -> list[str]:
    return sorted(d.date().isoformat() for d in days)


def _shift_block(part: pd.DataFrame, day_start: pd.Series, spd: int, columns: list[str], k: int,
                 length: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A block of ``length`` days whose labelled day ``d`` holds the load of ``d + k``.

    As when a month's rows were written one row (day) too early: the load of the
    block's first ``k`` days (``k`` > 0) is nowhere in the file any more, and the load
    of the ``k`` days after it appears twice.
    """
    one = pd.Timedelta(days=1)
    start = _block_start(day_start, length + abs(k), rng, set())
    if k < 0:
        start = start - k * one
    block = [start + i * one for i in range(length)]
    part = _move_days(part, day_start, spd, columns, block, [d + k * one for d in block])
    lost = [d for d in block if d - k * one not in block]
    return part, {"count": length, "offset_days": k, "from": block[0].date().isoformat(),
                  "to": block[-1].date().isoformat(), "dates": _iso_days(block),
                  "lost_dates": _iso_days(lost), "columns": columns}


def _swap_blocks(part: pd.DataFrame, day_start: pd.Series, spd: int, columns: list[str], k: int,
                 length: int, rng: np.random.Generator, avoid: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Two blocks of ``length`` days, ``k`` days apart, exchanged (as two weekly files saved under each other's name)."""
    if k < length:
        raise ValueError(f"swapped blocks of {length} days must start at least {length} days apart, not {k}")
    one = pd.Timedelta(days=1)
    start = _block_start(day_start, k + length, rng, {pd.Timestamp(d) for d in avoid})
    a = [start + i * one for i in range(length)]
    b = [d + k * one for d in a]
    part = _move_days(part, day_start, spd, columns, a + b, b + a)
    return part, {"count": 2 * length, "offset_days": k, "from": a[0].date().isoformat(),
                  "to": a[-1].date().isoformat(), "swapped_with": [b[0].date().isoformat(), b[-1].date().isoformat()],
                  "dates": _iso_days(a + b), "columns": columns}
