"""Schema round trip and the no-look-ahead guarantee of the features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridcast.errors import SchemaError
from gridcast.features import build_features, calendar_features, origin_features
from gridcast.schema import infer_freq, read_table, steps_per_day, write_table


def test_parquet_round_trip_keeps_metadata_and_freq(tmp_path, synthetic):
    path = write_table(synthetic, tmp_path / "t.parquet", {"synthetic": True})
    df, meta = read_table(path)
    assert meta["freq"] == "1h" and meta["synthetic"] is True
    assert str(df["timestamp"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(df, synthetic.sort_values(["region", "timestamp"]).reset_index(drop=True))


@pytest.mark.parametrize(("freq", "per_day"), [("1h", 24), ("30min", 48), ("15min", 96)], ids=["hourly", "half-hourly", "quarter"])
def test_freq_inference_ignores_gaps(freq, per_day):
    idx = pd.date_range("2024-03-01", periods=200, freq=freq, tz="UTC").delete([5, 6, 7, 50])
    assert infer_freq(idx) == freq
    assert steps_per_day(freq) == per_day


def test_missing_column_lists_existing(synthetic):
    from gridcast.schema import validate

    with pytest.raises(SchemaError, match="load_mw.*the table has: timestamp, region, temperature_c"):
        validate(synthetic.drop(columns=["load_mw", "humidity_pct"]))


def test_tet_is_a_holiday_in_local_time():
    idx = pd.date_range("2024-02-09 16:00", periods=2, freq="h", tz="UTC")  # 23:00, 00:00 local
    cal = calendar_features(idx, country="VN", tz="Asia/Ho_Chi_Minh")
    assert cal["holiday"].tolist() == [1.0, 1.0]  # 9 Feb (eve) and 10 Feb (Tết) are both holidays


def test_no_look_ahead_poisoning_after_origin_changes_nothing(region_history):
    hist = region_history
    origin = hist.index[24 * 30 + 11]
    targets = pd.date_range(origin + pd.Timedelta("1h"), periods=48, freq="h")
    clean = build_features(hist, targets, origin=origin, country="VN", tz="Asia/Ho_Chi_Minh")
    poisoned = hist.copy()
    poisoned.loc[poisoned.index > origin, "load_mw"] = 1e12
    dirty = build_features(poisoned, targets, origin=origin, country="VN", tz="Asia/Ho_Chi_Minh")
    pd.testing.assert_frame_equal(clean, dirty)
    # the poisoned rows exist and would have been reached without the cut
    assert (poisoned["load_mw"] == 1e12).sum() > 0


def test_lag_reaches_back_to_known_values(region_history):
    y = region_history["load_mw"]
    origin = y.index[24 * 20]
    targets = pd.DatetimeIndex([origin + pd.Timedelta("1h"), origin + pd.Timedelta("30h")])
    f = origin_features(y, targets, origin=origin)
    assert f["lag_1D"].iloc[0] == y[targets[0] - pd.Timedelta("1D")]
    assert f["lag_1D"].iloc[1] == y[targets[1] - pd.Timedelta("2D")]  # 1 day back is after the origin
    assert np.isfinite(f["roll_mean_7D"]).all()


def test_readme_settings_table_is_current():
    """README's settings table is generated from Settings; a new field must reach it."""
    from pathlib import Path

    from training.settings_cli import BEGIN, END, markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == markdown_table(), "run: gridcast settings --update-readme README.md"


def test_weather_features_add_apparent_temperature_when_humidity_is_there(region_history):
    from gridcast.features import weather_features

    assert "humidity_pct" in region_history
    terms = weather_features(region_history)
    t, rh = region_history["temperature_c"], region_history["humidity_pct"]
    # Steadman / BoM, written out here: AT = T + 0.33 e - 0.70 ws - 4
    e = rh / 100 * 6.105 * np.exp(17.27 * t / (237.7 + t))
    ws = region_history["wind_speed_ms"] if "wind_speed_ms" in region_history else 0.0
    np.testing.assert_allclose(terms["apparent_temperature_c"], t + 0.33 * e - 0.70 * ws - 4.0)
    still = weather_features(pd.DataFrame({"temperature_c": [30.0, 30.0], "humidity_pct": [20.0, 90.0]}))
    assert still["apparent_temperature_c"].iloc[1] > 30.0 > still["apparent_temperature_c"].iloc[0]
    windy = weather_features(pd.DataFrame({"temperature_c": [30.0], "humidity_pct": [90.0], "wind_speed_ms": [10.0]}))
    assert windy["apparent_temperature_c"].iloc[0] < still["apparent_temperature_c"].iloc[1]
    assert "apparent_temperature_c" not in weather_features(region_history[["temperature_c"]])
