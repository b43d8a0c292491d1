"""Rows of a bitmask scheme indexed by one slot's factor (up to sign), for flip draws in O(1).

A flip needs two terms that share a factor. Scanning every term for a partner costs O(rank) per
flip; this index keeps, for every distinct slot-0 factor, the rows holding it, and the list of
factors held by two rows or more, so that a flip is drawn as "a shared factor, then two of its
rows" (the draw of Poole's solver for Moosbauer & Poole's symmetric flip graph). The symmetric
walk (search.flips.symmetric) needs slot 0 only: every factor of an invariant scheme is slot 0
of some row of its orbit; the plain walk (search.flips.kernel.walk) keeps one index per slot.

The index is two flat arrays, made by ``new_index(capacity, slot)``: ``ix`` (int64) and ``ik``
(uint64, the keys). Flat arrays, because numba reference-counts every array it takes out of a
tuple or passes to a call: an index held as a tuple of 13 arrays cost 450 ns per update
(measured), this one about a tenth of that. ``ix`` holds, after an 8-word header (H, B, hash
shift, free buckets, shared buckets, the slot indexed):

- an open-addressing hash table (linear probing, backward-shift deletion, H slots) from the
  key, the factor normalised in sign (ternary: the lowest entry positive), to a bucket;
- per bucket (B of them): its number of rows, its rows, its hash slot, its place among the shared;
- a stack of free buckets; per row: its bucket and its place there; the shared buckets.

``index_sync(ix, ik, P, N, row, R, mod2)`` brings one row up to date (a row ≥ R leaves the
index); ``index_rebuild`` starts over from the first R rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO = np.uint64(0)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_HDR = 8  # header words of ix: H, B, shift, free buckets, shared buckets, slot


@njit(cache=True)
def new_index(capacity, slot=0):
    """Empty index of ``slot``'s factors for schemes of at most ``capacity`` rows (call
    ``index_rebuild`` to fill it)."""
    B = capacity
    H = 1
    bits = 0
    while H < 4 * B:
        H *= 2
        bits += 1
    ix = np.zeros(_HDR + H + B * (B + 8), np.int64)
    ix[0] = H
    ix[1] = B
    ix[2] = 64 - bits
    ix[5] = slot
    ik = np.zeros(2 * (H + B), np.uint64)
    return ix, ik


# section offsets of ix (H = ix[0], B = ix[1])
@njit(cache=True, inline="always")
def _hb(ix):  # hash slot -> bucket (-1: empty)
    return _HDR


@njit(cache=True, inline="always")
def _cnt(ix):  # bucket -> number of rows
    return _HDR + ix[0]


@njit(cache=True, inline="always")
def _rows(ix):  # bucket -> its rows (B each)
    return _HDR + ix[0] + ix[1]


@njit(cache=True, inline="always")
def _bh(ix):  # bucket -> hash slot
    return _HDR + ix[0] + ix[1] * (ix[1] + 1)


@njit(cache=True, inline="always")
def _free(ix):  # stack of free buckets
    return _HDR + ix[0] + ix[1] * (ix[1] + 2)


@njit(cache=True, inline="always")
def _rb(ix):  # row -> bucket (-1: not indexed)
    return _HDR + ix[0] + ix[1] * (ix[1] + 3)


@njit(cache=True, inline="always")
def _rp(ix):  # row -> place in its bucket
    return _HDR + ix[0] + ix[1] * (ix[1] + 4)


@njit(cache=True, inline="always")
def _sh(ix):  # shared buckets (two rows or more)
    return _HDR + ix[0] + ix[1] * (ix[1] + 5)


@njit(cache=True, inline="always")
def _wh(ix):  # bucket -> place among the shared (-1: not shared)
    return _HDR + ix[0] + ix[1] * (ix[1] + 6)


@njit(cache=True, inline="always")
def _key(ix, P, N, row, mod2):
    t = ix[5]
    p = P[row, t]
    n = _ZERO if mod2 else N[row, t]
    s = p | n
    if n & (s & (~s + np.uint64(1))):  # the lowest entry is negative: negate
        return n, p
    return p, n


@njit(cache=True, inline="always")
def _home(ix, kp, kn):
    return np.int64(((kp * _M1) ^ (kn * _M2)) >> np.uint64(ix[2]))


@njit(cache=True, inline="always")
def shared_count(ix):
    return ix[4]


@njit(cache=True, inline="always")
def shared_rows(ix, k):
    """(number of rows, offset of the first row in ix) of the k-th shared factor."""
    b = ix[_sh(ix) + k]
    return ix[_cnt(ix) + b], _rows(ix) + b * ix[1]


@njit(cache=True, inline="always")
def row_bucket(ix, row):
    """(number of rows, offset of the first row in ix) sharing ``row``'s slot-0 factor, itself included."""
    b = ix[_rb(ix) + row]
    return ix[_cnt(ix) + b], _rows(ix) + b * ix[1]


@njit(cache=True, inline="always")
def _drop_slot(ix, ik, h):
    """Empty hash slot h, shifting later entries of its probe run back (no tombstones)."""
    hb, bh = _hb(ix), _bh(ix)
    mask = ix[0] - 1
    ix[hb + h] = -1
    j = h
    while True:
        j = (j + 1) & mask
        if ix[hb + j] < 0:
            return
        home = _home(ix, ik[2 * j], ik[2 * j + 1])
        # move j back to h when its home is not in the cyclic range (h, j]
        if (j > h and (home <= h or home > j)) or (j < h and (home <= h and home > j)):
            ik[2 * h] = ik[2 * j]
            ik[2 * h + 1] = ik[2 * j + 1]
            b = ix[hb + j]
            ix[hb + h] = b
            ix[bh + b] = h
            ix[hb + j] = -1
            h = j


@njit(cache=True, inline="always")
def index_remove(ix, ik, row):
    rb = _rb(ix) + row
    b = ix[rb]
    if b < 0:
        return
    B = ix[1]
    i = ix[_rp(ix) + row]
    c = _cnt(ix) + b
    last = ix[c] - 1
    base = _rows(ix) + b * B
    moved = ix[base + last]
    ix[base + i] = moved
    ix[_rp(ix) + moved] = i
    ix[c] = last
    ix[rb] = -1
    if last == 1:  # no longer shared
        sh, wh = _sh(ix), _wh(ix)
        k = ix[wh + b]
        other = ix[sh + ix[4] - 1]
        ix[sh + k] = other
        ix[wh + other] = k
        ix[wh + b] = -1
        ix[4] -= 1
    elif last == 0:
        _drop_slot(ix, ik, ix[_bh(ix) + b])
        ix[_free(ix) + ix[3]] = b
        ix[3] += 1


@njit(cache=True, inline="always")
def index_add(ix, ik, P, N, row, mod2):
    kp, kn = _key(ix, P, N, row, mod2)
    hb = _hb(ix)
    mask = ix[0] - 1
    h = _home(ix, kp, kn)
    while ix[hb + h] >= 0 and not (ik[2 * h] == kp and ik[2 * h + 1] == kn):
        h = (h + 1) & mask
    b = ix[hb + h]
    B = ix[1]
    if b < 0:
        ix[3] -= 1
        b = ix[_free(ix) + ix[3]]
        ix[hb + h] = b
        ik[2 * h] = kp
        ik[2 * h + 1] = kn
        ix[_bh(ix) + b] = h
        ix[_cnt(ix) + b] = 0
        ix[_wh(ix) + b] = -1
    c = _cnt(ix) + b
    n = ix[c]
    ix[_rows(ix) + b * B + n] = row
    ix[_rp(ix) + row] = n
    ix[_rb(ix) + row] = b
    rk = 2 * (ix[0] + row)
    ik[rk] = kp
    ik[rk + 1] = kn
    ix[c] = n + 1
    if n + 1 == 2:  # now shared
        ix[_sh(ix) + ix[4]] = b
        ix[_wh(ix) + b] = ix[4]
        ix[4] += 1


@njit(cache=True, inline="always")
def index_sync(ix, ik, P, N, row, R, mod2):
    """Row ``row`` indexed under its current slot-0 factor (rows ≥ R: not indexed)."""
    if row >= R:
        index_remove(ix, ik, row)
        return
    if ix[_rb(ix) + row] >= 0:
        kp, kn = _key(ix, P, N, row, mod2)
        rk = 2 * (ix[0] + row)
        if ik[rk] == kp and ik[rk + 1] == kn:
            return
        index_remove(ix, ik, row)
    index_add(ix, ik, P, N, row, mod2)


@njit(cache=True)
def index_rebuild(ix, ik, P, N, R, mod2):
    H, B = ix[0], ix[1]
    ix[_HDR:_HDR + H] = -1
    rb = _rb(ix)
    ix[rb:rb + B] = -1
    free = _free(ix)
    for i in range(B):
        ix[free + i] = B - 1 - i
    ix[3] = B
    ix[4] = 0
    for row in range(R):
        index_add(ix, ik, P, N, row, mod2)


def check_index(ix: np.ndarray, ik: np.ndarray, P: np.ndarray, N: np.ndarray, R: int, mod2: bool) -> None:
    """Assert that the index holds exactly rows 0..R−1 under their keys (for tests)."""
    H, B = int(ix[0]), int(ix[1])
    want: dict[tuple[int, int], set[int]] = {}
    for row in range(R):
        want.setdefault(tuple(int(k) for k in _key(ix, P, N, row, mod2)), set()).add(row)
    got: dict[tuple[int, int], set[int]] = {}
    for h in range(H):
        b = int(ix[_HDR + h])
        if b < 0:
            continue
        key = (int(ik[2 * h]), int(ik[2 * h + 1]))
        c = int(ix[_HDR + H + b])
        rows = ix[_HDR + H + B + b * B: _HDR + H + B + b * B + c]
        got[key] = {int(r) for r in rows}
        for i, r in enumerate(rows):
            assert ix[_rb(ix) + r] == b and ix[_rp(ix) + r] == i
    assert got == want, "index does not match the rows"
    shared = {int(ix[_sh(ix) + k]) for k in range(int(ix[4]))}
    assert shared == {int(ix[_HDR + h]) for h in range(H) if ix[_HDR + h] >= 0 and
                      ix[_HDR + H + ix[_HDR + h]] >= 2}
