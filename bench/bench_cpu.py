"""CPU targets of issue 18: fastmm against torch.matmul in the same run, with the time split.

    pytest --benchmark-only bench/bench_cpu.py                       # the target rows (minutes)
    FASTMM_BENCH_CPU_SHAPES=512:float32,768:float64 pytest --benchmark-only bench/bench_cpu.py

Each row (N, dtype) multiplies N×N by N×N:

1. candidates: ``FASTMM_BENCH_CPU_PLANS`` (``algorithm:schedule[:alt]`` items, ``alt`` = the stored
   alternative basis; default ``winograd:fused,winograd:materialized,strassen:materialized,
   winograd:materialized:alt,strassen2:fused``) at
   every allowed level count (targets: 1–2 levels, 1–3 at 16384; ``FASTMM_BENCH_CPU_LEVELS=2,3``
   keeps only those of them); each is timed once after a
   warm-up call and the fastest is *the plan* of the row (chosen in this run, on this machine).
   Levels count halvings of the block size (2×2 splits): a <4,4,4> algorithm such as
   ``strassen2`` (Strassen ⊗ Strassen, 49 products of N/4 blocks, one CSE over the whole product)
   runs one recursion level where two are allowed, so every candidate of a row has leaves of the
   same size or larger;
2. A-B-A: ``rounds`` times (≥ 3, ``FASTMM_BENCH_CPU_ROUNDS``) torch.matmul, the plan, torch.matmul;
   the ratio of a round is mean(torch before, torch after) / plan; the row's ratio is the median;
3. the time split of the plan (one instrumented call, any schedule): products = the time inside
   the module's leaf BLAS calls (``_leaf``: leaf products and peeled strips), transforms = the
   time inside an alternative basis's ``_transform_a``/``_transform_b``/``_inverse_c``,
   combinations = the rest (every addition pass and the recursion's Python).

The rows of issue 18 assert their target ratio (fp32 8192³ ≥ 1.20, fp64 8192³ ≥ 1.15, fp32 4096³
≥ 1.05, fp32 16384³ ≥ 1.25); other sizes only record. Results, with torch's time, dtype,
threads, versions, CPU, load average and date, go to pytest-benchmark's ``extra_info`` and to a
JSON file under bench/results/ (``FASTMM_BENCH_CPU_JSON`` names another path).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import pytest
import torch

import compiler
import fastmm
from kernels import cpu_fused

#: (N, dtype) -> (target ratio, level counts allowed)
TARGETS = {(8192, "float32"): (1.20, (1, 2)), (8192, "float64"): (1.15, (1, 2)),
           (4096, "float32"): (1.05, (1, 2)), (16384, "float32"): (1.25, (1, 2, 3))}
DEFAULT_SHAPES = "8192:float32,8192:float64,4096:float32,16384:float32"
DEFAULT_PLANS = "winograd:fused,winograd:materialized,strassen:materialized,winograd:materialized:alt,strassen2:fused"
RESULTS = Path(__file__).resolve().parent / "results"


def _rows() -> list[tuple[int, str]]:
    spec = os.environ.get("FASTMM_BENCH_CPU_SHAPES", DEFAULT_SHAPES)
    rows = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        n, _, dtype = item.partition(":")
        rows.append((int(n), dtype or "float32"))
    return rows


def _plans() -> list[tuple[str, str, str]]:
    """(algorithm, schedule, basis) from ``algorithm:schedule[:alt]`` items."""
    spec = os.environ.get("FASTMM_BENCH_CPU_PLANS", DEFAULT_PLANS)
    plans = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        algorithm, schedule, *rest = item.split(":")
        if rest not in ([], ["alt"]):
            raise ValueError(f"FASTMM_BENCH_CPU_PLANS item {item!r}: expected algorithm:schedule[:alt]")
        plans.append((algorithm, schedule, "alt" if rest else ""))
    return plans


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Timed:
    """Stands in for one module-level function of a generated module: the same calls, timed."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


#: functions of a generated torch module whose time is a part of the split (absent ones are skipped)
PRODUCTS = ("_leaf",)                                   # every BLAS call: leaf products and peeled strips
TRANSFORMS = ("_transform_a", "_transform_b", "_inverse_c")   # alternative-basis modules only


def split(mm, a, b) -> dict:
    """One instrumented call: products = time in the leaf BLAS calls (``_leaf``, the peeled strips
    included), transforms = time in an alternative basis's transforms, combinations = the rest
    (every addition pass, fused or not, and the Python of the recursion)."""
    mod = mm.module
    names = [n for n in PRODUCTS + TRANSFORMS if hasattr(mod, n)]
    timed = {n: _Timed(getattr(mod, n)) for n in names}
    for n, t in timed.items():
        setattr(mod, n, t)
    try:
        total = _time(lambda: mm(a, b))
    finally:
        for n, t in timed.items():
            setattr(mod, n, t.fn)
    products = sum(timed[n].seconds for n in PRODUCTS if n in timed)
    transforms = sum(timed[n].seconds for n in TRANSFORMS if n in timed)
    return {"total_s": total, "products_s": products, "transforms_s": transforms,
            "combinations_s": total - products - transforms}


def _compile(algorithm: str, schedule: str, basis: str, levels: int):
    if not basis:
        return compiler.compile(algorithm, levels=levels, cutoff=1, schedule=schedule)
    from compiler.algebra.library import library_algorithm
    from compiler.codegen.emit_altbasis import stored_altbasis

    f = library_algorithm(algorithm)
    alt = stored_altbasis(f)
    if alt is None:
        raise ValueError(f"FASTMM_BENCH_CPU_PLANS: {algorithm} has no stored alternative basis")
    return compiler.compile(f, levels=levels, cutoff=1, schedule=schedule, basis=alt)


def _recursion_levels(algorithm: str, levels: tuple[int, ...]) -> list[int]:
    """The recursion levels of ``algorithm`` that split the blocks as often as some of ``levels``
    2×2 levels do (<2^j,2^j,2^j> algorithms: each level count divisible by j, divided by j);
    other shapes (<3,3,3>, rectangular) recurse ``levels`` times."""
    from compiler.algebra.library import library_algorithm

    m, k, n = library_algorithm(algorithm).shape
    if m != k or k != n or m & (m - 1):
        return list(levels)
    j = m.bit_length() - 1
    return [lv // j for lv in levels if lv % j == 0]


def measure(n: int, dtype: str, rounds: int) -> dict:
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, n, dtype=dt, generator=g)
    b = torch.randn(n, n, dtype=dt, generator=g)
    target, levels = TARGETS.get((n, dtype), (None, (1, 2)))
    if os.environ.get("FASTMM_BENCH_CPU_LEVELS"):  # e.g. "2,3": fewer candidates on long rows
        levels = tuple(lv for lv in map(int, os.environ["FASTMM_BENCH_CPU_LEVELS"].split(",")) if lv in levels)
    torch.matmul(a, b)  # warm-up
    candidates = []
    for algorithm, schedule, basis in _plans():
        for lv in _recursion_levels(algorithm, levels):
            mm = _compile(algorithm, schedule, basis, lv)
            mm(a, b)  # warm-up: compiles, and makes the workspace the module keeps (kernels.workspace)
            candidates.append((_time(lambda: mm(a, b)), algorithm, schedule, basis, lv, mm))
    _, algorithm, schedule, basis, lv, mm = min(candidates, key=lambda c: c[0])
    ratios, t_torch, t_fast = [], [], []
    for _ in range(rounds):
        t1 = _time(lambda: torch.matmul(a, b))
        tf = _time(lambda: mm(a, b))
        t2 = _time(lambda: torch.matmul(a, b))
        ratios.append((t1 + t2) / 2 / tf)
        t_torch += [t1, t2]
        t_fast.append(tf)
    err = (mm(a, b).double() - a.double() @ b.double()).abs().max().item()
    return {
        "N": n, "dtype": dtype, "ratio": statistics.median(ratios), "ratios": ratios, "target": target,
        "torch_matmul_s": statistics.median(t_torch), "fastmm_s": statistics.median(t_fast),
        "plan": {"algorithm": algorithm, "schedule": schedule, "basis": basis or "standard", "levels": lv,
                 "cutoff": 1,
                 "candidates": [{"algorithm": c[1], "schedule": c[2], "basis": c[3] or "standard", "levels": c[4],
                                 "seconds": c[0]} for c in candidates]},
        "split": split(mm, a, b), "max_abs_error_vs_fp64": err,
        "threads": torch.get_num_threads(), "fused_kernel": cpu_fused.native_reason() or "native (kernels._cpu_fused)",
        "torch": torch.__version__, "fastmm": fastmm.__version__, "python": platform.python_version(),
        "cpu": _cpu(), "load_avg_1min": os.getloadavg()[0],
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": f"A-B-A median of {rounds} rounds, same process; plan = fastest candidate after one warm-up",
    }


_RESULTS: list[dict] = []


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    if _RESULTS:
        path = Path(os.environ.get("FASTMM_BENCH_CPU_JSON") or
                    RESULTS / f"cpu-bench-{datetime.date.today().isoformat()}.json")
        path.write_text(json.dumps(_RESULTS, indent=1) + "\n")


@pytest.mark.parametrize("n,dtype", _rows(), ids=lambda v: str(v))
def test_cpu_ratio(benchmark, fastmm_rounds, n, dtype):
    rounds = max(3, int(os.environ.get("FASTMM_BENCH_CPU_ROUNDS", fastmm_rounds)))
    box = {}
    benchmark.group = f"cpu N={n} {dtype}"
    benchmark.pedantic(lambda: box.update(measure(n, dtype, rounds)), rounds=1, iterations=1)
    row = box
    benchmark.extra_info.update(row)
    _RESULTS.append(row)
    sp = row["split"]
    print(f"\nN={n} {dtype}: ratio {row['ratio']:.3f} (torch.matmul {row['torch_matmul_s']:.3f} s, fastmm "
          f"{row['fastmm_s']:.3f} s; plan {row['plan']['algorithm']} {row['plan']['schedule']} "
          f"{row['plan']['basis']} basis, {row['plan']['levels']} level(s); split: products {sp['products_s']:.3f} s, "
          f"combinations {sp['combinations_s']:.3f} s, transforms {sp['transforms_s']:.3f} s; "
          f"{row['threads']} threads, load {row['load_avg_1min']:.1f})")
    tol = {"float32": 1e-2, "float64": 1e-9}[dtype] * n ** 0.5  # error grows ~sqrt(K)·levels; generous
    assert row["max_abs_error_vs_fp64"] < tol
    if row["target"] is not None:
        assert row["ratio"] >= row["target"], f"N={n} {dtype}: {row['ratio']:.3f} < target {row['target']}"
