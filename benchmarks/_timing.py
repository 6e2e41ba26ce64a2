"""Timing shared by the benchmark scripts in this folder (run as ``python benchmarks/<script>.py``)."""
from __future__ import annotations

import statistics
import time


def median_ms(fn, repeats: int = 10) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)
