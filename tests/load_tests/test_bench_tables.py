"""The serving benchmark's reading of the service's own latency histogram (pure functions)."""

from __future__ import annotations

from load_tests.bench import bucket_quantiles


def test_quantiles_come_from_the_answers_counted_between_two_reads():
    inf = float("inf")
    before = [(0.001, 50.0), (0.01, 60.0), (0.1, 60.0), (inf, 60.0)]
    # 100 new answers: 90 within 1 ms, 9 more within 10 ms, the last one above 100 ms
    after = [(0.001, 140.0), (0.01, 159.0), (0.1, 159.0), (inf, 160.0)]
    assert bucket_quantiles(before, after) == {"p50_ms": 1.0, "p99_ms": 10.0}
    assert bucket_quantiles(before, after, qs=(0.995,)) == {"p99.5_ms": None}  # in the open bucket: unknown
    assert bucket_quantiles([], []) == {"p50_ms": None, "p99_ms": None}
    # a histogram that appeared between the reads (no answers of that status before)
    assert bucket_quantiles([], [(0.001, 3.0), (inf, 3.0)]) == {"p50_ms": 1.0, "p99_ms": 1.0}


def _pairs_record(ratios_on_off: list[tuple[float, float]]) -> dict:
    rounds = [{"first": "on" if k % 2 == 0 else "off", "ratio": round(on / off, 2),
               "on": {"ok_rps": on, "p99_ms": 50.0, "failures": 0, "requests": 1000, "cpu_ms_per_req": 0.4},
               "off": {"ok_rps": off, "p99_ms": 90.0, "failures": 0, "requests": 500, "cpu_ms_per_req": 1.0}}
              for k, (on, off) in enumerate(ratios_on_off)]
    ratios = sorted(r["ratio"] for r in rounds)
    return {"date": "2026-12-06 19:00 UTC", "command": "python load_tests/bench.py --only pairs", "note": "",
            "machine": {"cpus": 2, "cpu": "x", "ram_gb": 1, "python": "3.11", "load_avg": [0.5, 0.5, 0.5]},
            "service_cpus": "1", "locust_cpus": "0", "payload_form": "columnar", "duration_s": 20,
            "pairs": {"users": 64, "round_s": 15, "rounds": rounds, "median_ratio": ratios[len(ratios) // 2],
                      "median_cpu_ratio": 2.5}}


def test_the_interleaved_rounds_decide_the_ratio_target_over_a_sequential_run():
    """A sequential ON-then-OFF run's ratio is not the headline once interleaved rounds exist."""
    from load_tests.bench import render

    sequential = {"date": "2026-12-06 18:00 UTC", "command": "bench", "note": "", "duration_s": 20,
                  "machine": {"cpus": 2, "cpu": "x", "ram_gb": 1, "python": "3.11", "load_avg": [0.5, 0.5, 0.5]},
                  "service_cpus": "1", "locust_cpus": "0", "payload_form": "columnar",
                  "batching": {"on": [{"users": 64, "ok_rps": 3000.0, "p50_ms": 20, "p95_ms": 30, "p99_ms": 40,
                                       "failures": 0, "requests": 60000, "cpu_ms_per_req": 0.4}],
                               "off": [{"users": 64, "ok_rps": 1000.0, "p50_ms": 60, "p95_ms": 80, "p99_ms": 90,
                                        "failures": 0, "requests": 20000, "cpu_ms_per_req": 1.0}]}}
    alone = render([sequential])
    assert "| batching ON / OFF, 64 users (history as arrays: the columnar form) | ≥ 2.5× | 3.00× | met |" in alone
    text = render([sequential, _pairs_record([(2000.0, 1000.0), (2400.0, 1000.0), (2200.0, 1000.0)])])
    target_rows = [line for line in text.splitlines() if line.startswith("| batching ON / OFF")]
    assert len(target_rows) == 1 and "interleaved" in target_rows[0]
    assert "2.2× (median of 3 rounds: 2.0–2.4×" in target_rows[0] and target_rows[0].endswith("| missed |")
    assert "| 1 | OFF | 2400.0 | 50 | 0.4 | 1000.0 | 90 | 1.0 | 2.4× |" in text
