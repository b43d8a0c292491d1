"""Self-calibration: the cost model's constants measured on the machine that runs the product.

The built-in constants (``fastmm.cost.CPU_DEFAULT``) come from one development machine; on another
CPU its predictions missed by more than the gains they chose between (issue 17: torch.matmul took
4.7 s at 8192³ fp32 on one 2-core machine and 8.5 s on another). So on first use on a device and
dtype, for a product above the planner's reject threshold only (never inside a small call), fastmm
measures, within ``BUDGET_S`` seconds:

- the leaf GEMM rate (torch.matmul, square) at a few sizes, fitted to the model's
  ``rate(d) = peak · d / (d + half_size)`` (least squares on 1/rate against 1/d);
- the bandwidth of the combination kernels: the elementwise ops the torch backend's generated
  code runs (``torch.add/sub(x, y, out=)``, ``dst.add_(x)``, ``dst.add_(x, alpha=)``) on strided
  block views, as bytes read + written per second (median of the ops);
- the fixed cost per call: the median time of a tiny ``torch.matmul`` and a tiny ``torch.add``.

It says once per process what it is doing (a ``CalibrationWarning``) and stores the result in the
tuning cache (``fastmm.cache``, keyed by device with its thread count, dtype, and the torch, CUDA,
BLAS and fastmm versions), so each machine pays it once. ``FASTMM_CALIBRATE=0`` turns it off: the
planner then uses the built-in defaults only. ``fastmm.explain`` says which constants were
measured. Nothing is measured while torch.compile traces.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
import warnings

import torch

from fastmm import cache as cache_mod
from fastmm.cost import DeviceCost, default_cost

ENV = "FASTMM_CALIBRATE"
#: at most this many seconds of measurement per device and dtype (the largest GEMM size is skipped
#: when its predicted time would not fit); measured: 0.9 s fp32, 1.6 s fp64 on 2 AVX-512 cores
BUDGET_S = 3.0
GEMM_SIZES = (512, 1024, 2048)   # 2-level leaves of N = 2048-8192 products
#: combination blocks of 1024²-2048² are what 2-level plans at N = 4096-8192 add
BLOCK = 2048


class CalibrationWarning(UserWarning):
    """Emitted once per process when fastmm first measures this machine."""


_MEMO: dict[tuple, DeviceCost] = {}
_LOCK = threading.Lock()
_ANNOUNCED: list[bool] = []


def enabled() -> bool:
    return os.environ.get(ENV, "1") not in ("0", "false", "False", "off")


def device_cost(device: torch.device, dtype: torch.dtype, tuning: cache_mod.TuningCache | None,
                measure_now: bool = True) -> DeviceCost:
    """The cost constants for (device, dtype): measured (cached) where calibration is on, else defaults.

    ``measure_now=False`` (``fastmm.explain``) only reads what was measured before.
    """
    device = torch.device(device)
    if not enabled() or tuning is None:
        return default_cost(device.type, dtype)
    key = cache_mod.CalibrationKey.of(device, dtype)
    memo_key = (key, str(tuning.directory))
    hit = _MEMO.get(memo_key)
    if hit is not None:
        return hit
    with _LOCK:
        hit = _MEMO.get(memo_key)
        if hit is not None:
            return hit
        stored = tuning.get_calibration(key)
        if stored is not None:
            cost = _from_values(stored, f"measured {stored['measured_at']}, tuning cache {tuning.directory}")
        elif not measure_now or torch.compiler.is_compiling():
            return default_cost(device.type, dtype)
        else:
            _announce(key, tuning)
            values, details = measure(device, dtype)
            try:
                tuning.put_calibration(key, values, details)
            except OSError as exc:      # a read-only cache: use the numbers, measure again next process
                warnings.warn(f"fastmm: could not store the calibration in {tuning.directory} ({exc})",
                              CalibrationWarning, stacklevel=2)
            cost = _from_values(values, f"measured now ({details['seconds']:.2f} s), stored in {tuning.directory}")
        _MEMO[memo_key] = cost
        return cost


def _from_values(values: dict, source: str) -> DeviceCost:
    return DeviceCost(values["peak_flops"], values["half_size"], values["bandwidth"], values["op_overhead"],
                      measured=DeviceCost.FIELDS, source=source)


def _announce(key: cache_mod.CalibrationKey, tuning: cache_mod.TuningCache) -> None:
    if _ANNOUNCED:
        return
    _ANNOUNCED.append(True)
    warnings.warn(f"fastmm: calibrating the cost model on {key.device} for {key.dtype.replace('torch.', '')} "
                  f"(GEMM rate, addition bandwidth, per-call cost; at most {BUDGET_S:.0f} s, once per device, "
                  f"dtype and versions; stored in {tuning.directory}). Set {ENV}=0 to use built-in defaults.",
                  CalibrationWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside fastmm (the user's call)."""
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _timer(device: torch.device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def median_s(fn, reps: int) -> float:
        fn()
        sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)
    return median_s


def fit_rate(points: list[tuple[int, float]], default_half: float) -> tuple[float, float]:
    """(peak, half_size) of ``rate(d) = peak·d/(d + half)`` through (d, rate) points: least squares on
    1/rate = 1/peak + (half/peak)·(1/d). Falls back to (best rate, ``default_half``) when the
    points do not fit the form (a rate that falls with size, say, on a loaded machine): then the
    curve with ``default_half`` through the fastest point."""
    d_best, best = max(points, key=lambda pr: pr[1])
    if len(points) >= 2:
        xs = [1.0 / d for d, _ in points]
        ys = [1.0 / r for _, r in points]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
        intercept = my - slope * mx
        if intercept > 0 and slope >= 0:
            peak = 1.0 / intercept
            if best <= peak <= 3 * best:
                return peak, slope * peak
    return best * (d_best + default_half) / d_best, default_half


def measure(device: torch.device | str, dtype: torch.dtype, budget_s: float = BUDGET_S,
            sizes: tuple[int, ...] = GEMM_SIZES, block: int = BLOCK) -> tuple[dict, dict]:
    """Measure (values, details) for the cost model on ``device``/``dtype`` within about ``budget_s``."""
    device = torch.device(device)
    median_s = _timer(device)
    start = time.perf_counter()
    base = default_cost(device.type, dtype)
    tiny = torch.randn(8, 8, device=device).to(dtype)
    tiny_out = torch.empty_like(tiny)
    overhead = statistics.median([median_s(lambda: torch.matmul(tiny, tiny), 20),
                                  median_s(lambda: torch.add(tiny, tiny, out=tiny_out), 20)])
    points: list[tuple[int, float]] = []
    for d in sizes:
        spent = time.perf_counter() - start
        if points:
            rate = points[-1][1]
            if spent + 3 * 2.0 * d ** 3 / rate > budget_s * 0.8:   # 3 calls at the last rate
                break
        a = torch.randn(d, d, device=device).to(dtype)
        b = torch.randn(d, d, device=device).to(dtype)
        t = median_s(lambda: torch.matmul(a, b), 3 if d < 2048 else 2)
        points.append((d, 2.0 * d ** 3 / max(t - overhead, 1e-12)))
        del a, b
    peak, half = fit_rate(points, base.half_size)
    # combination ops on strided block views of a 2·block × 2·block matrix, as the generated code runs them
    s = block
    while s > 256 and 3 * 4 * s * s * torch.empty((), dtype=dtype).element_size() > 512 * 2 ** 20:
        s //= 2
    big = torch.randn(2 * s, 2 * s, device=device).to(dtype)
    x, y = big[:s, :s], big[s:, s:]
    dst = torch.empty(2 * s, 2 * s, device=device, dtype=dtype)[:s, s:]
    moved = 3 * s * s * big.element_size()        # two reads and one write per element
    ops = {"add(out=)": lambda: torch.add(x, y, out=dst), "sub(out=)": lambda: torch.sub(x, y, out=dst),
           "add_": lambda: dst.add_(x), "add_(alpha)": lambda: dst.add_(x, alpha=-1.0)}
    bandwidths = {name: moved / max(median_s(fn, 3) - overhead, 1e-12) for name, fn in ops.items()}
    values = {"peak_flops": peak, "half_size": half, "bandwidth": statistics.median(bandwidths.values()),
              "op_overhead": overhead}
    details = {"gemm_rates_flops": {str(d): r for d, r in points}, "bandwidth_by_op": bandwidths,
               "block": s, "seconds": time.perf_counter() - start}
    assert all(math.isfinite(v) and v > 0 for v in values.values()), values
    return values, details


def forget() -> None:
    """Drop this process's memo (tests; a new cache directory is picked up without it anyway)."""
    _MEMO.clear()


__all__ = ["BUDGET_S", "CalibrationWarning", "ENV", "device_cost", "enabled", "fit_rate", "forget", "measure"]
