"""The overview plots draw what the data and the quality report say, and write real PNGs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from gridcast.quality.plots import (
    daily_profile_by_weekday,
    flagged_times,
    load_vs_temperature,
    monthly_boxplots,
    plot_all,
    series_with_flags,
)
from gridcast.synthetic import generate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    df, _ = generate(days=63, regions=2, seed=5, start="2023-01-20")
    return df


def test_series_marks_flagged_examples_and_shades_missing(table):
    one = table[table["region"] == "region-1"].copy()
    one.loc[one.index[100:110], "load_mw"] = np.nan
    ts = one["timestamp"]
    report = {"checks": {
        "spikes": {"count": 2, "examples": [str(ts.iloc[20]), {"timestamp": str(ts.iloc[40]), "region": "region-1"}]},
        "gaps": {"count": 1, "examples": [{"start": str(ts.iloc[100]), "end": str(ts.iloc[109])}]},
        "flatlines": {"count": 0, "examples": []},
        "other_region": {"count": 1, "examples": [{"timestamp": str(ts.iloc[5]), "region": "region-2"}]},
        "odd_shape": {"count": 3, "examples": [42, None, "not a time"]},
    }}

    fig = series_with_flags(one, report)

    ax = fig.axes[0]
    markers = {c.get_label(): c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)}
    assert set(markers) == {"spikes (2 shown)", "gaps (2 shown)"}
    assert len(markers["spikes (2 shown)"]) == 2
    labels = [p.get_label() for p in ax.patches]
    assert labels.count("missing") == 1  # one NaN run, one shaded span


def test_flagged_times_filters_region_and_skips_garbage():
    report = {"checks": {"x": {"count": 2, "examples": [{"date": "2024-01-02", "region": "b"}, {"date": "2024-01-03"}]}}}
    assert flagged_times(report, "a") == {"x": [pd.Timestamp("2024-01-03", tz="UTC")]}
    assert flagged_times(None) == {}
    assert flagged_times({"checks": {"x": "nonsense"}}) == {}


def test_daily_profile_has_weekdays_and_a_lower_sunday(table):
    fig = daily_profile_by_weekday(table, region="region-1", tz="Asia/Ho_Chi_Minh")
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    assert list(lines) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert len(lines["Wed"].get_xdata()) == 24
    # the generator makes Sundays 18 % lower: the plot must show it
    assert np.mean(lines["Sun"].get_ydata()) < 0.9 * np.mean(lines["Wed"].get_ydata())


def test_load_vs_temperature_draws_points_and_binned_mean(table):
    fig = load_vs_temperature(table, region="region-2")
    ax = fig.axes[0]
    part = table[table["region"] == "region-2"]
    assert len(ax.collections[0].get_offsets()) == len(part)
    (mean_line,) = ax.lines
    x = np.asarray(mean_line.get_xdata())
    assert part["temperature_c"].min() - 1 <= x.min() and x.max() <= part["temperature_c"].max() + 1


def test_monthly_boxplots_one_box_per_month_present(table):
    fig = monthly_boxplots(table, region="region-1", tz="Asia/Ho_Chi_Minh")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["Jan", "Feb", "Mar"]


def test_plot_all_writes_four_pngs_per_region(table, tmp_path):
    paths = plot_all(table, None, tmp_path / "plots", meta={"timezone": "Asia/Ho_Chi_Minh"})

    assert [p.name for p in paths[:4]] == ["region-1_series_flags.png", "region-1_daily_profile.png",
                                           "region-1_load_vs_temperature.png", "region-1_monthly_boxplots.png"]
    assert len(paths) == 8
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC
        assert p.stat().st_size > 10_000


def test_figures_are_plain_figures_without_pyplot(table):
    assert isinstance(series_with_flags(table), Figure)


def test_flagged_stretches_are_shaded_in_their_check_colour(table):
    one = table[table["region"] == "region-1"]
    ts = one["timestamp"]
    report = {"checks": {"flatlines": {"count": 1, "examples": [
        {"region": "region-1", "from": str(ts.iloc[30]), "to": str(ts.iloc[40]), "steps": 10}]}}}

    ax = series_with_flags(one, report).axes[0]

    (marks,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert marks.get_label() == "flatlines (2 shown)"
    (span,) = ax.patches
    x0, x1 = span.get_x(), span.get_x() + span.get_width()
    dates = pd.to_datetime([x0, x1], unit="D", utc=True)  # matplotlib date numbers are days since 1970
    assert abs(dates[0] - ts.iloc[30]) < pd.Timedelta("1min") and abs(dates[1] - ts.iloc[40]) < pd.Timedelta("1min")
