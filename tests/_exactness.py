"""When float results of an exact algorithm on small integers must be bit-exact.

Every value a kernel stores is an integer when the algorithm's coefficients and the data are
integers (fastmm's CSE keeps temporaries integral); it is then exact in a float format as long as
its magnitude stays within the format's integer range (2**24 fp32, 2**53 fp64, 2**11 fp16)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

EXACT_INTEGERS = {"float16": 2 ** 11, "float32": 2 ** 24, "float64": 2 ** 53}


def colnorm(a) -> int:
    """Largest column L1 norm of an exact factor matrix."""
    return int(max(sum(abs(Fraction(x)) for x in col) for col in np.asarray(a).T))


def stored_bound(f, levels: int, K: int, e: int, outputs: bool = False) -> int:
    """Largest magnitude any stored intermediate can reach with |entries| <= e.

    A level-l operand sums at most colnorm(U)^l inputs; a product at depth l has inner size
    ceil(K / m^l). ``outputs``: also bound the c-side partial sums (a product times colnorm(W)^l)."""
    cu, cv, cw = colnorm(f.U), colnorm(f.V), (colnorm(f.W) if outputs else 1)
    m = f.shape[1]
    return max(math.ceil(K / m ** l) * e * e * (cu * cv * cw) ** l for l in range(levels + 1))


def random_unimodular(rng: np.random.Generator, n: int, bound: int, step: int = 5) -> np.ndarray:
    """An integer n×n matrix of determinant 1 with entries in [-bound, bound]: 4n random row
    operations M[i] += k·M[j] (|k| <= step), each kept only while no entry leaves the bound."""
    M = np.eye(n, dtype=object)
    for _ in range(4 * n):
        if n == 1:
            break
        i, j = rng.choice(n, 2, replace=False)
        row = M[i] + int(rng.integers(-step, step + 1)) * M[j]
        if max(abs(int(x)) for x in row) <= bound:
            M[i] = row
    return M
