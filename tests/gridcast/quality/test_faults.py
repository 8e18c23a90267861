"""inject_faults does what it records: the table really carries each fault, as counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridcast.quality.faults import FAULTS, inject_faults
from gridcast.schema import LOAD, TEMPERATURE, TIMESTAMP, infer_freq


def test_records_every_fault_with_a_count(year_hourly):
    df, meta = year_hourly
    _, out_meta = inject_faults(df, meta, seed=1)
    assert set(out_meta["faults"]) == set(FAULTS)
    assert all(entry["count"] > 0 for entry in out_meta["faults"].values())
    assert "faults" not in meta, "the caller's meta must not be modified"


def test_same_seed_same_faults(year_hourly):
    df, meta = year_hourly
    a, meta_a = inject_faults(df, meta, seed=4)
    b, meta_b = inject_faults(df, meta, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert meta_a["faults"] == meta_b["faults"]


def test_row_faults_match_their_counts(year_hourly):
    df, meta = year_hourly
    bad, out = inject_faults(df, meta, seed=2, kinds=["duplicates_exact", "duplicates_conflicting", "gaps"])
    faults = out["faults"]
    assert int(bad.duplicated().sum()) == faults["duplicates_exact"]["count"]
    conflicting = bad.drop_duplicates().duplicated(subset=[TIMESTAMP], keep="first")
    assert int(conflicting.sum()) == faults["duplicates_conflicting"]["count"]
    grid = pd.date_range(df[TIMESTAMP].min(), df[TIMESTAMP].max(), freq=infer_freq(df[TIMESTAMP]))
    assert int((~grid.isin(bad[TIMESTAMP])).sum()) == faults["gaps"]["count"]


def test_transposition_moves_only_the_load_file(year_hourly):
    df, meta = year_hourly
    bad, out = inject_faults(df, meta, seed=3, kinds=["date_transposition"])
    fault = out["faults"]["date_transposition"]
    assert fault["columns"] == [LOAD]
    assert out["sources"][LOAD] != out["sources"][TEMPERATURE]
    local = bad[TIMESTAMP].dt.tz_convert(meta["timezone"])
    # the rows labelled 2023-03-05 hold the load of 2023-05-03; weather stays put
    labelled = (local.dt.month == 3) & (local.dt.day == 5)
    source = (local.dt.month == 5) & (local.dt.day == 3)
    np.testing.assert_array_equal(bad.loc[labelled, LOAD].to_numpy(), df.loc[source, LOAD].to_numpy())
    np.testing.assert_array_equal(bad[TEMPERATURE].to_numpy(), df[TEMPERATURE].to_numpy())
    assert "2023-03-05" in fault["dates"] and "2023-05-03" in fault["dates"]
    assert all(int(d[8:]) <= 12 for d in fault["dates"])


def test_clock_change_shifts_a_stretch_by_the_utc_offset(year_hourly):
    df, meta = year_hourly
    bad, out = inject_faults(df, meta, seed=5, kinds=["clock_change"])
    fault = out["faults"]["clock_change"]
    assert fault["shift"] == str(pd.Timedelta("7h"))  # Vietnam, UTC+7
    assert len(bad) == len(df)
    assert int(bad.duplicated(subset=[TIMESTAMP]).sum()) == 7


def test_unknown_fault_is_refused(year_hourly):
    df, meta = year_hourly
    with pytest.raises(ValueError, match="unknown fault"):
        inject_faults(df, meta, kinds=["meteor_strike"])
