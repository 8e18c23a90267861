"""Backtest mechanics: origins, the weather a model is told, metrics, the CLI.

Uses the seasonal-naive model (instant) on the seeded synthetic series; the
no-look-ahead property of every model is proven in ``models/test_contract.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training.backtest import BacktestConfig, Origin, future_weather, make_origins, noise_sigma, run_backtest
from training.backtest_report import score
from training.cli import main
from gridcast.errors import UserInputError
from gridcast.models.base import SeasonalNaive
from gridcast.schema import LOAD, REFERENCE, TEMPERATURE, write_table


def test_day_ahead_issues_at_noon_before_and_scores_the_whole_next_day(region_history):
    config = BacktestConfig(start=pd.Timestamp("2023-02-20"), end=pd.Timestamp("2023-02-23"), protocol="day-ahead")
    origins = make_origins(region_history.index, config)
    assert [o.origin for o in origins] == list(
        pd.date_range("2023-02-19 12:00", periods=3, freq="1D", tz="UTC")
    )
    for o in origins:
        assert o.horizon == 36
        assert len(o.scored) == 24
        assert o.scored[0] == o.origin + pd.Timedelta(hours=12)
        assert o.scored[-1] == o.origin + pd.Timedelta(hours=35)


def test_day_ahead_scores_every_step_of_the_day_for_half_hourly_data():
    idx = pd.date_range("2024-01-01", periods=48 * 20, freq="30min", tz="UTC")
    origins = make_origins(idx, BacktestConfig(start=pd.Timestamp("2024-01-10"), end=pd.Timestamp("2024-01-11"),
                                               protocol="day-ahead"))
    assert len(origins) == 1 and origins[0].horizon == 72 and len(origins[0].scored) == 48


def test_rolling_origins_and_leads(region_history):
    start = region_history.index[-24 * 4]
    result = run_backtest(
        region_history, {"naive": SeasonalNaive}, BacktestConfig(start=start, end=start + pd.Timedelta(days=2),
                                                                 horizon=30, step="12h", weather="none"),
    )
    fc = result.forecasts
    assert fc["origin"].nunique() == 4
    assert sorted(fc["lead"].unique()) == list(range(1, 31))
    assert (fc["timestamp"] >= fc["origin"]).all()
    assert result.metrics["naive"]["overall"]["n"] == 4 * 30
    assert set(result.metrics["naive"]["by_lead"]) == set(range(1, 31))
    assert result.timings["naive"]["fits"] == 1  # refit 7D: one fit, updates after


def test_noisy_weather_is_seeded_grows_with_lead_and_withholds_other_columns(region_history):
    config = BacktestConfig(start=region_history.index[-24 * 10], end=region_history.index[-24 * 3],
                            horizon=168, step="24h", weather="noisy")
    origins = make_origins(region_history.index, config)
    errors = []
    for o in origins:
        a = future_weather(region_history, o, "noisy", seed=1)
        assert list(a.columns) == [TEMPERATURE]
        pd.testing.assert_frame_equal(a, future_weather(region_history, o, "noisy", seed=1))
        assert not a.equals(future_weather(region_history, o, "noisy", seed=2))
        errors.append(a[TEMPERATURE].to_numpy() - region_history[TEMPERATURE].reindex(a.index).to_numpy())
    errors = np.array(errors)
    first_day, last_day = errors[:, :24].std(), errors[:, -24:].std()
    assert 0.6 < first_day < 1.5  # 0.5 °C at lead 1 h to ~1.5 °C at 24 h
    assert last_day > 2 * first_day
    oracle = future_weather(region_history, origins[0], "oracle", seed=1)
    assert np.allclose(oracle[TEMPERATURE], region_history[TEMPERATURE].reindex(oracle.index))
    assert future_weather(region_history, origins[0], "none", seed=1) is None


def test_noisy_sigma_is_the_peers_line_from_half_a_degree_at_1h_to_2_degrees_at_36h():
    assert noise_sigma(np.array([0.5, 1, 18.5, 36])) == pytest.approx([0.5, 0.5, 1.25, 2.0])


def _noise(frame, mode, origins=400, horizon=36):
    """Standardised errors (error / sigma) of ``origins`` noisy forecasts, one row each."""
    out = []
    for k in range(origins):
        o = Origin(frame.index[24 + k], horizon, frame.index[24 + k:24 + k + horizon])
        w = future_weather(frame, o, mode, seed=3)
        err = w[TEMPERATURE].to_numpy() - frame[TEMPERATURE].reindex(w.index).to_numpy()
        out.append(err / noise_sigma(np.arange(1, horizon + 1)))
    return np.array(out)


@pytest.mark.parametrize(("mode", "rho"), [("noisy", 0.0), ("noisy-ar1", 0.9)])
def test_noisy_errors_have_the_stated_spread_and_correlation(region_history, mode, rho):
    z = _noise(region_history, mode)
    assert z.std(axis=0) == pytest.approx(np.ones(36), abs=0.15)  # sigma(h) at every lead
    lag1 = np.corrcoef(z[:, 10:30].ravel(), z[:, 11:31].ravel())[0, 1]
    assert lag1 == pytest.approx(rho, abs=0.06)  # independent per hour, or AR(1)


def test_metrics_against_hand_computed_values():
    g = pd.DataFrame({
        "actual": [100.0, 200.0, 100.0, np.nan],
        "mean": [110.0, 190.0, 100.0, 5.0],
        "lo-80": [90.0, 195.0, 95.0, 0.0],
        "hi-80": [120.0, 199.0, 105.0, 9.0],
    })
    m = score(g, (80,))
    assert m["n"] == 3
    assert m["mape"] == pytest.approx((10 / 100 + 10 / 200 + 0) / 3 * 100)
    assert m["mae"] == pytest.approx(20 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(200 / 3))
    assert m["bias"] == pytest.approx(0.0)
    assert m["coverage_80"] == pytest.approx(200 / 3)  # 200 is above hi 199
    assert m["width_80"] == pytest.approx((30 + 4 + 10) / 3)
    # pinball: median (mean) at q=.5, lo at q=.1, hi at q=.9
    q50 = np.mean([0.5 * 10, 0.5 * 10, 0.0])
    q10 = np.mean([0.1 * 10, 0.1 * 5, 0.1 * 5])
    q90 = np.mean([0.1 * 20, 0.9 * 1, 0.1 * 5])
    assert m["pinball"] == pytest.approx((q50 + q10 + q90) / 3)


def test_reference_forecast_is_scored_side_by_side(region_history):
    frame = region_history.copy()
    frame[REFERENCE] = frame[LOAD] * 1.02
    start = frame.index[-24 * 3]
    result = run_backtest(frame, {"naive": SeasonalNaive},
                          BacktestConfig(start=start, end=start + pd.Timedelta(days=2), protocol="day-ahead"))
    assert result.metrics["reference"]["overall"]["mape"] == pytest.approx(2.0)
    assert result.metrics["reference"]["overall"]["n"] == result.metrics["naive"]["overall"]["n"]


def test_bad_configuration_is_a_user_error():
    with pytest.raises(UserInputError):
        BacktestConfig(start=pd.Timestamp("2024-01-02"), end=pd.Timestamp("2024-01-01"))
    with pytest.raises(UserInputError):
        BacktestConfig(start=pd.Timestamp("2024-01-01"), end=pd.Timestamp("2024-01-02"), weather="sunny")


def test_cli_writes_json_and_plots(tmp_path, synthetic, capsys):
    data = tmp_path / "sample.parquet"
    write_table(synthetic[synthetic["region"] == "region-2"], data, {"country": "VN", "timezone": "Asia/Ho_Chi_Minh"})
    out = tmp_path / "bt.json"
    rc = main(["backtest", "--data", str(data), "--models", "naive", "--protocol", "day-ahead",
               "--start", "2023-03-05", "--end", "2023-03-08", "--out", str(out), "--plots", str(tmp_path / "png")])
    assert rc == 0
    payload = json.loads(out.read_text())
    assert payload["region"] == "region-2" and payload["tz"] == "Asia/Ho_Chi_Minh"
    assert payload["metrics"]["naive"]["overall"]["n"] == 3 * 24
    assert payload["guard"]["naive"]["flagged"] == 0 and payload["guard"]["naive"]["checked"] == 3
    assert payload["guard"]["naive"]["band"]["hi"] > payload["guard"]["naive"]["band"]["lo"] >= 0
    assert (tmp_path / "png" / "error_by_lead.png").stat().st_size > 0
    assert (tmp_path / "png" / "sample_week.png").stat().st_size > 0
    assert "naive" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, synthetic, capsys):
    assert main(["backtest", "--data", str(tmp_path / "missing.parquet"), "--start", "2023-01-01",
                 "--end", "2023-01-02", "--out", str(tmp_path / "x.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    data = tmp_path / "two.parquet"
    write_table(synthetic, data)
    assert main(["backtest", "--data", str(data), "--start", "2023-03-01", "--end", "2023-03-02",
                 "--models", "naive,prophet", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "region" in err
