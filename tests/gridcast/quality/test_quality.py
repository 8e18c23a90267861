"""The quality check finds each injected fault, counts it exactly, and cleans without false alarms.

Every rule has a parametrised case that injects only its fault and expects only its
check to fire with the injected count: remove the rule and that case fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rich.table import Table

from gridcast.quality.faults import FAULTS, inject_faults
from gridcast.synthetic import generate
from gridcast.quality.checks import CHECKS, check, render_summary
from gridcast.errors import SchemaError
from gridcast.schema import LOAD, REGION, TEMPERATURE, TIMESTAMP
from gridcast.settings import Settings

#: faults whose count the check must match exactly
EXACT = FAULTS


def _counts(result) -> dict[str, int]:
    return {name: entry["count"] for name, entry in result.report["checks"].items()}


def _fired(result) -> dict[str, int]:
    return {name: n for name, n in _counts(result).items() if n and name not in ("schema", "timezone")}


def _assert_regular_utc(clean: pd.DataFrame, freq: str) -> None:
    for _, part in clean.groupby(REGION):
        idx = pd.DatetimeIndex(part[TIMESTAMP])
        assert str(idx.tz) == "UTC"
        assert idx.is_monotonic_increasing and idx.is_unique
        assert (np.diff(idx.asi8) == pd.Timedelta(freq).value).all()


@pytest.mark.parametrize("fixture", ["year_hourly", "year_halfhourly"], ids=["hourly", "half-hourly"])
def test_clean_data_raises_no_alarm(fixture, request, quality_settings):
    df, meta = request.getfixturevalue(fixture)
    result = check(df, meta, settings=quality_settings)
    assert result.usable and result.reasons == []
    fired = _fired(result)
    assert fired.pop("day_type", 0) <= 2, "at most a couple of odd days in a clean year"
    assert fired == {}
    pd.testing.assert_frame_equal(result.clean, df)


@pytest.mark.parametrize("kind", FAULTS, ids=FAULTS)
def test_each_rule_finds_its_fault(kind, year_hourly, quality_settings):
    df, meta = year_hourly
    bad, bad_meta = inject_faults(df, meta, seed=7, kinds=[kind])
    injected = bad_meta["faults"][kind]["count"]
    assert injected > 0
    result = check(bad, bad_meta, settings=quality_settings)
    fired = _fired(result)
    fired.pop("day_type", None)  # transposed Sundays are also odd day types, by design
    assert fired == {kind: injected}
    _assert_regular_utc(result.clean, "1h")


@pytest.mark.parametrize("fixture, freq", [("year_hourly", "1h"), ("year_halfhourly", "30min")],
                         ids=["hourly", "half-hourly"])
def test_all_faults_reported_with_injected_counts_and_repaired(fixture, freq, request, quality_settings):
    df, meta = request.getfixturevalue(fixture)
    bad, bad_meta = inject_faults(df, meta, seed=3)
    result = check(bad, bad_meta, settings=quality_settings, repair_dates=True)
    counts = _counts(result)
    for kind in EXACT:
        assert counts[kind] == bad_meta["faults"][kind]["count"], kind
    assert result.report["checks"]["gaps"]["longest_gap_steps"] == bad_meta["faults"]["gaps"]["longest_gap_steps"]
    assert result.usable
    assert result.report["freq"] == freq
    _assert_regular_utc(result.clean, freq)
    # the cleaned table is the original grid, and off only where values had to go
    assert result.clean[TIMESTAMP].equals(df[TIMESTAMP])
    load_err = np.abs(result.clean[LOAD] / df[LOAD] - 1)
    assert int((load_err > 0.01).sum()) <= 20
    temp = result.clean[TEMPERATURE]
    assert int(temp.isna().sum()) == bad_meta["faults"]["gaps"]["longest_gap_steps"]  # the long gap stays open
    np.testing.assert_allclose(temp[temp.notna()], df[TEMPERATURE][temp.notna()], atol=0.5)


def test_repair_restores_transposed_dates(year_halfhourly, quality_settings):
    df, meta = year_halfhourly
    bad, bad_meta = inject_faults(df, meta, seed=1, kinds=["date_transposition"])
    found = check(bad, bad_meta, settings=quality_settings)
    assert sorted(found.report["checks"]["date_transposition"]["dates"]) == bad_meta["faults"]["date_transposition"]["dates"]
    assert not found.clean[LOAD].equals(df[LOAD]), "without --repair-dates nothing moves"
    repaired = check(bad, bad_meta, settings=quality_settings, repair_dates=True)
    pd.testing.assert_frame_equal(repaired.clean, df)
    assert repaired.meta["date_repair"]["columns"] == [LOAD]
    assert repaired.meta["sources"] == bad_meta["sources"]


def test_partial_transposition_found_pair_by_pair(year_hourly, quality_settings):
    """Half a year swapped: not systematic, so each pair must stand on its own evidence."""
    df, meta = year_hourly
    bad, bad_meta = inject_faults(df, meta, seed=2, kinds=["date_transposition"], transposition_days=183)
    injected = set(bad_meta["faults"]["date_transposition"]["dates"])
    result = check(bad, bad_meta, settings=quality_settings)
    found = set(result.report["checks"]["date_transposition"].get("dates", []))
    assert found <= injected, f"false alarms: {sorted(found - injected)}"
    assert len(found) >= 0.8 * len(injected)
    assert {e["evidence"] for e in result.report["checks"]["date_transposition"]["examples"]} == {"individual"}


def test_transposition_moves_everything_when_one_file(year_hourly, quality_settings):
    """Load and weather from one file: the weather moved too, and is moved back too."""
    df, meta = year_hourly
    df = df.drop(columns=["humidity_pct"])
    bad, bad_meta = inject_faults(df, {**meta, "sources": None}, seed=1, kinds=["date_transposition"])
    local = df[TIMESTAMP].dt.tz_convert(meta["timezone"])
    bad = bad.assign(**{TEMPERATURE: _swap_days(df[TEMPERATURE], local, bad_meta["faults"]["date_transposition"]["dates"])})
    result = check(bad, {**bad_meta, "sources": {}}, settings=quality_settings, repair_dates=True)
    assert result.report["checks"]["date_transposition"]["count"] == bad_meta["faults"]["date_transposition"]["count"]
    pd.testing.assert_frame_equal(result.clean, df)


def _swap_days(values: pd.Series, local: pd.Series, dates: list[str]) -> np.ndarray:
    out = values.to_numpy().copy()
    day = local.dt.strftime("%Y-%m-%d").to_numpy()
    for d in dates:
        y, m, dd = d.split("-")
        if int(m) < int(dd):
            a, b = day == d, day == f"{y}-{dd}-{m}"
            out[a], out[b] = values.to_numpy()[b], values.to_numpy()[a]
    return out


@pytest.mark.parametrize("swap", ["sunday_as_workday", "workday_as_sunday"])
def test_day_type_flags_a_day_behaving_like_another(swap, year_hourly, quality_settings):
    df, meta = year_hourly
    local = df[TIMESTAMP].dt.tz_convert(meta["timezone"]).dt.strftime("%Y-%m-%d").to_numpy()
    # Sunday 2023-08-20 and Wednesday 2023-08-16 (days > 12: no transposition confusion)
    target, donor = ("2023-08-20", "2023-08-16") if swap == "sunday_as_workday" else ("2023-08-16", "2023-08-20")
    load = df[LOAD].to_numpy().copy()
    load[local == target] = df[LOAD].to_numpy()[local == donor]
    result = check(df.assign(**{LOAD: load}), meta, settings=quality_settings)
    day_type = result.report["checks"]["day_type"]
    assert target in day_type.get("dates", [])
    assert day_type["count"] <= 3
    assert result.report["checks"]["date_transposition"]["count"] == 0


def test_conflicting_duplicates_resolved_by_median(quality_settings, year_hourly):
    df, meta = year_hourly
    row = df.iloc[[500]].copy()
    row[LOAD] = row[LOAD] + 100.0
    result = check(pd.concat([df, row]), meta, settings=quality_settings)
    assert result.report["checks"]["duplicates_conflicting"]["count"] == 1
    assert result.clean[LOAD].iloc[500] == pytest.approx(df[LOAD].iloc[500] + 50.0)


def test_implausible_high_temperatures_are_not_converted(year_hourly, quality_settings):
    df, meta = year_hourly
    temp = df[TEMPERATURE].to_numpy().copy()
    temp[3000:3010] = 999.0  # > 200 but not a Kelvin temperature on Earth
    result = check(df.assign(**{TEMPERATURE: temp}), meta, settings=quality_settings)
    entry = result.report["checks"]["temperature_unit"]
    assert entry["count"] == 10 and entry["set_missing"] == 10
    # interpolation does not bridge a 10-step hole
    assert result.clean[TEMPERATURE].iloc[3000:3010].isna().all()


def test_long_gaps_stay_missing_short_ones_are_interpolated(year_hourly, quality_settings):
    df, meta = year_hourly
    drop = list(range(1000, 1002)) + list(range(2000, 2010))
    result = check(df.drop(index=drop), meta, settings=quality_settings)
    gaps = result.report["checks"]["gaps"]
    assert (gaps["count"], gaps["longest_gap_steps"], gaps["interpolated"], gaps["left_missing"]) == (12, 10, 2, 10)
    assert result.clean[LOAD].iloc[2000:2010].isna().all()
    assert result.clean[LOAD].iloc[1000:1002].notna().all()


def test_too_short_is_not_usable(year_hourly):
    df, meta = year_hourly
    result = check(df.iloc[: 24 * 5], meta, settings=Settings(_env_file=None, min_history_days=14))
    assert not result.usable
    assert "clean days" in result.reasons[0]
    assert result.report["checks"]["date_transposition"]["action"].startswith("skipped")


def test_too_much_missing_is_not_usable(year_hourly):
    df, meta = year_hourly
    load = df[LOAD].to_numpy().copy()
    load[: len(load) // 2] = np.nan
    result = check(df.assign(**{LOAD: load}), meta, settings=Settings(_env_file=None, max_missing_fraction=0.2))
    assert not result.usable
    assert any("missing" in r for r in result.reasons)


def test_naive_timestamps_are_localised_with_meta_timezone(year_hourly, quality_settings):
    df, meta = year_hourly
    part = df.iloc[: 24 * 20]
    naive = part.assign(**{TIMESTAMP: part[TIMESTAMP].dt.tz_convert(meta["timezone"]).dt.tz_localize(None)})
    result = check(naive, meta, settings=quality_settings)
    pd.testing.assert_frame_equal(result.clean, part.reset_index(drop=True))
    with pytest.raises(SchemaError, match="time zone"):
        check(naive, {}, settings=quality_settings)


def test_missing_column_is_a_schema_error(year_hourly, quality_settings):
    df, meta = year_hourly
    with pytest.raises(SchemaError, match="load_mw"):
        check(df.drop(columns=[LOAD]), meta, settings=quality_settings)


def test_render_summary_has_a_row_per_check(year_hourly, quality_settings):
    df, meta = year_hourly
    table = render_summary(check(df.iloc[: 24 * 20], meta, settings=quality_settings).report)
    assert isinstance(table, Table)
    assert table.row_count == len(CHECKS)


def test_whole_table_in_local_wall_time_is_relabelled(quality_settings):
    """Labelled in Madrid wall time: a missing hour each spring, a repeated one each autumn."""
    df, meta = generate(days=260, regions=1, seed=5, country="ES", start="2023-03-01")
    wall = df.assign(**{TIMESTAMP: df[TIMESTAMP].dt.tz_convert(meta["timezone"]).dt.tz_localize(None).dt.tz_localize("UTC")})
    result = check(wall, meta, settings=quality_settings)
    entry = result.report["checks"]["clock_change"]
    assert entry["count"] == len(df) and entry["whole_table_in_local_time"]
    assert [e["note"].split(":")[0] for e in entry["examples"]] == ["spring forward", "fall back"]
    pd.testing.assert_frame_equal(result.clean, df)
