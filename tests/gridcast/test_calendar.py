"""Day types on known dates: regional holidays, bridge days, Christmas, clock changes."""

from __future__ import annotations

import holidays
import numpy as np
import pandas as pd
import pytest

from gridcast.calendar import DAY_TYPES, POPULATION_SHARES, day_numbers, day_types, holiday_flags
from gridcast.features import calendar_features


def _days(country: str | None, tz: str | None, *dates: str) -> dict[str, np.ndarray]:
    return day_types(day_numbers(pd.DatetimeIndex(list(dates))), country=country, tz=tz)


def _by_local_day(cal: pd.DataFrame, tz: str, column: str) -> pd.Series:
    """One value per local date; fails if the hours of one local day disagree."""
    local = cal[column].groupby(cal.index.tz_convert(tz).date)
    assert (local.nunique() == 1).all(), "a day type must hold for the whole local day"
    return local.first()


def test_spain_holy_thursday_is_regional_good_friday_national():
    d = _days("ES", "Europe/Madrid", "2018-03-29", "2018-03-30")
    assert d["holiday"].tolist() == [0.0, 1.0]
    # not observed in Catalonia, Valencia and Cantabria: their population share is missing
    pop = POPULATION_SHARES["ES"]
    expected = 1 - (pop["CT"] + pop["VC"] + pop["CB"]) / sum(pop.values())
    assert d["holiday_share"][0] == pytest.approx(expected)
    assert 0.6 < d["holiday_share"][0] < 0.8
    assert d["holiday_share"][1] == 1.0


@pytest.mark.parametrize(("region", "observed"), [("ES-MD", 1.0), ("ES-CT", 0.0)], ids=["madrid", "catalonia"])
def test_a_configured_subdivision_uses_its_own_holidays(region, observed):
    d = _days(region, "Europe/Madrid", "2018-03-29", "2018-04-02")
    assert d["holiday"][0] == observed and d["holiday_share"][0] == observed
    # Easter Monday: Catalonia's holiday, a working day in Madrid
    assert d["holiday"][1] == 1.0 - observed


def test_melbourne_cup_day_victoria_and_australia():
    vic = _days("AU-VIC", "Australia/Melbourne", "2018-11-05", "2018-11-06", "2018-11-07")
    assert vic["holiday"].tolist() == [0.0, 1.0, 0.0]
    assert vic["holiday_eve"].tolist() == [1.0, 0.0, 0.0]
    assert vic["holiday_after"].tolist() == [0.0, 0.0, 1.0]
    assert vic["bridge"].tolist() == [1.0, 0.0, 0.0]  # the Monday between Sunday and the Cup
    whole = _days("AU", "Australia/Melbourne", "2018-11-06")
    pop = POPULATION_SHARES["AU"]
    assert whole["holiday"][0] == 0.0
    assert whole["holiday_share"][0] == pytest.approx(pop["VIC"] / sum(pop.values()))


def test_equal_weights_for_a_country_without_population_shares():
    assert "CH" not in POPULATION_SHARES
    day = pd.Timestamp("2018-01-02")  # Berchtoldstag: some cantons only
    subdivs = [s for s in holidays.CH.subdivisions if s.isalpha() and s.isupper() and len(s) <= 3]
    observed = [day in holidays.country_holidays("CH", subdiv=s, years=[2018]) for s in subdivs]
    assert 0 < sum(observed) < len(subdivs)
    d = _days("CH", "Europe/Zurich", "2018-01-02")
    assert d["holiday_share"][0] == pytest.approx(sum(observed) / len(subdivs))


def test_bridge_days_in_spain_2018():
    d = _days("ES", "Europe/Madrid", "2018-11-02", "2018-12-07", "2018-04-30", "2018-11-09", "2018-11-03")
    # Friday after All Saints (Thu), Friday after Constitution Day (Thu), Monday before
    # Labour Day (Tue); an ordinary Friday; a Saturday is never a bridge
    assert d["bridge"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_bridges_are_working_days_and_shares_bounded():
    idx = pd.date_range("2015-01-01", "2019-12-31", freq="D")
    d = day_types(day_numbers(idx), country="ES", tz="Europe/Madrid")
    for name in DAY_TYPES:
        assert ((d[name] >= 0) & (d[name] <= 1)).all(), name
    bridge = d["bridge"] > 0
    assert bridge.sum() >= 15
    assert not (bridge & (idx.day_of_week.to_numpy() >= 5)).any()
    assert not (bridge & (d["holiday"] > 0)).any()


def test_christmas_period_runs_from_24_december_to_6_january():
    d = _days(None, None, "2017-12-23", "2017-12-24", "2017-12-31", "2018-01-01", "2018-01-06", "2018-01-07")
    assert d["christmas_period"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("tz", "changes"),
    [
        ("Europe/Madrid", ["2018-03-25", "2018-10-28"]),
        ("Australia/Melbourne", ["2018-04-01", "2018-10-07"]),  # southern: ends in April
        ("America/New_York", ["2018-03-11", "2018-11-04"]),
        ("Asia/Ho_Chi_Minh", []),
    ],
    ids=["madrid", "melbourne", "new-york", "no-dst"],
)
def test_clock_change_days_in_both_hemispheres(tz, changes):
    idx = pd.date_range("2018-01-01", "2019-01-01", freq="30min", tz=tz, inclusive="left").tz_convert("UTC")
    cal = calendar_features(idx, country=None, tz=tz)
    flagged = _by_local_day(cal, tz, "clock_change")
    assert [str(d) for d in flagged[flagged > 0].index] == changes


def test_day_types_follow_local_dates():
    # 23:00 UTC on 31 Dec is already New Year's Day in Madrid
    idx = pd.DatetimeIndex(["2018-12-31 22:00", "2018-12-31 23:00"], tz="UTC")
    cal = calendar_features(idx, country="ES", tz="Europe/Madrid")
    assert cal["holiday"].tolist() == [0.0, 1.0]
    assert cal["bridge"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("country", ["VN", "ES", "AU", "US"])
def test_national_flags_match_the_holidays_package(country):
    """holiday, holiday_eve, holiday_after are what they were before the day-type
    tables: national holidays looked up date by date (saved models depend on it)."""
    idx = pd.date_range("2015-01-01", "2019-12-31 23:00", freq="h", tz="UTC")
    tz = {"VN": "Asia/Ho_Chi_Minh", "ES": "Europe/Madrid", "AU": "Australia/Melbourne",
          "US": "America/New_York"}[country]
    cal = calendar_features(idx, country=country, tz=tz)
    dates = idx.tz_convert(tz).normalize().tz_localize(None)
    for column, shift in (("holiday", 0), ("holiday_eve", 1), ("holiday_after", -1)):
        shifted = dates + pd.Timedelta(days=shift)
        table = holidays.country_holidays(country, years=sorted(set(shifted.year)))
        expected = np.array([d in table for d in shifted.date], dtype=float)
        np.testing.assert_array_equal(cal[column].to_numpy(), expected, err_msg=column)
    np.testing.assert_array_equal(holiday_flags(dates, country), cal["holiday"].to_numpy())


def test_no_country_means_no_holidays():
    d = _days(None, "Europe/Madrid", "2018-12-25", "2018-12-24")
    assert d["holiday"].tolist() == [0.0, 0.0] and d["holiday_share"].tolist() == [0.0, 0.0]
    assert d["bridge"].tolist() == [0.0, 0.0]
    assert d["christmas_period"].tolist() == [1.0, 1.0]
