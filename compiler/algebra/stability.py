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

import math

import numpy as np

from compiler.algebra.factors import Factorization


def _scaled_abs(arr) -> tuple[np.ndarray, int]:
    """``(|arr|·d, d)`` as an integer array (int64, or Python ints when large): exact.

    Reads numerators and denominators directly (no ``Fraction`` hashing or arithmetic per entry:
    ``scaled_integers`` took 0.5 s per factor matrix of <11,12,12;990>)."""
    a = np.asarray(arr)
    if a.dtype != object:
        return np.abs(a.astype(np.int64)), 1
    flat = a.ravel()
    nz = np.flatnonzero(flat != 0)  # factor matrices are mostly zeros: convert the nonzeros only
    vals = flat[nz].tolist()
    d = math.lcm(*{int(v.denominator) for v in vals})
    ints = [abs(int(v.numerator)) * (d // int(v.denominator)) for v in vals]
    big = max(ints, default=0) >= 2**62
    out = np.zeros(flat.shape, dtype=object if big else np.int64)
    out[nz] = ints
    return out.reshape(a.shape), d


def stability_vector(f: Factorization) -> list[Fraction]:
    """``e_q = Σ_r |W[q,r]| ‖U_r‖₁ ‖V_r‖₁`` for every output block q (row-major).

    Exact, and vectorised: the factors are scaled to integers (AlphaTensor's dyadic coefficients
    become integers over one common denominator per matrix), summed with numpy, and divided once
    (per-coefficient ``Fraction`` arithmetic took 1.5 s on <11,12,12;990>)."""
    f.require_real()
    (U, du), (V, dv), (W, dw) = (_scaled_abs(x) for x in (f.U, f.V, f.W))
    weight = U.sum(axis=0) * V.sum(axis=0)  # Σ|U| · Σ|V| per product, scaled by du·dv
    if max(int(weight.max(initial=0)), 1) * max(int(W.max(initial=0)), 1) * f.rank >= 2**62:
        weight, W = weight.astype(object), W.astype(object)  # exact Python ints past int64
    e = W.dot(weight)
    d = du * dv * dw
    return [Fraction(int(x), d) for x in e.tolist()]


def stability_factor(f: Factorization) -> Fraction:
    """The stability factor ``e = max_q e_q`` of one level (exact)."""
    return max(stability_vector(f))


def stability_levels(f: Factorization, levels: int) -> Fraction:
    """The factor of ``levels`` levels of ``f``: ``e^levels``."""
    return stability_factor(f) ** levels
