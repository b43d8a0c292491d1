"""The numerical stability factor of a bilinear algorithm (Ballard, Benson, Druinsky, Lipshitz and
Schwartz, "Improving the numerical stability of fast matrix multiplication", SIMAX 2016).

For one level with factors U, V, W the error bound of the computed product grows with

    e = max_q  Σ_r |W[q, r]| · ‖U[:, r]‖₁ · ‖V[:, r]‖₁

(q runs over the output blocks): how many a·b terms, counted with their coefficients, feed one
output block through the products. For 0/±1 coefficients this is the count of nonzeros that the
paper uses; it gives Strassen 12 and Winograd's variant 18 (the paper's check values, tested), and
the classical algorithm m (the inner block dimension). ``L`` levels of the same algorithm multiply
the factor: ``e^L``.

Public API: ``stability_factor(f) -> Fraction``, ``stability_vector(f)`` (one entry per output
block), ``stability_levels(f, L)``.
"""

from __future__ import annotations

from fractions import Fraction

from compiler.factors import Factorization


def _col_norms(arr) -> list[Fraction]:
    rows, R = arr.shape
    return [sum((abs(Fraction(arr[k, r])) for k in range(rows)), Fraction(0)) for r in range(R)]


def stability_vector(f: Factorization) -> list[Fraction]:
    """``e_q = Σ_r |W[q,r]| ‖U_r‖₁ ‖V_r‖₁`` for every output block q (row-major)."""
    f.require_real()
    nu, nv = _col_norms(f.U), _col_norms(f.V)
    weight = [nu[r] * nv[r] for r in range(f.rank)]
    rows = f.W.shape[0]
    return [sum((abs(Fraction(f.W[q, r])) * weight[r] for r in range(f.rank) if f.W[q, r] != 0), Fraction(0))
            for q in range(rows)]


def stability_factor(f: Factorization) -> Fraction:
    """The stability factor ``e = max_q e_q`` of one level (exact)."""
    return max(stability_vector(f))


def stability_levels(f: Factorization, levels: int) -> Fraction:
    """The factor of ``levels`` levels of ``f``: ``e^levels``."""
    return stability_factor(f) ** levels
