"""The compiled inner loop of the flip-graph walk (numba), over Z2 and over ternary coefficients.

A scheme of rank R is held as two ``uint64`` arrays ``P`` and ``N`` of shape (capacity, 3): term
``r`` is the rank-one tensor ``x_r ⊗ y_r ⊗ z_r`` with slot 0 = column r of U (bit ``a`` = row a),
slot 1 = column of V, slot 2 = column of W. A ternary vector is the pair of bitmasks
(``P`` = entries +1, ``N`` = entries -1); over Z2 only ``P`` is used and addition is XOR.

Moves (Kauers & Moosbauer 2022; Arai, Ichikawa & Hukushima 2024):

- flip: two terms that share a factor up to sign, ``x' = σx``:
  ``x⊗y⊗z + x'⊗y'⊗z' = x⊗(y + εσy')⊗z + x'⊗y'⊗(z' - εz)`` (ε = ±1 chosen at random; both
  slots that change are chosen at random); over the ternary walk a flip that would leave
  {-1, 0, 1} is rejected, so every scheme visited is valid over Z.
- reduction: a factor that vanishes drops its term; two terms that agree (up to sign) in two
  slots merge into one: rank − 1 (− 2 when they cancel).
- plus transition: ``x⊗y⊗z + x'⊗y'⊗z' = (x - x')⊗y⊗z + x'⊗(y - y')⊗z + x'⊗y'⊗(z + z')``:
  rank + 1, taken after ``plateau`` flips without a reduction, to escape a plateau.

``walk`` draws its flips from three factor indexes (``search.flips.valueindex``, one per slot)
instead of scanning the terms for a partner; ``_flip`` (the scan) serves the callers that make
single moves (the objective walks).

Every move is an identity of tensors, so the sum of the terms (the matmul tensor) never changes;
tests check this with ``Factorization.verify`` after walks of every kind.

The random numbers are a xorshift64* stream held in a one-element array, so a walk is
reproducible from its seed and costs no Python call per step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from search.flips.orbits import _is_fixed, _regen, _remove_orbit
from search.flips.valueindex import index_rebuild, index_sync, new_index, row_bucket, shared_count, shared_rows

_MUL = np.uint64(0x2545F4914F6CDD1D)
_S12 = np.uint64(12)
_S25 = np.uint64(25)
_S27 = np.uint64(27)
_S32 = np.uint64(32)
_ZERO = np.uint64(0)

# Result fields of ``walk`` (an int64 array, so one compiled signature serves every caller).
OUT_RANK, OUT_FLIPS, OUT_REDUCTIONS, OUT_PLUS, OUT_ATTEMPTS = range(5)


@njit(cache=True, inline="always")
def _report(out, rank, flips, reductions, plus, attempts):
    """Write a walk's result fields (``walk`` and ``symmetric_kernels.sym_walk``)."""
    out[OUT_RANK] = rank
    out[OUT_FLIPS] = flips
    out[OUT_REDUCTIONS] = reductions
    out[OUT_PLUS] = plus
    out[OUT_ATTEMPTS] = attempts


@njit(cache=True, inline="always")
def _next(rng):
    x = rng[0]
    x ^= x >> _S12
    x ^= x << _S25
    x ^= x >> _S27
    rng[0] = x
    return x * _MUL


@njit(cache=True, inline="always")
def _below(rng, n):
    """A random integer in [0, n): the high 32 bits scaled by n (Lemire), no division.

    n is small (< 2**16), so the bias is below 2**-16 per draw; the modulo it replaced cost a
    64-bit division per draw, a visible share of a flip.
    """
    return np.int64(((_next(rng) >> _S32) * np.uint64(n)) >> _S32)


@njit(cache=True, inline="always")
def _same(ap, an, bp, bn, mod2):
    """+1 when a == b, -1 when a == -b (ternary only), 0 otherwise."""
    if ap == bp and an == bn:
        return 1
    if not mod2 and ap == bn and an == bp:
        return -1
    return 0


@njit(cache=True, inline="always")
def _add(ap, an, bp, bn, sign, mod2):
    """``a + sign·b``: returns (ok, p, n); ok is False when a ternary entry would leave {-1,0,1}."""
    if mod2:
        return True, ap ^ bp, _ZERO
    if sign < 0:
        bp, bn = bn, bp
    if (ap & bp) != _ZERO or (an & bn) != _ZERO:
        return False, _ZERO, _ZERO
    return True, (ap & ~bn) | (bp & ~an), (an & ~bp) | (bn & ~ap)


@njit(cache=True, inline="always")
def _flip_pair(P, N, r, s, u, v, sig, eps, mod2):
    """The flip of terms r and s, which share slot 3 − u − v up to the sign sig: slot u of r gains
    eps·sig times s's, slot v of s loses eps times r's. Over Z the other eps is tried when an entry
    would leave {-1, 0, 1}. Returns whether the flip was applied."""
    for attempt in range(2):
        ok1, yp, yn = _add(P[r, u], N[r, u], P[s, u], N[s, u], eps * sig, mod2)
        ok2, zp, zn = _add(P[s, v], N[s, v], P[r, v], N[r, v], -eps, mod2)
        if ok1 and ok2:
            P[r, u] = yp
            N[r, u] = yn
            P[s, v] = zp
            N[s, v] = zn
            return True
        if mod2:
            return False
        eps = -eps
    return False


@njit(cache=True, inline="always")
def _flip_drawn(P, N, r, s, t, sig, rng, mod2):
    """The flip of terms r and s that share slot t up to the sign sig, its direction drawn: which of
    the other slots grows on r (the third shrinks on s) and the sign eps. Returns (u, v), or (-1, -1)
    when no sign keeps the entries in the field."""
    bits = _below(rng, 4)
    u = (t + 1) % 3 if (bits & 1) == 0 else (t + 2) % 3  # slot that grows on r
    v = 3 - t - u  # slot that shrinks on s
    eps = 1 if (bits & 2) == 0 else -1
    if _flip_pair(P, N, r, s, u, v, sig, eps, mod2):
        return u, v
    return -1, -1


@njit(cache=True)
def _remove(P, N, R, i, watch):
    """Drop term i (the last term moves into its place); ``watch`` indices follow the move."""
    last = R - 1
    for t in range(3):
        P[i, t] = P[last, t]
        N[i, t] = N[last, t]
        P[last, t] = _ZERO
        N[last, t] = _ZERO
    for w in range(watch.shape[0]):
        if watch[w] == i:
            watch[w] = -1
        elif watch[w] == last:
            watch[w] = i
    return last


@njit(cache=True)
def _is_zero_term(P, N, i):
    for t in range(3):
        if P[i, t] == _ZERO and N[i, t] == _ZERO:
            return True
    return False


@njit(cache=True)
def _settle(P, N, R, watch, mod2):
    """Remove vanished terms among ``watch`` and merge them with terms equal in two slots.

    Returns (R, reductions). A merge that would leave the ternary range is skipped.
    """
    hint = -np.ones(watch.shape[0], np.int64)
    return _settle_hint(P, N, R, watch, hint, mod2)


@njit(cache=True)
def _settle_hint(P, N, R, watch, hint, mod2):
    """``_settle`` where ``hint[w]`` is the one slot of term ``watch[w]`` that changed (−1: unknown).

    A watched term settled before can only newly agree with another in two slots if one of them
    is the changed slot, so that slot is compared first and most terms cost one comparison
    (measured: the settle scans were most of the time per flip on <4,4,4>).
    """
    # orbit=False: near, ix, table, FP, FN are never read (hint, watch and P stand in for them)
    R, _nf, reductions = _settle_loop(P, N, R, watch, hint, mod2, False, hint, watch, P, P, P, 0, False)
    return R, reductions


@njit(cache=True, inline="always")
def _settle_loop(P, N, R, watch, hint, mod2, orbit, near, ix, table, FP, FN, nf, collapse):
    """The one settle loop of the plain walk (``orbit`` False: a term is a row) and of the orbit
    walk (``orbit`` True: a term stands for its orbit, rows 3k..3k+2, ``search.flips.orbits``).

    Until nothing changes: a watched term with a zero factor goes; over Z2 with ``collapse`` a
    σ-fixed orbit becomes one fixed term (appended to FP, FN at ``nf``); a watched term x and a
    partner y that cancel both go, and two that agree in two slots merge into x (``_reduction``).
    The partners of x: every other row, or with ``hint[w]`` = h ≥ 0 only those that agree with x
    in slot h (``_row_partner``, ``_orbit_partner``). Removing an orbit moves rows, so the orbit
    walk's hints and index are stale after any reduction and every term is then compared in full.
    Returns (R, nf, reductions); the orbit walk counts a removed orbit as a reduction, the plain
    walk counts merges and cancellations only.

    Inlined into its two callers with ``orbit`` a constant, so each compiles only its own branches.
    """
    reductions = 0
    changed = True
    while changed:
        changed = False
        for w in range(watch.shape[0]):
            x = watch[w]
            if x < 0:
                continue
            fixed = False
            zero = _is_zero_term(P, N, x)
            if orbit and mod2 and collapse and not zero:
                fixed = _is_fixed(P, N, x, table)
            if zero or fixed:
                if fixed:
                    for t in range(3):
                        FP[nf, t] = P[x, t]
                        FN[nf, t] = N[x, t]
                    nf += 1
                R = _drop(P, N, R, x, watch, orbit)
                if orbit:
                    reductions += 1
                changed = True
                break
            h = hint[w]
            c = R
            base = 0
            if orbit and h >= 0:
                c, base = row_bucket(ix, x - x % 3 + (x % 3 + 3 - h) % 3)
            for t in range(c + 3 if orbit and h >= 0 else R):
                if orbit:
                    y = _orbit_partner(R, x, h, t, c, base, near[w], ix)
                else:
                    y = _row_partner(P, N, x, h, t, mod2)
                if y < 0:
                    continue
                kind, d, np_, nn_ = _reduction(P, N, x, y, mod2)
                if kind == _NONE:
                    continue
                if kind == _CANCEL:  # x + y == 0: both go
                    hi, lo = (x, y) if x > y else (y, x)
                    R = _drop(P, N, R, hi, watch, orbit)
                    R = _drop(P, N, R, lo, watch, orbit)
                    reductions += 2 if orbit else 1
                else:
                    P[x, d] = np_
                    N[x, d] = nn_
                    if not orbit:
                        hint[w] = d
                    R = _drop(P, N, R, y, watch, orbit)
                    if orbit:
                        _regen(P, N, watch[w], table)  # x's orbit may have moved into y's rows
                    reductions += 1
                changed = True
                break
            if changed:
                break
        if changed and orbit:
            hint[:] = -1
    return R, nf, reductions


@njit(cache=True, inline="always")
def _drop(P, N, R, x, watch, orbit):
    """Remove term x: its row, or with ``orbit`` its orbit. Returns the new R."""
    if orbit:
        return _remove_orbit(P, N, R, x // 3, watch)
    return _remove(P, N, R, x, watch)


@njit(cache=True, inline="always")
def _row_partner(P, N, x, h, t, mod2):
    """Candidate t of the plain settle: row t unless it is x or (hint h ≥ 0) differs from x in slot h; −1: skip."""
    if t == x or (h >= 0 and _match(P, N, x, t, h, mod2) == 0):
        return -1
    return t


@njit(cache=True, inline="always")
def _orbit_partner(R, x, h, t, c, base, near, ix):
    """Candidate t of the orbit settle (a row of another orbit; −1: skip).

    Without a hint (h < 0): row t. With one, in a settled scheme (no two terms of different orbits
    agree in two slots) a term x whose slot h changed can newly agree in two slots with an
    unchanged term y only if y_h = ±x_h (x agrees with σy exactly when σ²x agrees with y, so the
    images need no check). Those y are found in the index ``ix`` (in sync with P, N): x_h is slot 0
    of the row x' = σ^(3−h)x of x's orbit, and y = σ^h q for the c rows q (from ``base``) that
    share x'’s slot-0 factor; then the three rows of the ``near`` orbit (whose terms changed too)
    in full. So most flips settle in O(1), not O(rank) (measured: the scan over all terms was most
    of the time per flip once draws were O(1)).
    """
    ox = x // 3
    if h < 0:
        return -1 if t // 3 == ox else t
    if t < c:  # y = σ^h q: y_h = ±x_h
        q = ix[base + t]
        oy = q // 3
        if oy == ox or oy == near:
            return -1
        return 3 * oy + (q % 3 + h) % 3
    y = 3 * near + t - c  # the near orbit, in full
    if near < 0 or y >= R:
        return -1
    return y


#: what ``_reduction`` finds for two terms
_NONE, _MERGE, _CANCEL = 0, 1, 2


@njit(cache=True, inline="always")
def _reduction(P, N, x, y, mod2):
    """How terms x and y reduce: ``(_CANCEL, ...)`` when x + y == 0; ``(_MERGE, d, p, n)`` when
    they agree (up to sign) in the two slots other than d, so x + y is one term whose slot d is
    (p, n); ``(_NONE, ...)`` otherwise (at most one equal slot, x + y == 2x, or a merged slot that
    would leave {-1, 0, 1}). The one comparison of both settle loops (plain and orbit walks);
    inlined, so it costs them no call."""
    s0 = _match(P, N, x, y, 0, mod2)
    s1 = _match(P, N, x, y, 1, mod2)
    if s0 == 0 and s1 == 0:  # the common case: at most one equal slot
        return _NONE, 0, _ZERO, _ZERO
    s2 = _match(P, N, x, y, 2, mod2)
    eq = (s0 != 0) + (s1 != 0) + (s2 != 0)
    if eq < 2:
        return _NONE, 0, _ZERO, _ZERO
    if eq == 3:
        if mod2 or s0 * s1 * s2 < 0:
            return _CANCEL, 0, _ZERO, _ZERO
        return _NONE, 0, _ZERO, _ZERO  # x + y == 2x: not ternary
    d = 0 if s0 == 0 else (1 if s1 == 0 else 2)
    # y = (s0·x0)⊗(s1·x1)⊗..., so x + y changes slot d by (product of the equal slots' signs)·y_d
    sign = (s0 if d != 0 else 1) * (s1 if d != 1 else 1) * (s2 if d != 2 else 1)
    ok, p, n = _add(P[x, d], N[x, d], P[y, d], N[y, d], sign, mod2)
    if not ok:
        return _NONE, 0, _ZERO, _ZERO
    return _MERGE, d, p, n


@njit(cache=True, inline="always")
def _match(P, N, r, q, t, mod2):
    """``_same`` for slot t of terms r and q, rejecting on the support first (one compare)."""
    if mod2:
        return 1 if P[r, t] == P[q, t] else 0
    if (P[r, t] | N[r, t]) != (P[q, t] | N[q, t]):
        return 0
    return 1 if P[r, t] == P[q, t] else (-1 if P[r, t] == N[q, t] else 0)


@njit(cache=True)
def _flip(P, N, R, rng, mod2):
    """One random flip; returns the changed terms and slots (r, s, u, v), or −1s when the sample admits none."""
    r = _below(rng, R)
    # a uniformly random partner (s, slot t) sharing a factor with r, up to sign, over all three
    # slots (one slot per scan needed ~3x more scans per flip on <4,4,4>): count the partners,
    # draw one index, find it (one draw per flip; drawing per partner, reservoir style, cost more)
    count = 0
    for q in range(R):
        if q == r:
            continue
        for tt in range(3):
            if _match(P, N, r, q, tt, mod2) != 0:
                count += 1
    if count == 0:
        return -1, -1, -1, -1
    k = _below(rng, count)
    s = -1
    t = -1
    sig = 0
    for q in range(R):
        if q == r:
            continue
        for tt in range(3):
            e = _match(P, N, r, q, tt, mod2)
            if e != 0:
                if k == 0:
                    s = q
                    t = tt
                    sig = e
                k -= 1
        if s >= 0:
            break
    if s < 0:
        return -1, -1, -1, -1
    u, v = _flip_drawn(P, N, r, s, t, sig, rng, mod2)
    if u >= 0:
        return r, s, u, v
    return -1, -1, -1, -1


@njit(cache=True, inline="always")
def plus_pair(P, N, R, rng, mod2, tries, group):
    """A plus transition on a random pair of terms in different groups of ``group`` rows
    (1: any two terms; 3: terms of two orbits, ``search.flips.symmetric``); the new term is
    written to row ``R``. Returns (r, s, changed slot of r, changed slot of s), r = -1 if none
    was found in ``tries`` draws.
    """
    for _ in range(tries):
        r = _below(rng, R)
        s = _below(rng, R)
        if r // group == s // group:
            continue
        a = _below(rng, 3)
        b = (a + 1 + _below(rng, 2)) % 3
        c = 3 - a - b
        # x⊗y⊗z + x'⊗y'⊗z' = (x - x')⊗y⊗z + x'⊗(y - y')⊗z + x'⊗y'⊗(z + z')  (slots a, b, c)
        ok1, p1, n1 = _add(P[r, a], N[r, a], P[s, a], N[s, a], -1, mod2)
        ok2, p2, n2 = _add(P[r, b], N[r, b], P[s, b], N[s, b], -1, mod2)
        ok3, p3, n3 = _add(P[r, c], N[r, c], P[s, c], N[s, c], 1, mod2)
        if not (ok1 and ok2 and ok3):
            continue
        if (p1 == _ZERO and n1 == _ZERO) or (p2 == _ZERO and n2 == _ZERO) or (p3 == _ZERO and n3 == _ZERO):
            continue
        # new term R: x'⊗(y - y')⊗z
        P[R, a] = P[s, a]
        N[R, a] = N[s, a]
        P[R, b] = p2
        N[R, b] = n2
        P[R, c] = P[r, c]
        N[R, c] = N[r, c]
        # r: (x - x')⊗y⊗z ; s: x'⊗y'⊗(z + z')
        P[r, a] = p1
        N[r, a] = n1
        P[s, c] = p3
        N[s, c] = n3
        return r, s, a, c
    return -1, -1, -1, -1


@njit(cache=True)
def _plus(P, N, R, rng, mod2, tries):
    """One plus transition (rank + 1) on a random pair of terms.

    Returns (new rank, r, s, changed slot of r, changed slot of s); the new term is the last one.
    """
    r, s, u, v = plus_pair(P, N, R, rng, mod2, tries, 1)
    if r < 0:
        return R, -1, -1, -1, -1
    return R + 1, r, s, u, v


@njit(cache=True)
def _plus_settled(P, N, R, rng, mod2, tries, ix0, ik0, ix1, ik1, ix2, ik2):
    """A plus transition, then the three changed terms settled (they may already reduce with
    others) and the indexes rebuilt. Returns (new rank, reductions, whether a plus was made)."""
    R2, r, s, u, v = _plus(P, N, R, rng, mod2, tries)
    if R2 == R:
        return R, 0, False
    R, red = _settle(P, N, R2, np.array([R2 - 1, r, s], np.int64), mod2)
    _rebuild3(ix0, ik0, ix1, ik1, ix2, ik2, P, N, R, mod2)
    return R, red, True


# -- the walk: flips drawn from per-slot factor indexes ----------------------------------------
@njit(cache=True)
def _indexes(P, N, R, mod2):
    """One ``valueindex`` per slot, filled with rows 0..R−1."""
    ix0, ik0 = new_index(P.shape[0], 0)
    ix1, ik1 = new_index(P.shape[0], 1)
    ix2, ik2 = new_index(P.shape[0], 2)
    index_rebuild(ix0, ik0, P, N, R, mod2)
    index_rebuild(ix1, ik1, P, N, R, mod2)
    index_rebuild(ix2, ik2, P, N, R, mod2)
    return ix0, ik0, ix1, ik1, ix2, ik2


@njit(cache=True)
def _rebuild3(ix0, ik0, ix1, ik1, ix2, ik2, P, N, R, mod2):
    index_rebuild(ix0, ik0, P, N, R, mod2)
    index_rebuild(ix1, ik1, P, N, R, mod2)
    index_rebuild(ix2, ik2, P, N, R, mod2)


@njit(cache=True, inline="always")
def _two_rows(ix, c, base, rng):
    """Two different rows, uniformly, of the ``c`` >= 2 rows ``ix[base:base + c]`` that share a factor."""
    i = _below(rng, c)
    j = _below(rng, c - 1)
    if j >= i:
        j += 1
    return ix[base + i], ix[base + j]


@njit(cache=True)
def _flip_ix(P, N, rng, mod2, ix0, ix1, ix2):
    """One random flip drawn from the slot indexes: a factor held by two terms or more (uniform
    over such factors of all three slots), then two of its terms; returns (r, s, u, v) as ``_flip``
    does, or −1s after 16 draws gave no flip (none shared, or every one left the ternary range).

    The draw costs O(1) where ``_flip``'s scan for partners costs O(rank); the distribution is over
    shared factors rather than over terms (as in Poole's solver for the symmetric flip graph).
    """
    n0 = shared_count(ix0)
    n1 = shared_count(ix1)
    n2 = shared_count(ix2)
    tot = n0 + n1 + n2
    if tot == 0:
        return -1, -1, -1, -1
    for _ in range(16):
        k = _below(rng, tot)
        if k < n0:
            t = 0
            c, base = shared_rows(ix0, k)
            ix = ix0
        elif k < n0 + n1:
            t = 1
            c, base = shared_rows(ix1, k - n0)
            ix = ix1
        else:
            t = 2
            c, base = shared_rows(ix2, k - n0 - n1)
            ix = ix2
        r, s = _two_rows(ix, c, base, rng)
        sig = 1 if (mod2 or P[r, t] == P[s, t]) else -1  # the same key: equal, or opposite
        u, v = _flip_drawn(P, N, r, s, t, sig, rng, mod2)
        if u >= 0:
            return r, s, u, v
    return -1, -1, -1, -1


@njit(cache=True)
def _settled(P, N, R, x, h, mod2, ix):
    """Whether term x (whose slot h changed) now agrees with another term in two slots: only terms
    in x's bucket of the slot-h index can (a pair settled before shared at most one slot)."""
    c, base = row_bucket(ix, x)
    for i in range(c):
        y = ix[base + i]
        if y == x:
            continue
        if (_match(P, N, x, y, (h + 1) % 3, mod2) != 0) or (_match(P, N, x, y, (h + 2) % 3, mod2) != 0):
            return False
    return True


# -- the orbit walk's moves (``search.flips.symmetric_kernels.sym_walk``) ---------------------
@njit(cache=True)
def _sym_settle(P, N, R, watch, FP, FN, nf, mod2, table, collapse=True):
    """Reductions of the watched orbits (``_settle_loop``). Returns (R, number of fixed terms, reductions)."""
    hint = -np.ones(watch.shape[0], np.int64)
    near = -np.ones(watch.shape[0], np.int64)
    ix = np.zeros(1, np.int64)  # not read without hints
    return _sym_settle_hint(P, N, R, watch, hint, near, FP, FN, nf, mod2, table, ix, collapse)


@njit(cache=True)
def _sym_settle_hint(P, N, R, watch, hint, near, FP, FN, nf, mod2, table, ix, collapse=True):
    """``_sym_settle`` where ``hint[w]`` is the one slot of term ``watch[w]`` that changed (−1: unknown)
    and ``near[w]`` an orbit whose terms changed too (compared in full; −1: none): the one settle
    loop (``_settle_loop``) on orbits, whose partners with a hint come from the index ``ix``
    (in sync with P, N; see ``_orbit_partner``). After a reduction the index is stale and
    every term is compared in full."""
    return _settle_loop(P, N, R, watch, hint, mod2, True, near, ix, table, FP, FN, nf, collapse)


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
        c, base = shared_rows(ix, _below(rng, ns))
        r, s = _two_rows(ix, c, base, rng)
        if r // 3 == s // 3:
            continue
        sig = 1 if (mod2 or P[r, 0] == P[s, 0]) else -1  # same key: equal, or opposite
        u, v = _flip_drawn(P, N, r, s, 0, sig, rng, mod2)  # orbits share slot 0
        if u >= 0:
            return r, s, u, v
    return -1, -1, -1, -1


@njit(cache=True)
def _sym_plus(P, N, R, rng, mod2, tries, table):
    """A plus transition (``kernel.plus_pair``) on terms of two orbits; the new term starts orbit
    R // 3 and the three changed orbits get their images. Returns (R, r, s, new)."""
    r, s, _u, _v = plus_pair(P, N, R, rng, mod2, tries, 3)
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


# -- the one walk loop ------------------------------------------------------------------------
@njit(cache=True)
def _walk_plus(P, N, R, nf, rng, mod2, tries, orbit, watch, ix0, ik0, ix1, ik1, ix2, ik2, table, FP, FN, collapse):
    """A plus transition with ``tries`` draws, then settled: on rows (``_plus_settled``) or on
    orbits (``_sym_plus_settled``). Returns (R, nf, reductions, whether a plus was made)."""
    if orbit:
        return _sym_plus_settled(P, N, R, rng, mod2, tries, table, watch, FP, FN, nf, ix0, ik0, collapse)
    R, red, made = _plus_settled(P, N, R, rng, mod2, tries, ix0, ik0, ix1, ik1, ix2, ik2)
    return R, nf, red, made


@njit(cache=True, inline="always")
def _walk_loop(P, N, R, nf, mod2, orbit, stop_rank, max_flips, plateau, max_rank, rng, out,
               ix0, ik0, ix1, ik1, ix2, ik2, table, FP, FN, collapse):
    """The one walk loop of ``walk`` (``orbit`` False: rows, three slot indexes ix0..ik2) and of
    ``symmetric_kernels.sym_walk`` (``orbit`` True: orbits of rows 3k..3k+2, one slot-0 index in
    ix0, ik0; ``nf`` fixed terms in FP, FN count toward the rank).

    Flips until the rank R + nf is at most ``stop_rank`` or ``max_flips`` flips are done; a plus
    transition (``group`` = 1 or 3 new rows, while R + nf + group <= ``max_rank``) after enough
    draws in a row found no flip (without one the walk stops: the scheme is isolated) and after
    ``plateau`` flips without a reduction. Fills ``out`` (OUT_*); returns (R, nf).

    Inlined into its two callers with ``orbit`` a constant, as ``_settle_loop`` is, so each
    compiles only its own branches. The flip and the settling after it are written in the loop,
    not in ``inline="always"`` helpers: measured (``bench/bench_flips.py -k flip_rate`` loops,
    alternating with the two separate loops), helpers inlined into the hot path cost the plain
    walk 20–30 % of its flip rate (<3,3,3> mod 2 6.0–6.6 → 3.7–4.6 M/s), most likely the
    reference counts of the array arguments each inlined call binds. With the bodies in the loop and
    ``_flip_ix``, ``_sym_flip`` and ``_walk_plus`` plain (not inlined) calls (``_two_rows``, with one
    array argument, is inlined into both draws), the rate equals the two separate loops' (6
    alternating rounds of 3 × 2 M flips, plain <3,3,3>/<4,4,4> over Z and mod 2 and the orbit walk
    at n = 4, 5 mod 2: best rounds within 1 %, medians within the machine's ±5 % noise); inlining
    ``_walk_plus`` cost the orbit walk about 10 %.
    """
    group = 3 if orbit else 1
    watch = np.empty(3 if orbit else 2, np.int64)  # the orbit plus watches three orbits
    hint = np.empty_like(watch)
    near = np.empty_like(watch)
    flips = 0
    attempts = 0
    reductions = 0
    plus = 0
    since = 0
    misses = 0
    # (an orbit walk with no orbit left has nothing to draw from)
    while R + nf > stop_rank and flips < max_flips and (R > 0 or not orbit):
        attempts += 1
        if orbit:
            r, s, u, v = _sym_flip(P, N, R, rng, mod2, ix0)
        else:
            r, s, u, v = _flip_ix(P, N, rng, mod2, ix0, ix1, ix2)
        if r < 0:
            misses += 1
            # no flip in 16 draws (none shared, or all out of the ternary range): after a few
            # such misses in a row the scheme is isolated (Strassen, Laderman, the naive <1,1,1>);
            # the orbit walk waits 4R + 16 misses
            if misses > (4 * R + 16 if orbit else 16):
                if R + nf + group <= max_rank:  # a plus transition opens flips
                    R, nf, red, made = _walk_plus(P, N, R, nf, rng, mod2, 64, orbit, watch,
                                                  ix0, ik0, ix1, ik1, ix2, ik2, table, FP, FN, collapse)
                    if made:
                        plus += 1
                        reductions += red
                        misses = 0
                        continue
                break
            continue
        misses = 0
        flips += 1
        since += 1
        R2 = R
        red = 0
        if orbit:
            _regen(P, N, r, table)
            _regen(P, N, s, table)
            for k in range(3):
                index_sync(ix0, ik0, P, N, r - r % 3 + k, R, mod2)
                index_sync(ix0, ik0, P, N, s - s % 3 + k, R, mod2)
            watch[0] = r
            watch[1] = s
            watch[2] = -1
            hint[0] = u
            hint[1] = v
            hint[2] = -1
            near[0] = s // 3
            near[1] = r // 3
            near[2] = -1
            R2, nf, red = _sym_settle_hint(P, N, R, watch, hint, near, FP, FN, nf, mod2, table, ix0, collapse)
            if red > 0:
                index_rebuild(ix0, ik0, P, N, R2, mod2)
        else:
            ixu, iku = (ix0, ik0) if u == 0 else ((ix1, ik1) if u == 1 else (ix2, ik2))
            ixv, ikv = (ix0, ik0) if v == 0 else ((ix1, ik1) if v == 1 else (ix2, ik2))
            index_sync(ixu, iku, P, N, r, R, mod2)
            index_sync(ixv, ikv, P, N, s, R, mod2)
            if (_is_zero_term(P, N, r) or _is_zero_term(P, N, s)
                    or not _settled(P, N, R, r, u, mod2, ixu) or not _settled(P, N, R, s, v, mod2, ixv)):
                watch[0] = r
                watch[1] = s
                hint[0] = u
                hint[1] = v
                R2, red = _settle_hint(P, N, R, watch, hint, mod2)
                _rebuild3(ix0, ik0, ix1, ik1, ix2, ik2, P, N, R2, mod2)
        if R2 < R:  # on orbits every reduction lowers R; on rows a vanished term does without one
            reductions += red
            since = 0
        R = R2
        if since >= plateau and R + nf + group <= max_rank:  # a plus transition leaves a plateau
            R, nf, red, made = _walk_plus(P, N, R, nf, rng, mod2, 16, orbit, watch,
                                          ix0, ik0, ix1, ik1, ix2, ik2, table, FP, FN, collapse)
            if made:
                plus += 1
            reductions += red
            since = 0
    _report(out, R + nf, flips, reductions, plus, attempts)
    return R, nf


@njit(cache=True)
def walk(P, N, R, mod2, stop_rank, max_flips, plateau, max_rank, rng, out):
    """Random walk in place until the rank is at most ``stop_rank`` or ``max_flips`` flips are done.

    ``plateau`` flips without a reduction trigger a plus transition while the rank is below
    ``max_rank`` (``max_rank <= R`` disables them). ``P``/``N`` need ``max_rank + 1`` rows.
    Fills ``out`` (see OUT_*) and returns the final rank.

    Flips are drawn from per-slot factor indexes (``valueindex``), kept up to date row by row
    after a flip; after a flip only the changed terms' buckets are checked for a reduction, and
    the full ``_settle_hint`` runs only when one is there (and after plus transitions), followed
    by a rebuild of the indexes (reductions are rare next to flips).

    Measured against the previous scan-based walk (one core shared with other jobs, flips per
    CPU-second, ``bench/bench_flips.py -k flip_rate``): <4,4,4> over Z 1.44 → 2.56 M/s, mod 2
    2.19 → 2.94 M/s; <3,3,3> Z 1.83 → 2.47, mod 2 3.31 → 3.33. Flips needed to reach a rank did
    not change measurably (median over seeds 0–7, <3,3,3> → 23 over Z: 2.0 M vs 1.7 M flips;
    seeds 0–3, <2,3,4> → 20 over Z: 8.9 M vs 10.0 M), so the time to a rank falls with the rate.
    """
    ix0, ik0, ix1, ik1, ix2, ik2 = _indexes(P, N, R, mod2)
    # orbit=False: table, FP, FN are never read (P stands in for them)
    R, _nf = _walk_loop(P, N, R, 0, mod2, False, stop_rank, max_flips, plateau, max_rank, rng, out,
                        ix0, ik0, ix1, ik1, ix2, ik2, P, P, P, False)
    return R
