"""How much accuracy a fast plan may cost, per dtype, and how much a plan is predicted to cost.

A bilinear algorithm adds blocks before and after the block products; those additions grow the
rounding error. The normwise bound for one level (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., §23.2.2; Bini & Lotti 1980) is driven by the **stability factor**

    e(f) = max over outputs (i,k) of  Σ_r |W[ik, r]| · ‖U[:, r]‖₁ · ‖V[:, r]‖₁

which for the classical <n,m,p> algorithm equals m (one term per inner index). We predict the
error of L levels relative to torch.matmul's own error as

    growth(f, L) = (e(f) / m) ** L

(Strassen: e = 12, m = 2, growth 6 per level; Winograd's variant 18/2 = 9; Laderman 3x3x3:
computed from the factors). This is a worst-case model: on random data the measured ratio of
the fast plan's error to torch.matmul's error is well below it (tests/test_planner.py checks
that the prediction is an upper bound on random inputs, bench/bench_matmul.py reports the
measured ratios).

The planner refuses a plan whose predicted growth exceeds ``MAX_ERROR_GROWTH[dtype]``: the
number of low-order bits the user agrees to give up, chosen so that the result keeps at least
about two thirds of the dtype's significand:

| dtype | significand bits | max growth | bits kept at worst |
| --- | --- | --- | --- |
| float64 | 53 | 2**12 | 41 |
| float32 | 24 | 2**8  | 16 |
| float16 | 11 | 2**4  | 7  |
| bfloat16 | 8 | 2**3  | 5  |

With these, Strassen runs up to 4 levels in fp64, 3 in fp32, 1 in fp16/bf16.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import torch

from compiler.algebra.factors import Factorization

MAX_ERROR_GROWTH: dict[torch.dtype, float] = {
    torch.float64: 2.0 ** 12,
    torch.float32: 2.0 ** 8,
    torch.float16: 2.0 ** 4,
    torch.bfloat16: 2.0 ** 3,
}


def unit_roundoff(dtype: torch.dtype, precision: str = "highest") -> float:
    """Unit roundoff of the arithmetic torch.matmul uses for ``dtype`` under ``precision``."""
    if dtype == torch.float32 and precision != "highest":
        return 2.0 ** -11                    # TF32 (10 explicit mantissa bits) or bf16-class
    return float(torch.finfo(dtype).eps) / 2


@functools.lru_cache(maxsize=256)
def stability_factor(f: Factorization) -> Fraction:
    """Bini–Lotti / Higham stability factor e(f), computed exactly."""
    U, V, W = (np.vectorize(lambda x: abs(Fraction(x)), otypes=[object])(M) for M in (f.U, f.V, f.W))
    col = [sum(U[:, r]) * sum(V[:, r]) for r in range(f.rank)]
    return max(sum(W[row, r] * col[r] for r in range(f.rank)) for row in range(W.shape[0]))


def error_growth(f: Factorization, levels: int) -> float:
    """Predicted ratio of an L-level plan's error to the classical algorithm's error."""
    m = f.shape[1]
    return float(stability_factor(f) / m) ** levels


def within_bound(f: Factorization, levels: int, dtype: torch.dtype) -> bool:
    return error_growth(f, levels) <= MAX_ERROR_GROWTH.get(dtype, 1.0)


def relative_error(c: torch.Tensor, ref: torch.Tensor) -> float:
    """Normwise relative error ‖c − ref‖_F / ‖ref‖_F, computed in float64."""
    ref64 = ref.to(torch.float64)
    den = torch.linalg.vector_norm(ref64).item()
    num = torch.linalg.vector_norm(c.to(torch.float64) - ref64).item()
    return num / den if den else num
