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

A backend's schedule may keep some of that traffic out of memory (a fused GEMM forms its operand
sums in its tile loads): the backend declares it (``Backend.traffic``, a ``CombinationTraffic``
per schedule) and the planner passes it here, so this module names no backend. A batch of B
products costs B times one (the torch backend runs a batch as batched GEMMs and additions over
the whole batch: per-op overhead is paid once, but it is negligible at the sizes planned).

An alternative-basis plan (``Plan.basis``; docs/altbasis.md) is priced by the same terms: its
core <Uc, Vc, Wc> in place of U, V, W at every level (same rank and leaf GEMMs, fewer block
additions), plus, once per level, the transforms Φ on a, Ψ on b and Υ⁻¹ on c as the passes their
rendered linear-map programs make over the whole operand (``compiler.ir.linmap``: out of place
at the first level, in place below; ``_transform_blocks``), at the same ``bandwidth`` and
``op_overhead`` — O(N²) traffic per level, no constant of its own.

The vendor plan is one GEMM of the whole product. Numbers are per device and dtype: measured on
the machine itself on first use (``fastmm.calibrate``, cached per device and versions), or,
where calibration is off or not yet run, the defaults below, which come from one development
machine (``CPU_DEFAULT``) or a datasheet (``CUDA_DEFAULT``). ``DeviceCost.measured`` says which.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from compiler.algebra.factors import Factorization
from compiler.codegen.backends import MATERIALIZED_TRAFFIC, CombinationTraffic
from fastmm.plans import Plan


@dataclass(frozen=True)
class DeviceCost:
    """Speed numbers for one device and dtype; ``measured`` names the fields measured on this
    machine (``fastmm.calibrate``), the others being built-in defaults."""

    peak_flops: float     # GEMM flop/s on large square operands
    half_size: float      # GEMM dimension at which the GEMM reaches half of peak_flops
    bandwidth: float      # bytes/s of the combination kernels (reads + writes counted)
    op_overhead: float    # seconds of fixed cost per torch op (dispatch, launch)
    measured: tuple[str, ...] = ()
    source: str = "built-in default"   # where the measured fields come from

    FIELDS = ("peak_flops", "half_size", "bandwidth", "op_overhead")

    def describe(self) -> str:
        parts = []
        for name, unit, scale in (("peak_flops", "GFLOP/s", 1e-9), ("half_size", "", 1.0),
                                  ("bandwidth", "GB/s", 1e-9), ("op_overhead", "µs", 1e6)):
            tag = "measured" if name in self.measured else "default"
            parts.append(f"{name}={getattr(self, name) * scale:.4g}{(' ' + unit) if unit else ''} ({tag})")
        return ", ".join(parts) + f"; {self.source}"

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
    return _combination_blocks(f.U, f.V, f.W)


def _combination_blocks(U, V, W) -> tuple[float, float, float, int]:
    def nnz_cols(M: np.ndarray) -> np.ndarray:
        return (np.asarray(M) != 0).sum(axis=0)
    nu, nv = nnz_cols(U), nnz_cols(V)
    nw = (np.asarray(W) != 0).sum(axis=1)
    ta = float(sum(k + 1 for k in nu if k > 1))
    tb = float(sum(k + 1 for k in nv if k > 1))
    tc = float(sum(k + 1 for k in nw))
    ops = int((nu > 1).sum() + (nv > 1).sum() + max(int(nw.sum()) - len(nw), 0))
    return ta, tb, tc, ops


def _map_blocks(lm) -> tuple[float, int]:
    """(blocks moved, ops) of one pass of a linear-map program over its slots: an out-of-place step
    reads its terms and writes its slot; an in-place one also reads the slot's old value, and a
    scale other than ±1-with-a-unit-term (``emit_altbasis.linear_ops``' one-pass subtraction) is one
    more read-write pass."""
    moved, ops = 0.0, 0
    for st in lm.steps:
        moved += len(st.terms) + 1 + (1 if lm.inplace else 0)
        ops += max(len(st.terms) - (0 if lm.inplace else 1), 1)
        if lm.inplace and st.scale not in (1, -1):
            moved, ops = moved + 2, ops + 1
    return moved, ops


_ALT_TERMS: dict[str, tuple] = {}


def _altbasis_terms(alt) -> tuple:
    """For an ``AltBasis``: the core's combination blocks (as ``_traffic_blocks``) and, per side
    (a, b, c), the transform's (blocks moved, ops) at the first level and at each deeper one."""
    hit = _ALT_TERMS.get(alt.digest)
    if hit is None:
        from compiler.ir import linmap
        sides = tuple((_map_blocks(linmap.out_of_place(T)), _map_blocks(linmap.in_place(T)))
                      for T in (alt.phi, alt.psi, alt.upsilon_inv))
        hit = _ALT_TERMS[alt.digest] = (_combination_blocks(alt.Uc, alt.Vc, alt.Wc), sides)
    return hit


def plan_time(plan: Plan, n: int, k: int, p: int, cost: DeviceCost, itemsize: int, batch: int = 1,
              traffic: CombinationTraffic = MATERIALIZED_TRAFFIC, alt=None) -> float:
    """Predicted seconds for ``plan`` on ``batch`` products of shape (n, k, p); ``traffic``: the
    share of the combination traffic the plan's backend declares for its schedule; ``alt``: the
    ``AltBasis`` of an alternative-basis plan (``Plan.basis``), whose core and transforms are priced."""
    if plan.is_vendor or plan.factorization is None:
        return batch * cost.gemm_time(n, k, p)
    f = plan.factorization
    n0, m0, p0 = f.shape
    total = 0.0
    if alt is None:
        ta, tb, tc, ops = _traffic_blocks(f)
    else:
        (ta, tb, tc, ops), sides = _altbasis_terms(alt)
        # every level's transform moves its blocks over the whole operand: (n0·m0)^(l-1) groups of
        # blocks of size n/n0^l × k/m0^l, i.e. n·k/(n0·m0) elements per block step
        units = (n * k / (n0 * m0), k * p / (m0 * p0), n * p / (n0 * p0))
        for level in range(plan.levels):
            for (outer, inner), unit in zip(sides, units):
                moved, steps = outer if level == 0 else inner
                total += moved * unit * itemsize / cost.bandwidth + steps * cost.op_overhead
    dn, dk, dp = float(n), float(k), float(p)
    for level in range(plan.levels):
        subproblems = f.rank ** level
        bn, bk, bp = dn / n0, dk / m0, dp / p0
        if level == plan.levels - 1:
            sa, sb, sc = traffic.a, traffic.b, traffic.c
        else:
            sa = sb = sc = traffic.upper
        moved = sa * ta * bn * bk + sb * tb * bk * bp + sc * tc * bn * bp
        total += subproblems * (moved * itemsize / cost.bandwidth + ops * cost.op_overhead)
        dn, dk, dp = bn, bk, bp
    total += f.rank ** plan.levels * cost.gemm_time(dn, dk, dp)
    return batch * total
