"""One way to time a kernel: median milliseconds over ``reps`` calls after ``warmup`` calls.

On CUDA, each call is bracketed by CUDA events on the current stream and synchronised (the GPU
time of the work, not the launch time); elsewhere the wall clock of each call. Used by the Triton
backend's tile autotuner and by ``bench/gpu_sweep.py``.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], warmup: int = 2, reps: int = 5, device: str = "cuda") -> float:
    """Median milliseconds of ``fn()``: CUDA events when ``device`` is ``"cuda"``, wall clock otherwise."""
    import torch
    for _ in range(warmup):
        fn()
    times = []
    if device != "cuda":
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
