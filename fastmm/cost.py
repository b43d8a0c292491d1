"""A cost model that ranks plans without running them.

A plan with L levels of an <n0,m0,p0; R> factorization on an (N, K, P) product does

* R**L leaf GEMMs of size (N/n0**L, K/m0**L, P/p0**L), each costing
  ``2·n·k·p / (peak · eff(min(n, k, p))) + op_overhead`` with ``eff(d) = d / (d + half_size)``
  (GEMM libraries reach their peak only on large operands; ``half_size`` is the dimension at
  which they reach half of it);
* at each level l < L, for each of the R**l sub-problems, the block additions, priced as memory
  traffic at ``bandwidth``: a combination of k > 1 blocks reads k blocks and writes one, a
  single-block combination is a free view, and every output block reads its terms and is
  written once (``_traffic_blocks``). Every elementwise op also pays ``op_overhead``.

The vendor plan is one GEMM of the whole product. Numbers are per device kind and dtype; the
defaults below were measured on the development machine (see ``CPU_DEFAULT``), and
``calibrate()`` measures them on the current machine (``fastmm.tune`` uses it).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from compiler.algebra.factors import Factorization
from fastmm.plans import Plan


@dataclass(frozen=True)
class DeviceCost:
    """Calibrated speed numbers for one device kind and dtype."""

    peak_flops: float     # GEMM flop/s on large square operands
    half_size: float      # GEMM dimension at which the GEMM reaches half of peak_flops
    bandwidth: float      # bytes/s of an out-of-place elementwise add (2 reads + 1 write counted)
    op_overhead: float    # seconds of fixed cost per torch op (dispatch, launch)

    def gemm_time(self, n: float, k: float, p: float) -> float:
        d = min(n, k, p)
        if d <= 0:
            return self.op_overhead
        return 2.0 * n * k * p / (self.peak_flops * d / (d + self.half_size)) + self.op_overhead


# Measured on the development machine (2 shared cores of an AVX2 x86 CPU, MKL through
# torch 2.13.0+cpu, 2 threads; 2026-11-25; /tmp probe, median of 5–20 runs under load from
# other users): fp32 GEMM 61–77 GFLOP/s at N = 1024–2048, 83 GFLOP/s at 4096; fp64 28–37
# GFLOP/s at 1024–2048; torch.add(out=) over 4096² fp32 12.6 GB/s, fp64 16.7 GB/s; a
# torch.matmul call on 8×8 costs 1.9 µs. The fit eff(d) = d/(d+256) reproduces the GEMM rates
# within the run-to-run noise (±20 %).
CPU_DEFAULT = {
    torch.float32: DeviceCost(peak_flops=85e9, half_size=256, bandwidth=12.5e9, op_overhead=5e-6),
    torch.float64: DeviceCost(peak_flops=40e9, half_size=256, bandwidth=16e9, op_overhead=5e-6),
    # CPU half-precision GEMMs in torch are not MKL-fast: priced from the fp32 figures halved.
    torch.float16: DeviceCost(peak_flops=20e9, half_size=256, bandwidth=12.5e9, op_overhead=5e-6),
    torch.bfloat16: DeviceCost(peak_flops=40e9, half_size=256, bandwidth=12.5e9, op_overhead=5e-6),
}

# Published H100 SXM figures (NVIDIA H100 datasheet: 67 TFLOP/s fp32 non-tensor, 989 TFLOP/s
# dense fp16/bf16 tensor cores, 67 TFLOP/s fp64 tensor core, 3.35 TB/s HBM3), derated to the
# ~70 % cuBLAS reaches in practice; not measured here (no GPU on the development machine).
CUDA_DEFAULT = {
    torch.float32: DeviceCost(peak_flops=47e12, half_size=2048, bandwidth=2.5e12, op_overhead=8e-6),
    torch.float64: DeviceCost(peak_flops=47e12, half_size=2048, bandwidth=2.5e12, op_overhead=8e-6),
    torch.float16: DeviceCost(peak_flops=690e12, half_size=4096, bandwidth=2.5e12, op_overhead=8e-6),
    torch.bfloat16: DeviceCost(peak_flops=690e12, half_size=4096, bandwidth=2.5e12, op_overhead=8e-6),
}


def default_cost(device_type: str, dtype: torch.dtype) -> DeviceCost:
    table = CUDA_DEFAULT if device_type == "cuda" else CPU_DEFAULT
    return table.get(dtype, table[torch.float32])


@functools.lru_cache(maxsize=256)
def _traffic_blocks(f: Factorization) -> tuple[float, float, float, int]:
    """Blocks moved per level: (a-side, b-side, c-side) in block units, and the number of ops."""
    def nnz_cols(M: np.ndarray) -> np.ndarray:
        return (M != 0).sum(axis=0)
    nu, nv = nnz_cols(f.U), nnz_cols(f.V)
    nw = (f.W != 0).sum(axis=1)
    ta = float(sum(k + 1 for k in nu if k > 1))
    tb = float(sum(k + 1 for k in nv if k > 1))
    tc = float(sum(k + 1 for k in nw))
    ops = int((nu > 1).sum() + (nv > 1).sum() + max(int(nw.sum()) - len(nw), 0))
    return ta, tb, tc, ops


def plan_time(plan: Plan, n: int, k: int, p: int, cost: DeviceCost, itemsize: int, batch: int = 1) -> float:
    """Predicted seconds for ``plan`` on ``batch`` products of shape (n, k, p)."""
    if plan.is_vendor or plan.factorization is None:
        return batch * cost.gemm_time(n, k, p)
    f = plan.factorization
    n0, m0, p0 = f.shape
    ta, tb, tc, ops = _traffic_blocks(f)
    total = 0.0
    dn, dk, dp = float(n), float(k), float(p)
    for level in range(plan.levels):
        subproblems = f.rank ** level
        bn, bk, bp = dn / n0, dk / m0, dp / p0
        ta_l, tb_l, tc_l = ta, tb, tc
        if level == plan.levels - 1 and plan.backend == "triton" and plan.schedule in ("fused_operands", "fused"):
            # the bottom level's operand sums are formed in the GEMM's tile loads, and "fused" adds
            # W[q,r]·acc into the c-blocks in its epilogue: that traffic never goes through memory
            ta_l = tb_l = 0.0
            tc_l = 0.0 if plan.schedule == "fused" else tc
        moved = ta_l * bn * bk + tb_l * bk * bp + tc_l * bn * bp
        total += subproblems * (moved * itemsize / cost.bandwidth + ops * cost.op_overhead)
        dn, dk, dp = bn, bk, bp
    total += f.rank ** plan.levels * cost.gemm_time(dn, dk, dp)
    return batch * total


def calibrate(device: torch.device | str, dtype: torch.dtype, size: int = 1024, reps: int = 3) -> DeviceCost:
    """Measure this device's numbers (takes about a second on a CPU at the default size)."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def median_time(fn) -> float:
        fn()
        sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    base = default_cost(device.type, dtype)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty_like(a)
    t_big = median_time(lambda: torch.matmul(a, b))
    small = torch.randn(8, 8, device=device).to(dtype)
    t_small = median_time(lambda: torch.matmul(small, small))
    t_add = median_time(lambda: torch.add(a, b, out=out))
    rate = 2.0 * size ** 3 / max(t_big - t_small, 1e-12)
    peak = rate * (size + base.half_size) / size
    bandwidth = 3 * a.numel() * a.element_size() / max(t_add - t_small, 1e-12)
    return DeviceCost(peak_flops=peak, half_size=base.half_size, bandwidth=bandwidth, op_overhead=t_small)
