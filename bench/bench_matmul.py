"""fastmm.matmul against torch.matmul, per shape; and the accuracy of every plan.

Run: ``pytest bench/bench_matmul.py --benchmark-only --benchmark-json=RESULTS.json`` then
``python -m bench.report RESULTS.json``. Each shape is one pytest-benchmark group holding a
``torch.matmul`` and a ``fastmm.matmul`` entry, so the table shows them side by side.

On a shared machine, load drifts between two separately timed tests; the fastmm entry therefore
also times torch.matmul *interleaved* with its own rounds (in pytest-benchmark's untimed setup,
alternating torch / fastmm, with one more torch round at the end) and records the median of the
per-round ratios, each fastmm round against the torch rounds on both sides of it, as
``extra_info["speedup"]``, which is the number the report uses. Timings are synchronised on GPUs and follow one warm-up
call. GPU cases skip without CUDA.
"""

from __future__ import annotations

import datetime
import math
import os
import time

import numpy as np
import pytest
import torch

import fastmm
from fastmm.accuracy import MAX_ERROR_GROWTH, error_growth
from fastmm.cache import _versions, device_name
from fastmm.ops import execute
from fastmm.planner import precision_mode, resolve_algorithm
from fastmm.plans import Plan

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device: GPU benchmarks skipped")

CPU_CASES = [(torch.float32, n) for n in (64, 128, 256, 512, 1024, 2048, 4096, 8192)] + \
            [(torch.float64, n) for n in (1024, 4096)]
GPU_CASES = [(dt, n) for dt in (torch.float16, torch.bfloat16, torch.float32) for n in (1024, 4096, 8192, 16384)]

DTYPE_NAME = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _info(device: torch.device, dtype: torch.dtype, n: int) -> dict:
    tv, trv, cv = _versions()
    return {"device": device_name(device), "torch": tv, "triton": trv, "cuda": cv, "dtype": DTYPE_NAME[dtype],
            "precision": precision_mode(device), "threads": torch.get_num_threads(), "n": n,
            "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")}


def _operands(device, dtype, n):
    g = torch.Generator(device=device).manual_seed(n)
    a = torch.randn(n, n, generator=g, device=device, dtype=torch.float32).to(dtype)
    b = torch.randn(n, n, generator=g, device=device, dtype=torch.float32).to(dtype)
    return a, b


def _schedule(seconds: float, min_rounds: int) -> tuple[int, int]:
    """(rounds, calls per round) for a call of about ``seconds``: ≥ 20 ms per round, ≤ 60 rounds."""
    calls = max(1, int(0.02 / max(seconds, 1e-7)))
    rounds = max(min_rounds, min(60, int(2.0 / max(seconds * calls, 1e-7))))
    return rounds, calls


def _estimate(fn, device) -> float:
    """One call's time: the fastest of a few (a preempted call would shrink calls per round)."""
    fn()
    _sync(device)
    best = math.inf
    deadline = time.perf_counter() + 0.5
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            break
    return best


def _run(benchmark, impl: str, device: torch.device, dtype: torch.dtype, n: int, min_rounds: int) -> None:
    a, b = _operands(device, dtype, n)
    rounds, calls = _schedule(_estimate(lambda: torch.matmul(a, b), device), min_rounds)

    # Small products run ``calls`` times per round (pytest-benchmark allows no setup function
    # with iterations > 1), the same count for both entries, so the group compares like with like.
    def torch_call():
        for _ in range(calls):
            torch.matmul(a, b)
        _sync(device)

    def fastmm_call():
        for _ in range(calls):
            fastmm.matmul(a, b)
        _sync(device)

    benchmark.group = f"{device.type}-{DTYPE_NAME[dtype]}-N{n}"
    benchmark.extra_info.update(_info(device, dtype, n))
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["plan"] = fastmm.explain(a, b).plan.key
    benchmark.extra_info["calls_per_round"] = calls
    benchmark.extra_info["flops_per_round"] = 2 * n ** 3 * calls    # classical count
    if impl == "torch.matmul":
        benchmark.pedantic(torch_call, rounds=rounds, warmup_rounds=1)
        return
    interleaved: list[float] = []

    def setup():                        # untimed by pytest-benchmark: time torch.matmul here
        t0 = time.perf_counter()
        torch_call()
        interleaved.append(time.perf_counter() - t0)

    fastmm_call()                       # warm-up: plan, compile, first-touch of workspaces
    benchmark.pedantic(fastmm_call, setup=setup, rounds=rounds)
    setup()                             # one more torch round after the last fastmm round
    fastmm_rounds = benchmark.stats.stats.data
    torch_median = sorted(interleaved)[len(interleaved) // 2]
    benchmark.extra_info["torch_median_interleaved_s"] = torch_median
    benchmark.extra_info["torch_min_interleaved_s"] = min(interleaved)
    benchmark.extra_info["speedup"] = paired_speedup(interleaved, fastmm_rounds)
    benchmark.extra_info["speedup_of_medians"] = torch_median / benchmark.stats.stats.median
    # Ratio of the fastest rounds: less sensitive to preemption on a loaded machine.
    benchmark.extra_info["speedup_min"] = min(interleaved) / benchmark.stats.stats.min


def paired_speedup(torch_rounds: list[float], fastmm_rounds: list[float]) -> float:
    """Median over rounds of torch time / fastmm time, each fastmm round against the mean of the
    torch rounds just before and just after it (an A-B-A design: linear drift of the machine's
    speed cancels, which a ratio of two separate medians does not)."""
    assert len(torch_rounds) == len(fastmm_rounds) + 1
    ratios = sorted((t0 + t1) / 2 / f for t0, t1, f in zip(torch_rounds, torch_rounds[1:], fastmm_rounds))
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


@pytest.mark.parametrize("impl", ["torch.matmul", "fastmm.matmul"])
@pytest.mark.parametrize("dtype,n", CPU_CASES, ids=[f"{DTYPE_NAME[d]}-N{n}" for d, n in CPU_CASES])
def test_cpu(benchmark, impl, dtype, n, fastmm_rounds):
    _run(benchmark, impl, torch.device("cpu"), dtype, n, fastmm_rounds)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["torch.matmul", "fastmm.matmul"])
@pytest.mark.parametrize("dtype,n", GPU_CASES, ids=[f"{DTYPE_NAME[d]}-N{n}" for d, n in GPU_CASES])
def test_gpu(benchmark, impl, dtype, n, fastmm_rounds):
    _run(benchmark, impl, torch.device("cuda"), dtype, n, fastmm_rounds)


# ---- accuracy: each plan's error against a float64 reference, next to torch.matmul's own ------

def _extended(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().astype(np.longdouble)


def _extended_error(c: torch.Tensor, ref: np.ndarray) -> float:
    """Normwise relative error ‖c − ref‖_F / ‖ref‖_F in extended precision."""
    return float(np.linalg.norm(_extended(c) - ref) / np.linalg.norm(ref))


ACCURACY_PLANS = [(alg, lv) for alg in ("strassen", "winograd", "laderman") for lv in (1, 2, 3)] + \
                 [("4x4x4", 1), ("4x4x4", 2)]
ACCURACY_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", ACCURACY_DTYPES, ids=[DTYPE_NAME[d] for d in ACCURACY_DTYPES])
@pytest.mark.parametrize("algorithm,levels", ACCURACY_PLANS, ids=[f"{a}-L{lv}" for a, lv in ACCURACY_PLANS])
def test_accuracy(benchmark, algorithm, levels, dtype):
    n = 432                              # divisible by 2**3, 3**3 and 4**2: every level is exact
    device = torch.device("cuda" if HAS_CUDA else "cpu")
    # Entries uniform in [0, 1) (nonnegative: the hard case for cancellation-based algorithms).
    # The reference is computed in numpy's extended precision (x86 long double, eps 1.1e-19,
    # 1.4 s at N = 432) and errors are measured there too: a float64 GEMM reference would make
    # torch.matmul's own fp64 error exactly zero.
    g = torch.Generator().manual_seed(7)
    a64 = torch.rand(n, n, generator=g, dtype=torch.float64)
    b64 = torch.rand(n, n, generator=g, dtype=torch.float64)
    ref = _extended(a64) @ _extended(b64)
    a64, b64 = a64.to(device), b64.to(device)
    a, b = a64.to(dtype), b64.to(dtype)
    f = resolve_algorithm(algorithm)
    # Run the plan directly, not through fastmm.matmul: the planner would refuse the plans over
    # the dtype's bound, and this report is where their error is shown.
    plan = Plan(f.name, f.digest, levels, "materialized", "torch", factorization=f)
    out = benchmark.pedantic(lambda: execute(plan, a, b), rounds=1)
    torch_err = _extended_error(torch.matmul(a, b), ref)
    err = _extended_error(out, ref)
    growth = error_growth(f, levels)
    benchmark.group = f"accuracy-{DTYPE_NAME[dtype]}"
    benchmark.extra_info.update(_info(device, dtype, n))
    benchmark.extra_info.update({
        "impl": "accuracy", "algorithm": algorithm, "levels": levels, "error": err, "torch_error": torch_err,
        "error_ratio": err / torch_err if torch_err else math.inf, "predicted_growth": growth,
        "bound": MAX_ERROR_GROWTH[dtype], "allowed": growth <= MAX_ERROR_GROWTH[dtype]})
