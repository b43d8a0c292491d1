"""Symmetric flip graph for square shapes <n,n,n> (Moosbauer & Poole 2025): Z3-invariant schemes.

With our convention (``c[i,k] = Σ_j a[i,j]·b[j,k]``, W not transposed) the matmul tensor as a
trilinear form is ``T(A, B, C) = trace(A·B·Cᵀ)``, and ``trace(A·B·Cᵀ) = trace(B·Cᵀ·A)`` makes the
map on rank-one terms

    σ(x ⊗ y ⊗ z) = zᵀ ⊗ x ⊗ yᵀ         (x, y, z read as n×n matrices; σ³ = id)

a symmetry of T: σ applied to every term of a scheme gives a scheme. A scheme is *invariant*
when σ permutes its terms: it is a set of orbits {t, σt, σ²t} and of fixed terms (x, x, xᵀ).
The naive algorithm is invariant: σ maps the product (i, j, k) to (k, i, j); i = j = k are its
n fixed terms and the other n³ − n products form (n³ − n)/3 orbits.

The walk holds the orbits in rows ``3k, 3k+1, 3k+2`` = (t_k, σt_k, σ²t_k) of the same bitmask
arrays as ``kernel`` and moves orbit by orbit, so that every scheme it visits is invariant:

- flip: a term r and a term s of another orbit that share a factor (up to sign) are flipped
  exactly as in ``kernel._flip``; the same flip on the images, (σr, σs) and (σ²r, σ²s), is
  implied, so both orbits are regenerated from the changed r and s (σ is linear, so the sum of
  every image pair is unchanged, and the orbits are disjoint, so the three flips commute);
- reduction: r agrees with a term q of another orbit in two slots: r absorbs q, the orbit of
  q goes (rank − 3); a factor of r vanishes: its orbit goes (rank − 3); over Z2, a term with
  σr = r makes its orbit three equal terms, 3t = t mod 2: the orbit becomes one fixed term
  (rank − 2, a *collapse*: the only move that changes the number of fixed terms, hence the rank
  mod 3; ``collapse=False`` skips it, and the search does so when the start already has the
  target's residue, since a collapsed lineage can never come back to it);
- plus transition: ``kernel._plus`` on terms of two orbits; the new term starts a new orbit
  (rank + 3).

The fixed terms are not moved (a flip of a fixed term with an orbit term is not invariant);
the orbit terms decompose T minus the fixed terms, and every identity above holds for that
tensor. So the fixed terms are chosen at the start: ``split_fixed`` (rank + 7, one more fixed
term) and ``merge_fixed`` (rank + 2, one fewer) rewrite them exactly. Moosbauer & Poole start
from *diagonal cubes*: the naive fixed terms (E_ii)^3 merged along a partition of the diagonal
(``diagonal_state``, CLI ``--cubes``); their <5,5,5> rank 93 has 3 fixed terms from the parts
{0,4}, {1,3}, {2} (their code and run files, github.com/jakobmoosbauer/symmetric-flips: 3 cubes,
a plus transition after 50 000 of their flips without a reduction, i.e. ~16 700 orbit flips,
plus transitions up to the start's rank, fresh runs of 100 M flips after each new best, "1 in 30
runs" reaching 93 at about 10 s per run in C++).

Flips are drawn from an index of the rows' slot-0 factors (``search.flips.valueindex``), and the
reductions after a flip are looked up there too, so a flip costs O(1) instead of O(rank).

Over Z2 the result is lifted along its orbits: ``orbit_tie`` gives the unknowns of an invariant
scheme (an orbit's representative, a fixed term's x), and ``search.lift.ternary_lift(tie=...)``
(signs) and ``hensel_lift(tie=...)`` keep the lift invariant; ``python -m search.run --lift``
tries those first and the plain lifts after them.

Measured on <5,5,5> mod 2 (one walker on core 1, seed 0; commands in the README): from naive
with one split (6 fixed terms) 105 at 753 s and no lower in 20 min, and that 105 did not lift;
from the 3-cube start with an O(rank) scan for partners, 99 at 233 s in 10 min; with the index
(1.1–1.7 M orbit flips per CPU-second) lineages reach 99 in 13 s and Poole's run settings
(``--fresh-resets``) in 21 s, and neither goes lower in 10 min; rank by rank with pools
(``symmetric_pool_search``) reaches 96 at 223 s, and in one hour (5.5 G flips) nothing lower (the
pools keep to few basins). Poole's run settings given more than 10 min reach 93 with every seed
tried: seeds 10–13, one core each, at 765, 639, 654 and 419 s, in their 25th, 23rd, 32nd and 17th
fresh lineage (about 25 s per lineage; the lineages before ended at 96–111, mostly 99–102), about
Poole's "1 in 30". All four 93s got ±1 signs along their orbits at once (two are in
``factors/5x5x5-flips.npz``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numba import njit

from compiler.algebra.factors import Factorization, FactorizationError, Provenance
from search.flips import kernel as K
from search.flips.encoding import FIELDS, factorization_field
from search.flips.valueindex import index_rebuild, index_sync, new_index, row_bucket, shared_count, shared_rows

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


@njit(cache=True)
def _sym_settle(P, N, R, watch, FP, FN, nf, mod2, table, collapse=True):
    """Reductions of the watched terms (see the module docs). Returns (R, number of fixed terms, reductions)."""
    hint = -np.ones(watch.shape[0], np.int64)
    near = -np.ones(watch.shape[0], np.int64)
    ix = np.zeros(1, np.int64)  # not read without hints
    return _sym_settle_hint(P, N, R, watch, hint, near, FP, FN, nf, mod2, table, ix, collapse)


@njit(cache=True)
def _sym_settle_hint(P, N, R, watch, hint, near, FP, FN, nf, mod2, table, ix, collapse=True):
    """``_sym_settle`` where ``hint[w]`` is the one slot of term ``watch[w]`` that changed (−1: unknown)
    and ``near[w]`` an orbit whose terms changed too (compared in full; −1: none).

    In a settled scheme (no two terms of different orbits agree in two slots) a term x whose slot
    h changed can newly agree in two slots with an unchanged term y only if y_h = ±x_h (x agrees
    with σy exactly when σ²x agrees with y, so the images need no check). Those y are found in
    the index ``ix`` (in sync with P, N): x_h is slot 0 of the row x' = σ^(3−h)x of x's orbit, and
    y = σ^h q for the rows q that share x'’s slot-0 factor. So most flips settle in O(1), not
    O(rank) (measured: the scan over all terms was most of the time per flip once draws were
    O(1)). After a reduction the index is stale and every term is compared in full.
    """
    reductions = 0
    changed = True
    while changed:
        changed = False
        for w in range(watch.shape[0]):
            x = watch[w]
            if x < 0:
                continue
            if K._is_zero_term(P, N, x):
                R = _remove_orbit(P, N, R, x // 3, watch)
                reductions += 1
                hint[:] = -1
                changed = True
                break
            if mod2 and collapse and _is_fixed(P, N, x, table):
                for t in range(3):
                    FP[nf, t] = P[x, t]
                    FN[nf, t] = N[x, t]
                nf += 1
                R = _remove_orbit(P, N, R, x // 3, watch)
                reductions += 1
                hint[:] = -1
                changed = True
                break
            ox = x // 3
            h = hint[w]
            c = R
            base = 0
            if h >= 0:
                c, base = row_bucket(ix, x - x % 3 + (x % 3 + 3 - h) % 3)
            for t in range(c + 3 if h >= 0 else R):
                if h < 0:
                    y = t
                    oy = y // 3
                    if oy == ox:
                        continue
                elif t < c:  # y = σ^h q: y_h = ±x_h
                    q = ix[base + t]
                    oy = q // 3
                    if oy == ox or oy == near[w]:
                        continue
                    y = 3 * oy + (q % 3 + h) % 3
                else:  # the near orbit, in full
                    oy = near[w]
                    y = 3 * oy + t - c
                    if oy < 0 or y >= R:
                        continue
                s0 = K._match(P, N, x, y, 0, mod2)
                s1 = K._match(P, N, x, y, 1, mod2)
                if s0 == 0 and s1 == 0:
                    continue
                s2 = K._match(P, N, x, y, 2, mod2)
                eq = (s0 != 0) + (s1 != 0) + (s2 != 0)
                if eq < 2:
                    continue
                if eq == 3:
                    if mod2 or s0 * s1 * s2 < 0:  # x + y == 0: both orbits cancel
                        oy = y // 3
                        hi, lo = (ox, oy) if ox > oy else (oy, ox)
                        R = _remove_orbit(P, N, R, hi, watch)
                        R = _remove_orbit(P, N, R, lo, watch)
                        reductions += 2
                        hint[:] = -1
                        changed = True
                        break
                    continue
                d = 0 if s0 == 0 else (1 if s1 == 0 else 2)
                sign = (s0 if d != 0 else 1) * (s1 if d != 1 else 1) * (s2 if d != 2 else 1)
                ok, np_, nn_ = K._add(P[x, d], N[x, d], P[y, d], N[y, d], sign, mod2)
                if not ok:
                    continue
                P[x, d] = np_
                N[x, d] = nn_
                R = _remove_orbit(P, N, R, y // 3, watch)
                x = watch[w]  # x's orbit may have moved into y's rows
                _regen(P, N, x, table)
                reductions += 1
                hint[:] = -1
                changed = True
                break
            if changed:
                break
    return R, nf, reductions


@njit(cache=True)
def _sym_flip(P, N, R, rng, mod2, ix):
    """A flip of two terms r, s of different orbits that share their slot-0 factor (up to sign):
    a shared factor is drawn from the index ``ix`` (search.flips.valueindex), then two of its rows.
    Returns (r, s, slot grown on r, slot shrunk on s), or −1s after 16 draws found no allowed pair.

    Slot 0 suffices: the flip of (r, s) on slot t gives the orbits of the flip of (σr, σs) on
    slot t + 1 (σ moves slot j to slot j + 1, transposing), and every factor of an orbit is slot 0
    of one of its rows. The draw is uniform over shared factors, then over pairs of their rows (as
    in Poole's solver), not over pairs of terms; it costs O(1) where a scan for partners cost
    O(rank) (measured, <5,5,5> mod 2 at rank 105: 0.66 M flips/s with the scan).
    """
    for _ in range(16):
        ns = shared_count(ix)
        if ns == 0:
            break
        c, base = shared_rows(ix, K._below(rng, ns))
        i = K._below(rng, c)
        j = K._below(rng, c - 1)
        if j >= i:
            j += 1
        r = ix[base + i]
        s = ix[base + j]
        if r // 3 == s // 3:
            continue
        sig = 1 if (mod2 or P[r, 0] == P[s, 0]) else -1  # same key: equal, or opposite
        u, v = K._flip_drawn(P, N, r, s, 0, sig, rng, mod2)  # orbits share slot 0
        if u >= 0:
            return r, s, u, v
    return -1, -1, -1, -1


@njit(cache=True)
def _sym_plus(P, N, R, rng, mod2, tries, table):
    """A plus transition (``kernel.plus_pair``) on terms of two orbits; the new term starts orbit
    R // 3 and the three changed orbits get their images. Returns (R, r, s, new)."""
    r, s, _u, _v = K.plus_pair(P, N, R, rng, mod2, tries, 3)
    if r < 0:
        return R, -1, -1, -1
    _regen(P, N, r, table)
    _regen(P, N, s, table)
    _regen(P, N, R, table)
    return R + 3, r, s, R


@njit(cache=True)
def _sym_plus_settled(P, N, R, rng, mod2, tries, table, watch, FP, FN, nf, ix, ik, collapse):
    """A plus transition, then the three changed orbits settled and the index rebuilt.
    Returns (R, nf, reductions, whether a plus was made)."""
    R2, r, s, nw = _sym_plus(P, N, R, rng, mod2, tries, table)
    if R2 == R:
        return R, nf, 0, False
    watch[0] = r
    watch[1] = s
    watch[2] = nw
    R, nf, red = _sym_settle(P, N, R2, watch, FP, FN, nf, mod2, table, collapse)
    index_rebuild(ix, ik, P, N, R, mod2)
    return R, nf, red, True


@njit(cache=True)
def sym_walk(P, N, R, FP, FN, nfix, mod2, stop_rank, max_flips, plateau, max_rank, rng, out, table, collapse=True):
    """``kernel.walk`` on the orbit part (R = 3·orbits rows); ``nfix[0]`` fixed terms in FP/FN.

    ``stop_rank`` and ``max_rank`` count the whole scheme (orbit rows + fixed terms). With
    ``collapse`` False the Z2 reduction of a σ-fixed orbit to one fixed term is not taken (it
    changes the rank mod 3: a walk aiming at a rank of the start's residue would leave it). Flips are
    drawn from an index of the rows' slot-0 factors, kept up to date row by row after a flip
    and rebuilt after a reduction or a plus transition (rare next to flips).
    """
    ix, ik = new_index(P.shape[0])
    index_rebuild(ix, ik, P, N, R, mod2)
    watch = np.empty(3, np.int64)
    hint = np.empty(3, np.int64)
    near = np.empty(3, np.int64)
    flips = 0
    attempts = 0
    reductions = 0
    plus = 0
    since = 0
    misses = 0
    nf = nfix[0]
    while R + nf > stop_rank and flips < max_flips and R > 0:
        attempts += 1
        r, s, u, v = _sym_flip(P, N, R, rng, mod2, ix)
        if r < 0:
            misses += 1
            if misses > 4 * R + 16:
                if R + nf + 3 <= max_rank:
                    R, nf, red, made = _sym_plus_settled(P, N, R, rng, mod2, 64, table, watch, FP, FN, nf,
                                                         ix, ik, collapse)
                    if made:
                        plus += 1
                        reductions += red
                        misses = 0
                        continue
                break
            continue
        misses = 0
        _regen(P, N, r, table)
        _regen(P, N, s, table)
        for k in range(3):
            index_sync(ix, ik, P, N, r - r % 3 + k, R, mod2)
            index_sync(ix, ik, P, N, s - s % 3 + k, R, mod2)
        flips += 1
        since += 1
        watch[0] = r
        watch[1] = s
        watch[2] = -1
        hint[0] = u
        hint[1] = v
        hint[2] = -1
        near[0] = s // 3
        near[1] = r // 3
        near[2] = -1
        R2, nf, red = _sym_settle_hint(P, N, R, watch, hint, near, FP, FN, nf, mod2, table, ix, collapse)
        if red > 0:
            reductions += red
            since = 0
            index_rebuild(ix, ik, P, N, R2, mod2)
        R = R2
        if since >= plateau and R + nf + 3 <= max_rank:
            R, nf, red, made = _sym_plus_settled(P, N, R, rng, mod2, 16, table, watch, FP, FN, nf, ix, ik, collapse)
            if made:
                plus += 1
            reductions += red
            since = 0
    nfix[0] = nf
    out[K.OUT_RANK] = R + nf
    out[K.OUT_FLIPS] = flips
    out[K.OUT_REDUCTIONS] = reductions
    out[K.OUT_PLUS] = plus
    out[K.OUT_ATTEMPTS] = attempts
    return R


# ---------------------------------------------------------------------------------------------
# Python side: the invariant naive start, invariance checks, decode, and the walker


def _bit(n: int, i: int, j: int) -> np.uint64:
    return np.uint64(1) << np.uint64(i * n + j)


@dataclass
class SymmetricState:
    """An invariant scheme in walk form: orbit rows (P, N)[:R] and fixed terms (FP, FN)[:nf]."""

    n: int
    P: np.ndarray
    N: np.ndarray
    R: int
    FP: np.ndarray
    FN: np.ndarray
    nf: int

    @property
    def rank(self) -> int:
        return self.R + self.nf

    def copy(self) -> "SymmetricState":
        return SymmetricState(self.n, self.P.copy(), self.N.copy(), self.R, self.FP.copy(), self.FN.copy(), self.nf)


def naive_state(n: int, field: str, capacity: int | None = None) -> SymmetricState:
    """The naive <n,n,n> algorithm as orbits (i, j, k) → (k, i, j) and the n fixed terms (i, i, i)."""
    if field not in FIELDS:
        raise FactorizationError(f"walk field must be one of {FIELDS}, got {field!r}")
    if n * n > 64:
        raise FactorizationError(f"<{n},{n},{n}>: a factor has more than 64 entries; the bitmask walk holds 64")
    cap = max(capacity or 0, n ** 3 + 30)
    cap += (-cap) % 3
    P = np.zeros((cap, 3), np.uint64)
    N = np.zeros((cap, 3), np.uint64)
    FP = np.zeros((cap, 3), np.uint64)
    FN = np.zeros((cap, 3), np.uint64)
    table = transpose_table(n)
    seen = set()
    R = 0
    for i in range(n):
        for j in range(n):
            for k in range(n):
                if (i, j, k) in seen or i == j == k:
                    continue
                seen.update({(i, j, k), (k, i, j), (j, k, i)})
                P[R] = (_bit(n, i, j), _bit(n, j, k), _bit(n, i, k))
                _regen(P, N, R, table)
                R += 3
    nf = 0
    for i in range(n):
        FP[nf] = (_bit(n, i, i), _bit(n, i, i), _bit(n, i, i))
        nf += 1
    return SymmetricState(n, P, N, R, FP, FN, nf)


def split_fixed(st: SymmetricState, idx: int, j: int, field: str) -> SymmetricState:
    """Split fixed term ``idx`` = (x, x, xᵀ), x = E_ii, with x = x1 + x2, x1 = E_ii + E_ij, x2 = −E_ij.

    Multilinearity gives (x, x, xᵀ) = Σ over (p, q, r) ∈ {x1, x2}³ of (p, q, rᵀ): the two terms
    with p = q = r are fixed, and (x1, x1, x2ᵀ), (x2, x1, x1ᵀ), (x1, x2, x1ᵀ) form one orbit
    (σ shifts (p, q, r) cyclically), as do the three with two x2: rank + 7, fixed terms + 1.
    The walk never moves fixed terms, so a scheme's rank stays ≡ (fixed terms) mod 3 (up to
    Z2 collapses); a split makes ranks of the other residue reachable (<5,5,5>: 5 fixed terms
    from naive give ranks ≡ 2 mod 3, one split gives 6 and ranks ≡ 0, like 93).
    """
    n = st.n
    st = st.copy()
    x = st.FP[idx, 0] | st.FN[idx, 0]
    i = int(x).bit_length() - 1
    i //= n + 1  # E_ii sits at bit i·n + i
    if st.FP[idx, 0] != _bit(n, i, i) or st.FN[idx, 0] != 0 or j == i:
        raise FactorizationError("split_fixed expects a naive fixed term (E_ii, E_ii, E_ii) and j != i")
    e_ii, e_ij, e_ji = _bit(n, i, i), _bit(n, i, j), _bit(n, j, i)
    z2 = field == "Z2"
    # signed vectors as (P, N): x1 = E_ii + E_ij, x2 = −E_ij (Z) or E_ij (Z2); transposes swap i, j
    x1 = (e_ii | e_ij, _ZERO)
    x1t = (e_ii | e_ji, _ZERO)
    x2 = (e_ij, _ZERO) if z2 else (_ZERO, e_ij)
    x2t = (e_ji, _ZERO) if z2 else (_ZERO, e_ji)
    st.FP[idx], st.FN[idx] = (x1[0], x1[0], x1t[0]), (x1[1], x1[1], x1t[1])
    st.FP[st.nf], st.FN[st.nf] = (x2[0], x2[0], x2t[0]), (x2[1], x2[1], x2t[1])
    st.nf += 1
    table = transpose_table(n)
    for a, b, c in ((x1, x1, x2t), (x2, x2, x1t)):
        st.P[st.R] = (a[0], b[0], c[0])
        st.N[st.R] = (a[1], b[1], c[1])
        _regen(st.P, st.N, st.R, table)
        st.R += 3
    return st


def merge_fixed(st: SymmetricState, a: int, b: int, field: str) -> SymmetricState:
    """Merge fixed terms ``a`` = (x, x, xᵀ) and ``b`` = (y, y, yᵀ) into one fixed term of x + y.

    Multilinearity gives (x+y, x+y, (x+y)ᵀ) = Σ over (p, q, r) ∈ {x, y}³ of (p, q, rᵀ); the six
    mixed terms are the σ-orbits of (x, x, yᵀ) and (x, y, yᵀ), whose sum is the orbit of
    (x, x+y, yᵀ) = (x, x, yᵀ) + (x, y, yᵀ) (σ is linear). Hence

        (x, x, xᵀ) + (y, y, yᵀ) = (x+y, x+y, (x+y)ᵀ) − orbit(x, x+y, yᵀ):

    rank + 2, fixed terms − 1, so the rank mod 3 moves by 2 (``split_fixed`` goes the other way
    by + 7). From the naive algorithm, merging the fixed terms (E_ii)^3 along a partition of the
    diagonal gives the *diagonal starting points* of Moosbauer & Poole, one fixed term per part
    (``diagonal_state``). The sign sits in slot 0 of the new orbit's first term (σ carries it
    along). Over Z, x + y must stay in {-1, 0, 1}.
    """
    n = st.n
    mod2 = field == "Z2"
    if a == b or not (0 <= a < st.nf and 0 <= b < st.nf):
        raise FactorizationError(f"merge_fixed needs two distinct fixed terms, got {a} and {b} of {st.nf}")
    if st.R + 3 > st.P.shape[0]:
        raise FactorizationError(f"merge_fixed: the state holds {st.P.shape[0]} orbit rows, {st.R + 3} needed")
    st = st.copy()
    table = transpose_table(n)
    xp, xn = st.FP[a, 0], st.FN[a, 0]
    yp, yn = st.FP[b, 0], st.FN[b, 0]
    ok, sp, sn = K._add(xp, xn, yp, yn, 1, mod2)
    if not ok or (sp == _ZERO and sn == _ZERO):
        raise FactorizationError("merge_fixed: x + y leaves {-1, 0, 1} or vanishes")
    # −(x, x+y, yᵀ): the minus on the first factor (nothing to negate mod 2)
    st.P[st.R] = (xp if mod2 else xn, sp, _tr(yp, table))
    st.N[st.R] = (_ZERO if mod2 else xp, sn, _tr(yn, table))
    _regen(st.P, st.N, st.R, table)
    st.R += 3
    st.FP[a], st.FN[a] = (sp, sp, _tr(sp, table)), (sn, sn, _tr(sn, table))
    last = st.nf - 1
    st.FP[b], st.FN[b] = st.FP[last].copy(), st.FN[last].copy()
    st.FP[last] = 0
    st.FN[last] = 0
    st.nf -= 1
    # the new orbit may reduce with an old one at once (never from a naive start)
    st.R, st.nf, _ = _sym_settle(st.P, st.N, st.R, np.array([st.R - 3], np.int64), st.FP, st.FN, st.nf, mod2, table)
    return st


def parse_parts(text: str, n: int) -> list[list[int]]:
    """'0+4,1+3,2' → [[0, 4], [1, 3], [2]]: a partition of the diagonal indices 0..n−1."""
    try:
        parts = [[int(i) for i in p.split("+")] for p in text.split(",") if p.strip()]
    except ValueError as e:
        raise FactorizationError(f"cannot read a partition of 0..{n - 1} from {text!r} (write e.g. 0+4,1+3,2)") from e
    flat = sorted(i for p in parts for i in p)
    if flat != list(range(n)):
        raise FactorizationError(f"{text!r} is not a partition of 0..{n - 1} (every index exactly once)")
    return parts


def diagonal_state(n: int, parts: list[list[int]], field: str, capacity: int | None = None) -> SymmetricState:
    """The naive algorithm with its fixed terms (E_ii)^3 merged along ``parts`` (``merge_fixed``):
    one fixed term (Σ_{i∈P} E_ii)^3 per part P, rank n³ + 2·(n − len(parts)).

    Moosbauer & Poole start their symmetric walks from such diagonal cubes; their <5,5,5> rank 93
    came from the parts {0,4}, {1,3}, {2} (3 fixed terms, here rank 129, ranks ≡ 0 mod 3).
    """
    cap = max(capacity or 0, n ** 3 + 30) + 6 * n
    st = naive_state(n, field, capacity=cap)
    if sorted(i for p in parts for i in p) != list(range(n)):
        raise FactorizationError(f"{parts} is not a partition of 0..{n - 1}")

    def slot(i: int) -> int:  # the fixed term holding E_ii (naive_state puts E_ii at index i; merges move them)
        e = _bit(n, i, i)
        for k in range(st.nf):
            if (st.FP[k, 0] | st.FN[k, 0]) & e:
                return k
        raise AssertionError("diagonal entry lost")

    for p in parts:
        for j in p[1:]:
            st = merge_fixed(st, slot(p[0]), slot(j), field)
    return st


def to_factorization(st: SymmetricState, field: str, name: str = "", provenance: Provenance | None = None) -> Factorization:
    from search.flips.encoding import decode
    n = st.n
    P = np.concatenate([st.P[:st.R], st.FP[:st.nf]])
    Nn = np.concatenate([st.N[:st.R], st.FN[:st.nf]])
    return decode(P, Nn, st.R + st.nf, (n, n, n), field, name, provenance)


def sigma(f: Factorization) -> Factorization:
    """σ applied to every term: (U, V, W) → (Wᵀ, U, Vᵀ) column by column (<n,n,n> only)."""
    n = f.shape[0]
    if f.shape != (n, n, n):
        raise FactorizationError(f"σ is defined for square shapes, not {f.shape_str}")
    perm = np.array([(a % n) * n + a // n for a in range(n * n)])  # row of the transposed entry
    return f.replace(U=np.asarray(f.W)[perm], V=np.asarray(f.U), W=np.asarray(f.V)[perm])


def is_invariant(f: Factorization) -> bool:
    """The multiset of terms equals that of its σ-image (the scheme is Z3-invariant)."""
    def terms(g):
        A = [np.asarray(M) for M in (g.U, g.V, g.W)]
        if g.field == "Z2":
            A = [np.mod(M, 2) for M in A]
        return sorted(tuple(np.concatenate([M[:, r] for M in A]).tolist()) for r in range(g.rank))
    return terms(f) == terms(sigma(f))


def orbit_tie(f: Factorization) -> np.ndarray:
    """For ``search.lift.hensel_lift(tie=...)``: the unknowns of a Z3-invariant scheme.

    Each orbit (t, σt, σ²t) of columns is given by t's coefficients alone (σ(x, y, z) = (zᵀ, x, yᵀ)
    only moves entries), and each fixed term (x, x, xᵀ) by x, so a lift along the tie stays
    invariant, with about a third of the unknowns. σ has order 3, which is odd, so averaging a
    solution over the group keeps it a solution: the tied system is solvable at every step where
    the plain one is (mod 2^k, 3 is invertible). Columns are matched mod 2; raises when ``f`` is
    not invariant.
    """
    n = f.shape[0]
    if f.shape != (n, n, n):
        raise FactorizationError(f"orbits are defined for square shapes, not {f.shape_str}")
    A = n * n
    R = f.rank
    perm = np.array([(a % n) * n + a // n for a in range(A)])
    U, V, W = (np.mod(np.asarray(M, np.int64), 2) for M in (f.U, f.V, f.W))

    def key(u, v, w):
        return np.concatenate([u, v, w]).tobytes()

    free: dict[bytes, list[int]] = {}
    for r in range(R):
        free.setdefault(key(U[:, r], V[:, r], W[:, r]), []).append(r)

    def take(k: bytes) -> int:
        cols = free.get(k)
        if not cols:
            raise FactorizationError(f"{f.label()} is not Z3-invariant: a σ-image is missing")
        return cols.pop(0)

    tie = -np.ones(3 * A * R, np.int64)
    iu = lambda a, r: a * R + r  # noqa: E731  (positions of U[a, r], V[b, r], W[c, r] in x)
    iv = lambda b, r: (A + b) * R + r  # noqa: E731
    iw = lambda c, r: (2 * A + c) * R + r  # noqa: E731
    npar = 0
    for r in range(R):
        u, v, w = U[:, r], V[:, r], W[:, r]
        k = key(u, v, w)
        if r not in free.get(k, []):
            continue  # already placed as an image
        free[k].remove(r)
        s1 = (w[perm], u, v[perm])
        if key(*s1) == k:  # fixed: (x, x, xᵀ)
            for a in range(A):
                tie[iu(a, r)] = npar + a
                tie[iv(a, r)] = npar + a
                tie[iw(a, r)] = npar + perm[a]
            npar += A
            continue
        r1 = take(key(*s1))
        r2 = take(key(s1[2][perm], s1[0], s1[1][perm]))
        pu, pv, pw = npar, npar + A, npar + 2 * A
        for a in range(A):
            tie[iu(a, r)], tie[iv(a, r)], tie[iw(a, r)] = pu + a, pv + a, pw + a
            tie[iu(a, r1)], tie[iv(a, r1)], tie[iw(a, r1)] = pw + perm[a], pu + a, pv + perm[a]
            tie[iu(a, r2)], tie[iv(a, r2)], tie[iw(a, r2)] = pv + a, pw + perm[a], pu + perm[a]
        npar += 3 * A
    if (tie < 0).any():
        raise FactorizationError(f"{f.label()} is not Z3-invariant")
    return tie


@dataclass(frozen=True)
class SymmetricConfig:
    field: str = "Z2"
    target_rank: int | None = None
    budget_s: float = 60.0
    max_flips: int | None = None
    path_length: int = 1_000_000
    plateau: int = 50_000
    plateau_min: int | None = 5_000
    max_plus: int = 6  # plus transitions may go this far above the lineage's best rank (2 orbits)
    reset_flips: int | None = 20_000_000
    fresh_resets: bool = False  # a reset restarts from the start, not from a recent improvement (Poole's runs)
    collapse: bool | None = None  # Z2 orbit -> fixed term reductions (None: off when the start has the target's residue)
    levels: bool = False  # rank by rank with pools (symmetric_pool_search) instead of lineages
    splits: int | None = None  # fixed terms split at the start (None: as the target rank's residue mod 3 needs)
    parts: tuple[tuple[int, ...], ...] | None = None  # diagonal start: one fixed term per part (diagonal_state)
    pool_size: int = 100
    chunk: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")


@dataclass
class SymmetricResult:
    best: Factorization
    flips: int
    seconds: float
    history: list[tuple[float, int]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    start: Factorization | None = None  # the scheme the walk started from, e.g. diagonal-5x5x5-0+4,1+3,2-r129


def _start(n: int, cfg: SymmetricConfig) -> tuple[SymmetricState, str, bool]:
    """The start of a search (naive with splits, or a diagonal start), its name with its rank, and whether Z2
    collapses are taken (``cfg.collapse``; None: only when the start lacks the target's residue)."""
    cap = n ** 3 + 3 * cfg.max_plus + 60
    if cfg.parts is not None:
        if cfg.splits:
            raise FactorizationError("a diagonal start (parts) and splits do not combine")
        st0 = diagonal_state(n, [list(p) for p in cfg.parts], cfg.field, capacity=cap)
        start_name = f"diagonal-{n}x{n}x{n}-" + ",".join("+".join(map(str, p)) for p in cfg.parts)
    else:
        st0 = naive_state(n, cfg.field, capacity=cap)
        splits = cfg.splits
        if splits is None:
            splits = (cfg.target_rank - n) % 3 if cfg.target_rank else 0
        for q in range(splits):
            st0 = split_fixed(st0, q % n, (q % n + 1 + q // n) % n, cfg.field)
        start_name = f"naive-{n}x{n}x{n}" + (f"-split{splits}" if splits else "")
    collapse = cfg.collapse
    if collapse is None:  # a collapse changes the rank mod 3 for good: off when the start has the target's residue
        collapse = not cfg.target_rank or (cfg.target_rank - st0.rank) % 3 != 0
    return st0, f"{start_name}-r{st0.rank}", collapse


def _checked(st: SymmetricState, field: str, n: int, provenance: Provenance) -> Factorization:
    """The scheme as a Factorization, verified exactly and checked invariant (a failure is a bug)."""
    f = to_factorization(st, field, f"flips-sym-{n}x{n}x{n}-r{st.rank}" + ("-mod2" if field == "Z2" else ""),
                         provenance)
    res = f.verify()
    if not res or not is_invariant(f):
        raise FactorizationError(f"symmetric walk produced a bad scheme: {res.describe()}, "
                                 f"invariant={is_invariant(f)}")
    return f


def _state_key(st: SymmetricState) -> bytes:
    """The scheme up to the order of orbits and fixed terms (orbits by their sorted rows)."""
    rows = list(zip(map(tuple, st.P[:st.R].tolist()), map(tuple, st.N[:st.R].tolist())))
    orbits = sorted(tuple(sorted(rows[3 * k:3 * k + 3])) for k in range(st.R // 3))
    fixed = sorted(zip(map(tuple, st.FP[:st.nf].tolist()), map(tuple, st.FN[:st.nf].tolist())))
    return repr((orbits, fixed)).encode()


def symmetric_pool_search(n: int, config: SymmetricConfig,
                          on_best: Callable[[float, Factorization], None] | None = None,
                          should_stop: Callable[[], bool] | None = None,
                          provenance: Provenance | None = None) -> SymmetricResult:
    """Rank by rank with pools (``search.flips.pools`` for invariant schemes): a runner walks
    ``path_length`` flips from a random member of the current level's pool (plus transitions up to
    ``max_plus`` above the level); the schemes it brings below the level fill the next pool
    (distinct up to the order of orbits), and a level ends when that pool holds ``pool_size``
    schemes, or holds one and the level has spent its first success's flips again over 4 runners
    more. Every scheme that lowers the best rank is verified exactly and checked invariant."""
    cfg = config
    mod2 = cfg.field == "Z2"
    table = transpose_table(n)
    st0, start_name, collapse = _start(n, cfg)
    rng = np.array([np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(cfg.seed * 2654435761 + 3)], np.uint64)
    out = np.zeros(5, np.int64)
    nfix = np.zeros(1, np.int64)
    pick = np.random.default_rng(cfg.seed)
    base = provenance or Provenance()
    best = start = to_factorization(st0, cfg.field, start_name, base)
    best_rank = level = st0.rank
    pool = [st0]
    nxt: dict[bytes, SymmetricState] = {}
    level_flips, first, after = 0, None, 0
    t0, c0 = time.perf_counter(), time.thread_time()
    flips = 0
    history = [(0.0, st0.rank)]
    target = cfg.target_rank or 0

    def done() -> bool:
        return (best_rank <= target or time.perf_counter() - t0 >= cfg.budget_s
                or (cfg.max_flips is not None and flips >= cfg.max_flips)
                or (should_stop is not None and should_stop()))

    while not done():
        cur = pool[int(pick.integers(len(pool)))].copy()
        plateau = cfg.plateau if cfg.plateau_min is None else int(pick.integers(cfg.plateau_min, cfg.plateau + 1))
        spent = 0
        while spent < cfg.path_length and cur.rank >= level and not done():
            k = min(cfg.chunk, cfg.path_length - spent)
            if cfg.max_flips is not None:
                k = max(1, min(k, cfg.max_flips - flips))
            nfix[0] = cur.nf
            cur.R = sym_walk(cur.P, cur.N, cur.R, cur.FP, cur.FN, nfix, mod2, level - 1, k, plateau,
                             level + cfg.max_plus, rng, out, table, collapse)
            cur.nf = int(nfix[0])
            spent += int(out[K.OUT_FLIPS])
            flips += int(out[K.OUT_FLIPS])
            if out[K.OUT_FLIPS] < k and cur.rank >= level:
                break  # nothing moves
        level_flips += spent
        if first is not None:
            after += 1
        if cur.rank < level:
            nxt.setdefault(_state_key(cur), cur)
            if first is None:
                first = level_flips
            if cur.rank < best_rank:
                t = time.perf_counter() - t0
                f = _checked(cur, cfg.field, n, base)
                best_rank, best = cur.rank, f
                history.append((t, cur.rank))
                if on_best is not None:
                    on_best(t, f)
        if nxt and (len(nxt) >= cfg.pool_size or best_rank <= target
                    or (level_flips >= 2 * first and after >= 4)):
            low = min(st.rank for st in nxt.values())
            pool = [st for st in nxt.values() if st.rank == low]
            level, nxt, level_flips, first, after = low, {}, 0, None, 0
        elif spent == 0:
            break
    return SymmetricResult(best, flips, time.perf_counter() - t0, history, time.thread_time() - c0, start)


def symmetric_walk_search(n: int, config: SymmetricConfig,
                          on_best: Callable[[float, Factorization], None] | None = None,
                          should_stop: Callable[[], bool] | None = None,
                          provenance: Provenance | None = None,
                          on_reset: Callable[[float, int], None] | None = None) -> SymmetricResult:
    """Walk the symmetric flip graph of <n,n,n> from the naive algorithm (lineages, pools, plus
    transitions as in ``walker.walk_search``); every reported scheme is verified exactly and
    checked to be invariant. ``on_reset(seconds, rank)`` hears the lowest rank of each lineage
    that is abandoned after ``reset_flips`` flips without improving."""
    cfg = config
    if cfg.levels:
        return symmetric_pool_search(n, cfg, on_best, should_stop, provenance)
    mod2 = cfg.field == "Z2"
    table = transpose_table(n)
    st0, start_name, collapse = _start(n, cfg)
    rng = np.array([np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(cfg.seed * 2654435761 + 1)], np.uint64)
    out = np.zeros(5, np.int64)
    nfix = np.zeros(1, np.int64)
    pick = np.random.default_rng(cfg.seed)
    base = provenance or Provenance()
    cur = st0.copy()
    best = start = to_factorization(cur, cfg.field, start_name, base)
    best_rank = lineage_rank = cur.rank
    lineage_flips = 0
    starts = [st0.copy()]
    pool = [cur.copy()]
    t0 = time.perf_counter()
    c0 = time.thread_time()
    flips = 0
    history = [(0.0, cur.rank)]
    target = cfg.target_rank or 0

    def done() -> bool:
        return (best_rank <= target or time.perf_counter() - t0 >= cfg.budget_s
                or (cfg.max_flips is not None and flips >= cfg.max_flips)
                or (should_stop is not None and should_stop()))

    while not done():
        path = 0
        plateau = cfg.plateau if cfg.plateau_min is None else int(pick.integers(cfg.plateau_min, cfg.plateau + 1))
        while path < cfg.path_length and not done():
            k = min(cfg.chunk, cfg.path_length - path)
            if cfg.max_flips is not None:
                k = min(k, cfg.max_flips - flips)
            nfix[0] = cur.nf
            cur.R = sym_walk(cur.P, cur.N, cur.R, cur.FP, cur.FN, nfix, mod2, lineage_rank - 1, k, plateau,
                             lineage_rank + cfg.max_plus, rng, out, table, collapse)
            cur.nf = int(nfix[0])
            path += int(out[K.OUT_FLIPS])
            flips += int(out[K.OUT_FLIPS])
            lineage_flips += int(out[K.OUT_FLIPS])
            if cur.rank < lineage_rank or out[K.OUT_FLIPS] < k:
                break
            if cur.rank == lineage_rank:
                if len(pool) < cfg.pool_size:
                    pool.append(cur.copy())
                else:
                    pool[int(pick.integers(len(pool)))] = cur.copy()
        if cur.rank < lineage_rank:
            lineage_rank = cur.rank
            lineage_flips = 0
            pool = [cur.copy()]
            if cur.rank < best_rank:
                t = time.perf_counter() - t0
                f = _checked(cur, cfg.field, n, base)
                best_rank, best = cur.rank, f
                starts.append(cur.copy())
                if len(starts) > 9:
                    del starts[1]
                history.append((t, cur.rank))
                if on_best is not None:
                    on_best(t, f)
            continue
        if cfg.reset_flips is not None and lineage_flips >= cfg.reset_flips:
            if on_reset is not None:  # the lineage's lowest rank, before it is abandoned
                on_reset(time.perf_counter() - t0, lineage_rank)
            cur = (starts[0] if cfg.fresh_resets else starts[int(pick.integers(len(starts)))]).copy()
            lineage_rank = cur.rank
            lineage_flips = 0
            pool = [cur.copy()]
            continue
        if out[K.OUT_FLIPS] == 0 and path == 0 and len(pool) == 1:
            break
        cur = pool[int(pick.integers(len(pool)))].copy()
    return SymmetricResult(best, flips, time.perf_counter() - t0, history, time.thread_time() - c0, start)
