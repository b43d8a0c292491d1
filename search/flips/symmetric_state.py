"""Z3-invariant schemes of <n,n,n> in walk form (``search.flips.symmetric``): the state (orbit
rows and fixed terms), its starts (naive, split and merged fixed terms, diagonal), decoding to a
``Factorization``, σ, and the invariance checks and orbit ties of a factorization."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance
from search.flips import kernel as K
from search.flips.encoding import FIELDS
from search.flips.orbits import _ZERO, _regen, _tr, transpose_table

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
    st.R, st.nf, _ = K._sym_settle(st.P, st.N, st.R, np.array([st.R - 3], np.int64), st.FP, st.FN, st.nf, mod2, table)
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
