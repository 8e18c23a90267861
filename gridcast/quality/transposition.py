"""The day/month transposition: ``dd.mm`` dates read as ``mm.dd``, found from the data alone.

Owns the ``date_transposition`` check of :mod:`gridcast.quality.checks`.

A pair of local dates (y-m-d, y-d-m), both days <= 12, is transposed when the load
labelled with each date fits the *other* date's calendar (day of week, holiday,
season) and weather better than its own. The calendar model
(:mod:`gridcast.quality.calendar_model`) is fitted only on days > 12, which a
transposition can never touch, so it is clean whatever the file did.

Why a year-level test: a transposition comes from how a file was parsed, so it hits
every pair of the dates it covers. One pair on its own is often undecidable (two
Wednesdays a month apart look alike), but the 60-odd pairs of a year, taken together,
are not. Per year, each pair's evidence is the drop in cost when swapped (labelled
minus swapped, in typical-day units, clipped so that a holiday cannot decide alone);
the year is transposed when their mean is far above zero (a one-sample t statistic >
``SYSTEMATIC_T``) and most pairs agree. On correctly labelled data the same statistic
is far *below* zero (the labelled dates fit better, in every grid measured), so the
test needs no tuning per grid, climate or resolution.

Whether the weather moved with the load is also decided from the data, not from where
the columns came from: a load file with its own temperature column may have had only
its dates misread for the load (or the weather may sit in the same file, misread
too). Both hypotheses are scored and the better one is kept and reported; a weather
file separate from the load file cannot have moved with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridcast.quality.calendar_model import CALENDAR_MARGIN, CALENDAR_RATIO, _CalendarModel
from gridcast.quality.report import _num

#: a year whose pairs favour the swap with a t statistic above this, and in which at
#: least SYSTEMATIC_SHARE of them favour it, is transposed as a whole (a file read
#: month-first) and all its pairs are re-labelled. Measured: correctly labelled years
#: score below -9, transposed ones above +15 (synthetic grids and Victoria).
SYSTEMATIC_T = 4.0
SYSTEMATIC_SHARE = 0.6
SYSTEMATIC_MIN_PAIRS = 5
#: a pair's evidence is clipped to this many typical days' cost (one holiday cannot decide)
EVIDENCE_CLIP = 10.0
#: individually flagged pairs count only when a year holds at least this many
CLUSTER_MIN_PAIRS = 3
#: names of the weather hypotheses
STAYED, MOVED = "stayed at its labels", "moved with the load"


def candidate_pairs(dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b) of each (y-m-d, y-d-m) pair with m < d <= 12 present in ``dates``."""
    where = {d: i for i, d in enumerate(dates)}
    pairs = [
        (i, where[other])
        for i, d in enumerate(dates)
        if d.day <= 12 and d.month < d.day
        and (other := pd.Timestamp(year=d.year, month=d.day, day=d.month)) in where
    ]
    if not pairs:
        return np.array([], dtype=int), np.array([], dtype=int)
    a, b = np.array(pairs).T
    return a, b


def _t_stat(x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    sd = float(np.std(x, ddof=1))
    return float(np.mean(x) / (sd / np.sqrt(len(x)))) if sd > 0 else float(np.sign(np.mean(x)) * np.inf)


def _transposed_pairs(model: _CalendarModel, weather_may_move: bool
                      ) -> tuple[list[dict[str, Any]], int, list[str], dict[str, Any]]:
    """Pairs of local dates (y-m-d, y-d-m) whose loads belong to each other's date.

    Two kinds of evidence, because the defect comes in two shapes:

    * **systematic** — a year in which the pairs together favour the swap (see the
      module docstring): all of that year's pairs are flagged, including those whose
      days are too alike, or too incomplete, to tell on their own;
    * **individual** — a partial defect: as labelled, at least one of the two days
      looks unusual; both loads fit the other date's calendar and weather better, the
      pair's cost drops below ``CALENDAR_RATIO`` of the labelled one by more than
      ``CALENDAR_MARGIN`` typical days. Such pairs are flagged only when a year holds
      at least ``CLUSTER_MIN_PAIRS`` of them (a lone pair is reported as a suspect:
      more likely an unlisted holiday next to a Saturday).

    Args:
        model: the fitted calendar model.
        weather_may_move: False when the temperature came from another file than the
            load (it cannot have moved with it); True when it came from the same file
            or nobody knows — then the data decide.

    Returns:
        The flagged pairs, the number of candidate pairs, lone suspect pairs, and the
        evidence (per year: pairs, t statistic, share favouring the swap; the weather
        hypothesis kept).
    """
    days = model.days
    dates = days.dates
    a_all, b_all = candidate_pairs(dates)
    if not len(a_all):
        return [], 0, [], {}
    scored = days.ok[a_all] & days.ok[b_all]
    a, b = a_all[scored], b_all[scored]
    own_a, own_b = model.own[a], model.own[b]
    labelled = own_a + own_b
    years_all = dates[a_all].year.to_numpy()
    years = years_all[scored]
    # Hypothesis "swapped": a's load belongs to b's date. Its weather is b's weather,
    # which sits at b's label unless the weather moved with the load (then at a's).
    hypotheses = {STAYED: (b, a)}
    if weather_may_move and model.knots is not None:
        hypotheses[MOVED] = (a, b)
    scores: dict[str, dict[str, Any]] = {}
    for name, (wa, wb) in hypotheses.items():
        swap_a, swap_b = model.cost(a, b, wa), model.cost(b, a, wb)
        gain = np.clip((labelled - swap_a - swap_b) / model.typical, -EVIDENCE_CLIP, EVIDENCE_CLIP)
        per_year = {int(y): {"pairs": int((years == y).sum()), "t": round(_t_stat(gain[years == y]), 2),
                             "share_favouring_swap": round(float((gain[years == y] > 0).mean()), 3)}
                    for y in np.unique(years)}
        scores[name] = {"swap_a": swap_a, "swap_b": swap_b, "per_year": per_year,
                        "total": float(np.sum(gain))}
    weather = max(scores, key=lambda k: scores[k]["total"])
    chosen = scores[weather]
    swap_a, swap_b = chosen["swap_a"], chosen["swap_b"]
    swapped = swap_a + swap_b
    individual = (
        (swap_a < own_a)
        & (swap_b < own_b)
        & (swapped < CALENDAR_RATIO * labelled)
        & (labelled - swapped > CALENDAR_MARGIN * model.typical)
        & (np.maximum(own_a, own_b) > model.unusual)
    )
    flagged = np.zeros(len(a_all), dtype=bool)
    flagged[np.flatnonzero(scored)[individual]] = True
    evidence = np.full(len(a_all), "individual", dtype=object)
    suspects = []
    systematic_years = []
    for year in np.unique(years_all):
        stats = chosen["per_year"].get(int(year), {"pairs": 0, "t": 0.0, "share_favouring_swap": 0.0})
        if (stats["pairs"] >= SYSTEMATIC_MIN_PAIRS and stats["t"] > SYSTEMATIC_T
                and stats["share_favouring_swap"] >= SYSTEMATIC_SHARE):
            new = (years_all == year) & ~flagged
            evidence[new] = "systematic"
            flagged |= years_all == year
            systematic_years.append(int(year))
        elif 0 < (lone := flagged & (years_all == year)).sum() < CLUSTER_MIN_PAIRS:
            suspects += [f"{dates[i].date()}<->{dates[j].date()}" for i, j in zip(a_all[lone], b_all[lone], strict=True)]
            flagged &= ~lone
    cost_l = np.full(len(a_all), np.nan)
    cost_s = np.full(len(a_all), np.nan)
    cost_l[scored], cost_s[scored] = labelled, swapped
    found = [
        {"date": dates[i].date().isoformat(), "swapped_with": dates[j].date().isoformat(),
         "evidence": evidence[k], "cost_labelled": _num(cost_l[k]), "cost_swapped": _num(cost_s[k]),
         "pos": int(days.starts[i]), "pos_other": int(days.starts[j])}
        for k, (i, j) in enumerate(zip(a_all, b_all, strict=True)) if flagged[k]
    ]
    summary = {"weather": weather if found else None,
               "weather_hypotheses_scored": sorted(scores),
               "systematic_years": systematic_years,
               "by_year": {str(y): s for y, s in chosen["per_year"].items()}}
    return found, int(len(a_all)), suspects, summary
