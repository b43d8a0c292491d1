"""Factorization <-> bitmask terms for the compiled walk (one uint64 per factor and sign).

Slot 0 of term r is column r of U (bit a set when U[a, r] ≠ 0), slot 1 the column of V, slot 2
the column of W; ``P`` marks entries +1, ``N`` entries −1 (ternary walk), and over Z2 only ``P``
is used. Rows are at most 64 per factor (every block shape with n·m, m·p, n·p ≤ 64).
"""

from __future__ import annotations

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance

FIELDS = ("Z", "Z2")  # the walk's fields: ternary coefficients valid over Z, or arithmetic mod 2


def factorization_field(field: str) -> str:
    """The ``Factorization.field`` a walk field produces: ternary schemes are valid over Q."""
    return "Z2" if field == "Z2" else "Q"


def encode(f: Factorization, field: str, capacity: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(P, N, R)`` for ``f``; ``capacity`` rows (≥ rank) leave room for plus transitions."""
    if field not in FIELDS:
        raise FactorizationError(f"walk field must be one of {FIELDS}, got {field!r}")
    n, m, p = f.shape
    if max(n * m, m * p, n * p) > 64:
        raise FactorizationError(f"{f.shape_str}: a factor has more than 64 entries; the bitmask walk holds 64")
    if not f.is_integral:
        raise FactorizationError(f"{f.label()} has fractional coefficients; the flip walk needs {{-1,0,1}} or Z2")
    if field == "Z" and f.field == "Z2":
        raise FactorizationError(f"{f.label()} is valid only mod 2: walk it with field Z2 (or lift it first)")
    R = f.rank
    cap = max(capacity or 0, R + 1)
    P = np.zeros((cap, 3), np.uint64)
    N = np.zeros((cap, 3), np.uint64)
    for t, A in enumerate((f.U, f.V, f.W)):
        A = np.mod(A, 2) if field == "Z2" else np.asarray(A)
        if field == "Z" and np.abs(A).max(initial=0) > 1:
            raise FactorizationError(f"{f.label()} has coefficients outside {{-1,0,1}}: the ternary walk cannot hold it")
        w = (np.uint64(1) << np.arange(A.shape[0], dtype=np.uint64))[:, None]
        P[:R, t] = ((A == 1).astype(np.uint64) * w).sum(axis=0, dtype=np.uint64)
        N[:R, t] = ((A == -1).astype(np.uint64) * w).sum(axis=0, dtype=np.uint64)
    return P, N, R


def _unpack(P: np.ndarray, N: np.ndarray, R: int, t: int, rows: int) -> np.ndarray:
    bits = np.uint64(1) << np.arange(rows, dtype=np.uint64)
    pos = (P[:R, t][None, :] & bits[:, None]) != 0
    neg = (N[:R, t][None, :] & bits[:, None]) != 0
    return pos.astype(np.int64) - neg.astype(np.int64)


def decode(P: np.ndarray, N: np.ndarray, R: int, shape: tuple[int, int, int], field: str,
           name: str = "", provenance: Provenance | None = None) -> Factorization:
    n, m, p = shape
    U, V, W = (_unpack(P, N, R, t, rows) for t, rows in enumerate((n * m, m * p, n * p)))
    return Factorization(shape, U, V, W, factorization_field(field), name, provenance or Provenance())
