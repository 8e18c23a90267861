"""The day/month transposition: ``dd.mm`` dates read as ``mm.dd``, found from the data alone.

Owns the ``date_transposition`` check of :mod:`training.data.quality`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training.data.calendar import CALENDAR_MARGIN, CALENDAR_RATIO, _CalendarModel
from training.data.report import _num

#: a year in which this share of the candidate pairs favours the swap is transposed as a
#: whole (a file read month-first), and all its pairs are re-labelled
SYSTEMATIC_SHARE = 0.75
SYSTEMATIC_MIN_PAIRS = 5
#: individually flagged pairs count only when a year holds at least this many
CLUSTER_MIN_PAIRS = 3

def _transposed_pairs(model: _CalendarModel, weather_moves: bool) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Pairs of local dates (y-m-d, y-d-m) whose loads belong to each other's date.

    Two kinds of evidence, because the defect comes in two shapes:

    * **individual** — as labelled, at least one of the two days looks unusual; both
      loads fit the other date's calendar and weather better, the pair's cost drops
      below ``CALENDAR_RATIO`` of the labelled one by more than ``CALENDAR_MARGIN``
      typical days. Such pairs are flagged only when a year holds at least
      ``CLUSTER_MIN_PAIRS`` of them (a lone pair is reported as a suspect);
    * **systematic** — a file whose ``dd.mm`` dates were read month-first transposes
      every such pair. When, in one year, at least ``SYSTEMATIC_SHARE`` of the pairs
      favour the swap (correctly labelled data: a few percent) and some of them are
      individually flagged, all of that year's
      pairs are flagged, including the few whose days are too alike, or too
      incomplete, to tell on their own.

    Args:
        model: the fitted calendar model.
        weather_moves: True when the temperature came from the same file as the load
            (then it moves with the load, and sits at the load's label).

    Returns:
        The flagged pairs, the number of candidate pairs, and lone suspect pairs.
    """
    days = model.days
    dates = days.dates
    where = {d: i for i, d in enumerate(dates)}
    pairs = [
        (i, where[other])
        for i, d in enumerate(dates)
        if d.day <= 12 and d.month < d.day  # each pair once: (y, m, d) with m < d <= 12
        and (other := pd.Timestamp(year=d.year, month=d.day, day=d.month)) in where
    ]
    if not pairs:
        return [], 0, []
    a_all, b_all = np.array(pairs).T
    scored = days.ok[a_all] & days.ok[b_all]
    a, b = a_all[scored], b_all[scored]
    own_a, own_b = model.own[a], model.own[b]
    # Hypothesis "swapped": a's load belongs to b's date. Its weather is b's weather,
    # which sits at b's label unless the weather moved with the load (then at a's).
    swap_a = model.cost(a, b, a if weather_moves else b)
    swap_b = model.cost(b, a, b if weather_moves else a)
    labelled, swapped = own_a + own_b, swap_a + swap_b
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
    years_all = dates[a_all].year.to_numpy()
    years = years_all[scored]
    suspects = []
    for year in np.unique(years_all):
        in_year = years == year
        strong = int((flagged & (years_all == year)).sum())
        if (in_year.sum() >= SYSTEMATIC_MIN_PAIRS and strong >= CLUSTER_MIN_PAIRS
                and (swapped[in_year] < labelled[in_year]).mean() >= SYSTEMATIC_SHARE):
            new = (years_all == year) & ~flagged
            evidence[new] = "systematic"
            flagged |= years_all == year
        elif 0 < (lone := flagged & (years_all == year)).sum() < CLUSTER_MIN_PAIRS:
            # a swap comes from how a file was parsed and hits many dates; a lone pair
            # is more likely two odd days (an unlisted holiday and a Saturday)
            suspects += [f"{dates[i].date()}<->{dates[j].date()}" for i, j in zip(a_all[lone], b_all[lone], strict=True)]
            flagged &= ~lone
    cost_l = np.full(len(a_all), np.nan)
    cost_s = np.full(len(a_all), np.nan)
    cost_l[scored], cost_s[scored] = labelled, swapped
    return [
        {"date": dates[i].date().isoformat(), "swapped_with": dates[j].date().isoformat(),
         "evidence": evidence[k], "cost_labelled": _num(cost_l[k]), "cost_swapped": _num(cost_s[k]),
         "pos": int(days.starts[i]), "pos_other": int(days.starts[j])}
        for k, (i, j) in enumerate(zip(a_all, b_all, strict=True)) if flagged[k]
    ], int(len(a_all)), suspects

