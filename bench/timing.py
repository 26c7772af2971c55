"""The scale benchmarks' one timing rule: run a call N times (no warm-up: the first run is
listed with the others), report the median and every run in milliseconds."""

import statistics
import time


def median_ms(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), times
