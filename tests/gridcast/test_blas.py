"""Serving processes run one BLAS thread (the batcher merges requests instead)."""

import numpy as np  # noqa: F401 (loads the BLAS library threadpoolctl inspects)
from threadpoolctl import threadpool_info, threadpool_limits

from gridcast.settings import Settings, limit_blas_threads


def test_limit_blas_threads_sets_every_blas_library_to_the_setting():
    with threadpool_limits(limits=2, user_api="blas"):  # restored afterwards, whatever the test does
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas, "numpy's BLAS is visible to threadpoolctl"
        limit_blas_threads(Settings(blas_threads=1))
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
