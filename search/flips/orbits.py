"""Orbit rows under σ (the cyclic symmetry (x, y, z) -> (zᵀ, x, yᵀ) of the square matmul tensor):
a transpose table for σ on bitmasks, the images of a row, removing an orbit, the σ-fixed test.

An orbit k is rows 3k, 3k+1, 3k+2 (a row r and its images σr, σ²r). These are the orbit walk's
primitives; they live below ``search.flips.kernel`` because the one settle loop and the one walk
loop there (``kernel._settle_loop``, ``kernel._walk_loop``) handle orbits as well as rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO = np.uint64(0)


def transpose_table(n: int) -> np.ndarray:
    """Per byte of a bitmask, the transposed bits it contributes: ``tr(x) = OR_b T[b, byte_b(x)]``."""
    nb = (n * n + 7) // 8
    T = np.zeros((max(nb, 1), 256), np.uint64)
    for b in range(nb):
        for v in range(256):
            out = 0
            for bit in range(8):
                a = 8 * b + bit
                if a < n * n and (v >> bit) & 1:
                    i, j = divmod(a, n)
                    out |= 1 << (j * n + i)
            T[b, v] = np.uint64(out)
    return T


@njit(cache=True, inline="always")
def _tr(x, table):
    if x == _ZERO:  # every N factor mod 2
        return _ZERO
    out = _ZERO
    for b in range(table.shape[0]):
        out |= table[b, (x >> np.uint64(8 * b)) & np.uint64(255)]
    return out


@njit(cache=True)
def _regen(P, N, r, table):
    """Rewrite the two other rows of r's orbit as σr = (zᵀ, x, yᵀ) and σ²r = (y, zᵀ, xᵀ)."""
    base = r - r % 3
    j1 = base + (r % 3 + 1) % 3
    j2 = base + (r % 3 + 2) % 3
    xp, xn, yp, yn = P[r, 0], N[r, 0], P[r, 1], N[r, 1]
    ztp, ztn = _tr(P[r, 2], table), _tr(N[r, 2], table)
    P[j1, 0], N[j1, 0] = ztp, ztn
    P[j1, 1], N[j1, 1] = xp, xn
    P[j1, 2], N[j1, 2] = _tr(yp, table), _tr(yn, table)
    P[j2, 0], N[j2, 0] = yp, yn
    P[j2, 1], N[j2, 1] = ztp, ztn
    P[j2, 2], N[j2, 2] = _tr(xp, table), _tr(xn, table)


@njit(cache=True)
def _remove_orbit(P, N, R, k, watch):
    """Drop orbit k (rows 3k..3k+2); the last orbit moves into its rows. Returns the new R."""
    last = R - 3
    for e in range(3):
        for t in range(3):
            P[3 * k + e, t] = P[last + e, t]
            N[3 * k + e, t] = N[last + e, t]
            P[last + e, t] = _ZERO
            N[last + e, t] = _ZERO
    for w in range(watch.shape[0]):
        x = watch[w]
        if x < 0:
            continue
        if x // 3 == k:
            watch[w] = -1
        elif x >= last:
            watch[w] = 3 * k + (x - last)
    return last


@njit(cache=True)
def _is_fixed(P, N, r, table):
    """σ(term r) == term r, i.e. the term is (x, x, xᵀ)."""
    return (P[r, 1] == P[r, 0] and N[r, 1] == N[r, 0]
            and P[r, 2] == _tr(P[r, 0], table) and N[r, 2] == _tr(N[r, 0], table))
