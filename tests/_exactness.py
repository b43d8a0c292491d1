"""When float results of an exact algorithm on small integers must be bit-exact, and the random
unimodular matrices (exact changes of basis) that the property tests draw.

Every value a kernel stores is an integer when the algorithm's coefficients and the data are
integers (fastmm's CSE keeps temporaries integral); it is then exact in a float format as long as
its magnitude stays within the format's integer range (2**24 fp32, 2**53 fp64, 2**11 fp16)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

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


def unimodular(n: int, *, steps: int | None = None, multiplier: int = 3,
               bound: int | None = None) -> st.SearchStrategy[np.ndarray]:
    """Hypothesis strategy of integer n×n matrices of determinant ±1 (object dtype, exact): up to
    ``steps`` (default max(6, 3n)) elementary row operations M[i] += k·M[j], |k| <= ``multiplier``,
    each kept only while no entry leaves [-bound, bound] (None: unbounded), then a row negated or
    not (determinant −1) and the rows permuted. The one generator of every property test that
    changes bases (``random_unimodular`` is its seeded twin for loops outside hypothesis)."""
    most = max(6, 3 * n) if steps is None else steps

    @st.composite
    def matrices(draw) -> np.ndarray:
        M = np.eye(n, dtype=object)
        for _ in range(draw(st.integers(0, most))):
            if n == 1:
                break
            i, j = draw(st.permutations(range(n)))[:2]
            row = M[i] + draw(st.integers(-multiplier, multiplier)) * M[j]
            if bound is None or max(abs(int(x)) for x in row) <= bound:
                M[i] = row
        if draw(st.booleans()):
            M[0] = -M[0]
        return M[draw(st.permutations(range(n)))]

    return matrices()
