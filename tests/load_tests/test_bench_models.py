"""The model benchmark's section: tables per grid with issue 16's verdicts computed from result files."""

from __future__ import annotations

import json
from pathlib import Path

from load_tests.bench_models import render, verdicts


def _result(path: Path, grid: str | None, weather: str, mapes: dict[str, float], coverage: float = 90.0,
            noise: bool = True) -> None:
    payload = {"config": {"weather": weather, "refit": "7D", "start": "2018-01-01 00:00:00+00:00",
                          "end": "2019-01-01 00:00:00+00:00"},
               "metrics": {name: {"overall": {"mape": mape, "coverage_90": None if name == "reference" else coverage}}
                           for name, mape in mapes.items()},
               "commands": [f"/nowhere/.venv/bin/gridcast backtest --weather {weather}"]}
    if grid:
        payload["grid"] = grid
    if noise and weather == "noisy":
        payload["noise"] = {"sigma_first_c": 0.5, "sigma_last_c": 2.0, "last_lead_h": 36.0, "ar1_rho": 0.9}
    path.write_text(json.dumps(payload))


def test_verdicts_judge_each_target_on_its_figure() -> None:
    rows = {"naive": {"mape": 6.0, "coverage_90": 80.0}, "sarimax": {"mape": 2.5, "coverage_90": 87.9},
            "lstm": {"mape": 1.8, "coverage_90": 90.0}, "ensemble": {"mape": 1.9, "coverage_90": 92.0},
            "reference": {"mape": 0.9}}
    assert verdicts("spain", "noisy", "sarimax", rows) == ["≤ 2.60 %: met", "cov. 88–92 %: missed"]
    assert verdicts("spain", "noisy", "lstm", rows) == ["≤ 1.75 %: missed by 0.05 pt", "cov. 88–92 %: met"]
    assert verdicts("spain", "noisy", "ensemble", rows) == ["cov. 88–92 %: met", "≤ best member (lstm 1.80 %): missed"]
    assert verdicts("spain", "oracle", "lstm", rows) == ["cov. 88–92 %: met"]  # the per-model targets are noisy only
    assert verdicts("spain", "noisy", "reference", rows) == []
    assert verdicts("victoria", "noisy", "sarimax", rows)[-1] == "skill +58.33 % vs naive (≥ 50 %: met)"
    assert verdicts("victoria", "noisy", "sarimax", {**rows, "naive": {"mape": 4.0}})[-1].endswith("missed)")
    assert verdicts("spain", "noisy", "ensemble", {**rows, "ensemble": {"mape": float("inf")}}) == [
        "MAPE not finite: missed"]


def test_render_has_a_table_per_grid_and_flags_stale_noise(tmp_path: Path) -> None:
    _result(tmp_path / "models_noisy_sarimax.json", None, "noisy", {"reference": 0.93, "naive": 9.0, "sarimax": 2.5},
            noise=False)  # an old file: no grid, no noise record
    _result(tmp_path / "models_oracle_lstm.json", "spain", "oracle", {"lstm": 1.45})
    _result(tmp_path / "models_victoria_noisy_sarimax.json", "victoria", "noisy", {"naive": 7.0, "sarimax": 3.0})
    text = render(tmp_path)
    assert text.index("### Spain") < text.index("### Victoria")
    assert "Best served model: **sarimax, 2.50 %** — target ≤ 1.60 %: missed by 0.90 pt; the operator's forecast: 0.93 %" in text
    assert "Best served model: **lstm, 1.45 %** — target ≤ 1.50 %: met" in text
    assert "predate this script's record" in text  # Spain's noisy file has no noise description
    assert "σ rising linearly from 0.5 °C at a lead of 1 h to 2.0 °C at 36 h" in text  # Victoria's has
    assert "skill +57.14 % vs naive (≥ 50 %: met)" in text
