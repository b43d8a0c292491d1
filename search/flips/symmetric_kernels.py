"""The symmetric walk's compiled part (``search.flips.symmetric``): orbit flips (σ, the images of
a row and orbit removal are in ``search.flips.orbits``), the plus transition on two orbits
(``kernel.plus_pair``), settling reductions (orbit and fixed terms) and ``sym_walk``."""

from __future__ import annotations

import numpy as np
from numba import njit

from search.flips import kernel as K
from search.flips.orbits import _ZERO, _is_fixed, _regen, _remove_orbit, _tr, transpose_table  # noqa: F401
from search.flips.valueindex import index_rebuild, index_sync, new_index, row_bucket, shared_count, shared_rows


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
    and ``near[w]`` an orbit whose terms changed too (compared in full; −1: none): the one settle
    loop (``kernel._settle_loop``) on orbits, whose partners with a hint come from the index ``ix``
    (in sync with P, N; see ``kernel._orbit_partner``). After a reduction the index is stale and
    every term is compared in full."""
    return K._settle_loop(P, N, R, watch, hint, mod2, True, near, ix, table, FP, FN, nf, collapse)


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
    K._report(out, R + nf, flips, reductions, plus, attempts)
    return R
