"""Timing shared by the benchmarks of this folder (``python -m benchmarks MODE``)."""
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
