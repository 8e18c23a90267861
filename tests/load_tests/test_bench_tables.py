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
