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

``test_sweep`` is the held-out sweep (square, rectangular, fp32/fp64, bmm) measured the way a
user meets fastmm: fresh cache, calibration and tuning by use first, then A-B-A rounds; select it
with ``-k sweep`` and its size with ``FASTMM_SWEEP`` (see the section below).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
import warnings

import numpy as np
import pytest
import torch

import fastmm
from fastmm.accuracy import MAX_ERROR_GROWTH, error_growth
from fastmm.cache import CacheKey, TuningCache, _versions, blas_version, device_name
from fastmm.ops import execute
from fastmm.planner import Problem, precision_mode, resolve_algorithm
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

    with warnings.catch_warnings():     # settle first: calibration and tuning by use are not timed here
        warnings.simplefilter("ignore", fastmm.calibrate.CalibrationWarning)
        benchmark.extra_info["tuning_calls"] = _settle(a, b)[0]
    benchmark.extra_info["plan"] = fastmm.explain(a, b).plan.key
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


# ---- the held-out sweep: what a user gets after calibration and tuning by use -----------------
#
# Shapes the planner was not designed around: square N = 2048 ... 8192, six rectangular products
# with no dimension below 2048, fp32 and fp64, and one bmm of large products. Each row starts from
# a fresh tuning cache, calls fastmm.matmul as a user would until its decision is settled (the
# first call calibrates the machine; the next ones are tuning by use, each returning its real
# result), then measures ratio = torch.matmul time / fastmm time as the median of A-B-A rounds.
#
#   FASTMM_SWEEP=full  pytest --benchmark-only bench/bench_matmul.py -k sweep      (~20 min, quiet machine)
#   FASTMM_SWEEP=smoke pytest --benchmark-only bench/bench_matmul.py -k sweep      (2 small shapes, ~1 min)
#   FASTMM_SWEEP=fp32 / fp64 / square / rect / bmm: one part of the full list
#
# Rows go to extra_info and to bench/results/sweep-<device>-<date>.json (one file per session).

SQUARE = (2048, 3000, 4096, 6000, 8192)
RECT = ((8192, 4096, 8192), (5000, 7000, 3000), (2048, 8192, 4096), (6000, 2048, 6000), (4096, 6144, 2500),
        (3072, 3072, 8192))
BMM = ((4, 4096, 4096, 4096),)        # batch × (n, k, p)
SMOKE = [(torch.float32, 1, 1536, 1536, 1536), (torch.float64, 2, 1100, 1024, 1200)]
MIN_RATIO = 0.98                      # no row may be slower than torch.matmul beyond noise
MIN_RATIO_8192_FP32 = 1.10
SMOKE_MIN_RATIO = 0.90                # smoke rows are small and short: they test the harness, not the 2 % bound


def sweep_cases(which: str | None = None) -> list[tuple]:
    """(dtype, batch, n, k, p) rows of the sweep named by ``FASTMM_SWEEP`` (default: full)."""
    which = which or os.environ.get("FASTMM_SWEEP", "full")
    if which == "smoke":
        return list(SMOKE)
    square = [(n, n, n) for n in SQUARE]
    parts = {"square": [(dt, 1, *s) for dt in (torch.float32, torch.float64) for s in square],
             "rect": [(dt, 1, *s) for dt in (torch.float32, torch.float64) for s in RECT],
             "bmm": [(torch.float32, *s) for s in BMM]}
    full = parts["square"] + parts["rect"] + parts["bmm"]
    if which == "full":
        return full
    if which in ("fp32", "fp64"):
        return [c for c in full if DTYPE_NAME[c[0]] == which]
    if which in parts:
        return parts[which]
    raise ValueError(f"FASTMM_SWEEP={which!r}: expected full, smoke, fp32, fp64, square, rect or bmm")


def _sweep_id(case) -> str:
    dt, batch, n, k, p = case
    return f"{DTYPE_NAME[dt]}-{'' if batch == 1 else f'b{batch}x'}{n}x{k}x{p}"


_SESSION = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
RESULTS = os.path.join(os.path.dirname(__file__), "results")


def _record_row(row: dict) -> str:
    """Append ``row`` to this session's JSON file (rewritten whole each time: a killed run keeps its rows)."""
    name = f"sweep-{row['device'].replace(':', '-')}-{_SESSION}.json"
    path = os.path.join(RESULTS, name)
    rows = []
    if os.path.exists(path):
        with open(path) as fh:
            rows = json.load(fh)["rows"]
    rows.append(row)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"sweep": os.environ.get("FASTMM_SWEEP", "full"), "rows": rows}, fh, indent=1)
    os.replace(tmp, path)
    return path


def _settle(a, b, limit: int = 60) -> tuple[int, float, str]:
    """Call fastmm.matmul until its decision is settled; (calls, seconds, final reason)."""
    t0 = time.perf_counter()
    for i in range(limit):
        fastmm.matmul(a, b)
        d = fastmm.explain(a, b).decision
        if d.trial is None:
            return i + 1, time.perf_counter() - t0, d.reason
    return limit, time.perf_counter() - t0, "not settled"


@pytest.mark.parametrize("case", sweep_cases(), ids=[_sweep_id(c) for c in sweep_cases()])
def test_sweep(benchmark, case, tmp_path, monkeypatch, fastmm_rounds):
    dtype, batch, n, k, p = case
    device = torch.device("cpu")
    monkeypatch.setenv("FASTMM_CACHE_DIR", str(tmp_path / "cache"))     # fresh: calibrate and tune from scratch
    monkeypatch.delenv("FASTMM_AUTOTUNE", raising=False)
    monkeypatch.delenv("FASTMM_CALIBRATE", raising=False)
    fastmm.runtime.forget_decisions()
    g = torch.Generator().manual_seed(n + k + p)
    shape_a, shape_b = ((batch, n, k), (batch, k, p)) if batch > 1 else ((n, k), (k, p))
    a = torch.randn(shape_a, generator=g, dtype=torch.float32).to(dtype)
    b = torch.randn(shape_b, generator=g, dtype=torch.float32).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastmm.calibrate.CalibrationWarning)
        calls, tuning_s, reason = _settle(a, b)
    explanation = fastmm.explain(a, b)
    plan = explanation.plan
    entry_path = TuningCache(tmp_path / "cache").path(CacheKey.of(Problem.of(a, b)))
    entry = json.loads(entry_path.read_text()) if entry_path.exists() else {}
    # torch.matmul's time, for the number of rounds: from the tuning medians when there are some
    # (an extra estimate costs two more calls, 12 s at fp64 8192³)
    t_torch = (entry.get("timings_s") or {}).get("torch.matmul") or _estimate(lambda: torch.matmul(a, b), device)
    rounds = max(fastmm_rounds, min(15, int(6.0 / max(t_torch, 1e-6))))
    interleaved: list[float] = []

    def torch_round():
        t0 = time.perf_counter()
        torch.matmul(a, b)
        interleaved.append(time.perf_counter() - t0)

    benchmark.group = f"sweep-{_sweep_id(case)}"
    benchmark.pedantic(lambda: fastmm.matmul(a, b), setup=torch_round, rounds=rounds)
    torch_round()
    ratio = paired_speedup(interleaved, benchmark.stats.stats.data)
    tv, trv, cv = _versions()
    cost = explanation.decision.cost
    row = {**_info(device, dtype, n), "case": _sweep_id(case), "batch": batch, "n": n, "k": k, "p": p,
           "plan": plan.key, "reason": reason, "ratio": ratio, "rounds": rounds,
           "torch_median_s": sorted(interleaved)[len(interleaved) // 2],
           "fastmm_median_s": benchmark.stats.stats.median, "tuning_calls": calls, "tuning_s": tuning_s,
           "tuning_medians_s": entry.get("timings_s"), "measured_slower": entry.get("slower"),
           "fastmm": fastmm.__version__, "blas": blas_version(),
           "cost_constants": cost.describe() if cost is not None else None}
    benchmark.extra_info.update(row)
    benchmark.extra_info["results_file"] = _record_row(row)
    smoke = os.environ.get("FASTMM_SWEEP") == "smoke"
    floor = SMOKE_MIN_RATIO if smoke else MIN_RATIO
    assert ratio >= floor, f"{_sweep_id(case)}: {ratio:.3f}× torch.matmul with {plan.key} (torch {row['torch_median_s']:.3f} s)"
    if (dtype, batch, n, k, p) == (torch.float32, 1, 8192, 8192, 8192):
        assert ratio >= MIN_RATIO_8192_FP32, f"fp32 8192³: {ratio:.3f}× (torch {row['torch_median_s']:.3f} s)"
