"""Model accuracy and speed on real data (Spain 2018, day-ahead) — a benchmark, not a test.

What it does, with the very commands a person would type (they are recorded next to
the figures):

1. ``gridcast data import`` the Spain load file + the 5-city weather file (Kelvin);
2. ``gridcast data check --repair-dates`` (the file has day/month-swapped dates);
3. ``gridcast backtest --protocol day-ahead`` over 2018 for each model group and each
   weather mode (``noisy``: forecast-like temperature; ``oracle``: observed — an upper
   bound), writing ``load_tests/results/models_<weather>_<group>.json``;
4. regenerates the ``models`` section of BENCHMARKS.md from every
   ``load_tests/results/models_*.json`` present.

Model groups and their refit cadence (each is a separate backtest so a slow group
does not hold the others back): ``sarimax`` = naive + SARIMAX, refit weekly (52 fits
on 8-week windows); ``lstm``, refit every ``--lstm-refit`` (training on 3 years takes
minutes on 2 shared cores, so by default it is trained once on 2015–2017 and
updated daily with actuals); ``ensemble`` (SARIMAX + LSTM) with the same cadence as
the LSTM, its SARIMAX member refitted weekly inside it.

Usage::

    .venv/bin/python load_tests/bench_models.py --spain ../shared/data/spain
    .venv/bin/python load_tests/bench_models.py --groups lstm,ensemble --weather noisy
    .venv/bin/python load_tests/bench_models.py --render-only
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "load_tests" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- BEGIN:models -->", "<!-- END:models -->"
GRIDCAST = ".venv/bin/gridcast"

GROUPS = {"sarimax": "naive,sarimax", "lstm": "lstm", "ensemble": "ensemble"}
#: targets from the issue (noisy weather, MAPE %), and the 90 % coverage band
TARGETS = {"sarimax": 2.7, "lstm": 2.0, "ensemble": 1.7}
COVERAGE_BAND = (85.0, 95.0)


def run(cmd: list[str]) -> str:
    """Run a gridcast command from the repository root; the command line is returned."""
    line = shlex.join(cmd)
    print(f"$ {line}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return line


def prepare(spain: Path, work: Path) -> tuple[Path, list[str]]:
    """Import and date-repair the Spain files (skipped when already done)."""
    work.mkdir(parents=True, exist_ok=True)
    raw, clean = work / "spain_raw.parquet", work / "spain.parquet"
    cmds = [
        [GRIDCAST, "data", "import", str(spain / "energy_dataset.csv"), "--out", str(raw),
         "--time-col", "time", "--load-col", "total load actual", "--reference-col", "total load forecast",
         "--region", "ES", "--country", "ES", "--tz", "Europe/Madrid",
         "--weather", str(spain / "weather_features.csv.gz"), "--station-col", "city_name",
         "--weather-time-col", "dt_iso", "--weather-temp-col", "temp", "--temp-unit", "K"],
        [GRIDCAST, "data", "check", str(raw), "--repair-dates", "--report", str(work / "quality.json"),
         "--clean-out", str(clean)],
    ]
    lines = [shlex.join(c) for c in cmds]
    if not clean.exists():
        for c in cmds:
            run(c)
    return clean, lines


def backtest(data: Path, group: str, weather: str, refit: str, work: Path, prep: list[str]) -> Path:
    out = RESULTS / f"models_{weather}_{group}.json"
    cmd = [GRIDCAST, "backtest", "--data", str(data), "--models", GROUPS[group], "--protocol", "day-ahead",
           "--start", "2018-01-01", "--end", "2019-01-01", "--refit", refit, "--weather", weather,
           "--out", str(out), "--forecasts-out", str(work / f"forecasts_{weather}_{group}.parquet"),
           "--plots", str(work / f"plots_{weather}_{group}")]
    t0 = time.time()
    line = run(cmd)
    payload = json.loads(out.read_text())
    payload["commands"] = [*prep, line]
    payload["wall_s"] = round(time.time() - t0, 1)
    payload["machine"] = _machine()
    out.write_text(json.dumps(payload, indent=2, default=str))
    return out


def _machine() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from load_tests.common import machine

    return machine()


# -- the BENCHMARKS.md section --------------------------------------------------------
def _fmt(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


NOTES = """Notes.
* **SARIMAX** = regression on weekday (a public holiday counts as a Sunday), holiday,
  days-off × daily Fourier and temperature/HDD/CDD terms with SARIMA(2,0,1)(1,1,1,24)
  errors, 8-week window, refit weekly (52 fits), Kalman-filter update with each day's
  actuals (docs/models.md). It misses the 2.7 % target by about 0.2 pt. Tried: the same
  model with holidays only as their own dummies scored 3.00 % (noisy) — the worst days
  were holidays that never occur inside an 8-week window (Good Friday, 15 Aug,
  Christmas: 18–24 % APE), hence the holiday-as-Sunday rule (→ 2.89 %). Regional
  holidays (Holy Thursday) and Christmas Eve are not in the national calendar and
  remain its worst days. Its 90 % intervals (the state-space model's own) cover just
  under 85 %: they know neither the weather forecast's error nor holiday effects.
  Not tried for lack of time: a longer window with annual terms, subdivision holidays.
* **LSTM** (helper LSTM's model): trained once on 2015–2017 (`--refit 365D`: a 3-year fit
  takes minutes on this shared machine), updated with each day's actuals.
* **Ensemble** (SARIMAX + LSTM, inverse validation-MSE weights): trained once like the
  LSTM, its SARIMAX member refitted weekly inside it. It does *worse* than the LSTM
  alone: its weights come from one week, the last before the fit (Christmas 2017, an
  unrepresentative week), and gave the SARIMAX about half the weight (≈ 0.53, estimated
  from the forecasts). With oracle weather the ensemble's weights came out at ≈ 0.39
  (its LSTM member, though seeded, is not bit-reproducible between processes on CPU, so
  its validation error and the weights differ from run to run) and it beat the LSTM
  slightly (1.82 % vs 1.86 %) — the weighting, not the idea, is the weak part. For
  diagnosis only (chosen after seeing 2018, so not a result): a fixed 20 % SARIMAX weight
  on the two stand-alone backtests' forecasts would have scored 1.77 %. Next step:
  weights that keep learning from the members' errors as actuals arrive (in
  `update`), instead of one fixed validation week.
* The best model with noisy weather is therefore the LSTM (1.87 %), 0.17 pt above the
  1.7 % target for the best served model; no model reaches it in this run.
* Peers on this protocol (issue 3): statsforecast ARIMA with temperature and Fourier
  terms 2.69 %, gradient boosting on calendar/lag/temperature features 1.71 %."""


def render() -> str:
    files = sorted(RESULTS.glob("models_*.json"))
    if not files:
        return "_No model benchmark results yet: run `load_tests/bench_models.py`._"
    by_weather: dict[str, dict[str, Any]] = {}
    commands: list[str] = []
    timings: dict[str, dict[str, Any]] = {}
    machines = []
    for f in files:
        p = json.loads(f.read_text())
        weather = p["config"]["weather"]
        for name, m in p["metrics"].items():
            row = dict(m["overall"])
            row["refit"] = p["config"]["refit"] if name != "reference" else "—"
            by_weather.setdefault(weather, {})[name] = row
        for c in p.get("commands", []):
            c = c.replace(f"{ROOT}/", "").replace(f"{ROOT.parent}/", "../")  # run from the repo root
            if c not in commands:
                commands.append(c)
        for name, t in p.get("timings", {}).items():
            if weather == "noisy" or name not in timings:
                timings[name] = t
        if p.get("machine"):
            machines.append(p["machine"])
    out = [
        "Spain (ENTSO-E load, 5-city mean temperature), imported and date-repaired with the data layer; "
        "**day-ahead protocol over 2018**: each forecast is issued at 12:00 UTC on day D−1 from data before "
        "that instant and scored on the 24 hours of day D (UTC). `noisy` weather = observed temperature plus "
        "a seeded forecast-like error (σ = 0.3 + 0.3·lead/24 °C, AR(1) ρ = 0.9/h: ≈0.6 °C a day ahead); "
        "`oracle` = observed temperature (an upper bound, no operator has it). `reference` = the operator's "
        "own day-ahead forecast (`total load forecast`), scored on the same hours.",
        "",
    ]
    order = ["reference", "naive", "sarimax", "lstm", "ensemble"]
    for weather in ("noisy", "oracle", "none"):
        rows = by_weather.get(weather)
        if not rows:
            continue
        out += [f"**Weather `{weather}`**", "",
                "| model | MAPE % | MAE MW | RMSE MW | bias MW | 90 % coverage | 90 % width MW | refit | target (noisy) |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for name in sorted(rows, key=lambda n: order.index(n) if n in order else 99):
            r = rows[name]
            target = TARGETS.get(name)
            verdict = ""
            if weather == "noisy" and target is not None and r.get("mape") is not None:
                gap = r["mape"] - target
                verdict = f"≤ {target} %: " + ("met" if gap <= 0 else f"missed by {gap:.2f} pt")
            out.append(
                f"| {name} | {_fmt(r.get('mape'), '.2f')} | {_fmt(r.get('mae'), ',.0f')} | "
                f"{_fmt(r.get('rmse'), ',.0f')} | {_fmt(r.get('bias'), ',.0f')} | "
                f"{_fmt(r.get('coverage_90'), '.1f')} | {_fmt(r.get('width_90'), ',.0f')} | {r['refit']} | {verdict} |"
            )
        out.append("")
    out += [NOTES, ""]
    out += ["**Speed** (inside the backtest on this machine; wall clock, and in brackets the CPU time of the "
            "process — the machine's 2 cores were shared with other work, load average 10–20, so wall times "
            "include waiting for a turn):", "",
            "| model | fits | fit s, mean / max | update ms per new hour (wall) | one forecast ms, median |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for name, t in timings.items():
        cpu_fit = f" ({t['fit_cpu_s_mean']:.1f} / {t['fit_cpu_s_max']:.1f} CPU)" if "fit_cpu_s_mean" in t else ""
        cpu_pred = f" ({t['predict_cpu_ms_median']:.1f} CPU)" if "predict_cpu_ms_median" in t else ""
        out.append(f"| {name} | {t['fits']} | {t['fit_s_mean']:.1f} / {t['fit_s_max']:.1f}{cpu_fit} | "
                   f"{_fmt(t.get('update_ms_per_step'), '.2f')} | {t['predict_ms_median']:.1f}{cpu_pred} |")
    out += ["", "Targets (issue 3): SARIMAX fit on 8 weeks hourly ≤ 30 s, update ≤ 20 ms per new hour, "
            "one forecast ≤ 20 ms; 90 % intervals cover 85–95 %. In CPU time the SARIMAX meets all three "
            "(fit 3.7 s mean, 8 s max; forecast ≈ 13 ms; update ≈ 8 ms per hour even in wall time). In wall "
            "time on this overloaded machine (load average 15–20 on 2 cores during the run) its mean fit "
            "(34 s) and forecast (165 ms) do not; a 2-week run of the same backtest at lower load measured "
            "5.7 s per fit and 7.8 ms per forecast (wall).", ""]
    if machines:
        m = machines[-1]
        out += [f"Machine: {m.get('cpus')} CPUs ({m.get('cpu')}), {m.get('ram_gb')} GiB RAM, Python "
                f"{m.get('python')}, load average at the end {m.get('load_avg')}.", ""]
    out += ["Commands (from the repository root; `load_tests/bench_models.py --spain ../shared/data/spain` "
            "runs them all and regenerates this section):", "", "```"] + commands + ["```"]
    return "\n".join(out)


def write_section(text: str) -> None:
    md = BENCHMARKS.read_text()
    head, _, rest = md.partition(BEGIN)
    _, _, tail = rest.partition(END)
    BENCHMARKS.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spain", type=Path, default=ROOT.parent / "shared" / "data" / "spain",
                    help="folder with energy_dataset.csv and weather_features.csv.gz (any copy)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gridcast-bench-models"),
                    help="scratch folder: imported data, forecasts, plots")
    ap.add_argument("--groups", default="sarimax,lstm,ensemble", help=f"of {', '.join(GROUPS)}")
    ap.add_argument("--weather", default="noisy,oracle", help="weather modes to run")
    ap.add_argument("--lstm-refit", default="365D", help="refit cadence of the LSTM and ensemble groups")
    ap.add_argument("--render-only", action="store_true", help="only regenerate the BENCHMARKS.md section")
    args = ap.parse_args(argv)
    if not args.render_only:
        if not (args.spain / "energy_dataset.csv").exists():
            print(f"no Spain data in {args.spain} (pass --spain)", file=sys.stderr)
            return 2
        RESULTS.mkdir(parents=True, exist_ok=True)
        data, prep = prepare(args.spain, args.work)
        for weather in args.weather.split(","):
            for group in args.groups.split(","):
                refit = "7D" if group == "sarimax" else args.lstm_refit
                backtest(data, group, weather, refit, args.work, prep)
    write_section(render())
    print(f"updated {BENCHMARKS.relative_to(ROOT)} (models section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
