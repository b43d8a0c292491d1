"""Hensel lifting of mod-2 schemes to Z (or Q with odd denominators), with a report when one fails.

A scheme valid mod 2 solves the Brent equations ``F(x) = Σ_r U[a,r]·V[b,r]·W[c,r] − T[a,b,c] ≡ 0``
modulo 2. If ``F(x) ≡ 0 (mod 2^k)``, then ``x + 2^k·δ`` solves them mod ``2^(k+1)`` exactly when

    J(x mod 2) · δ ≡ −F(x) / 2^k   (mod 2),

``J`` the Jacobian of ``F`` (the cross terms carry ``2^(2k)`` and vanish, k ≥ 1). ``J`` depends only
on ``x mod 2``, so it is row-reduced once over GF(2) (bit-packed, numba) and every step is one
matrix-vector product. Free variables are set to zero first (Kauers & Moosbauer's choice), then at random on retries. After each
step the symmetric residues are tried as an integer scheme; at the end every coefficient is
rationally reconstructed from its 2-adic residue (odd denominators only) and the result is
verified exactly over Q.

When the system mod 4 is inconsistent no 2-adic lift exists at all (the scheme is genuinely
mod-2 only, like AlphaTensor's <4,4,4;47>). An inconsistency at a later step, or a
reconstruction that does not verify, may instead come from the free-variable choice: the report
says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
from numba import njit

from compiler.algebra.factors import Factorization, Provenance, matmul_tensor


@dataclass(frozen=True)
class LiftReport:
    ok: bool
    factorization: Factorization | None
    modulus_exponent: int  # the highest k with the equations solved mod 2^k
    reason: str = ""
    definitive: bool = False  # True when no lift can exist (inconsistent mod 4)
    free_variables: int = 0
    history: tuple[str, ...] = field(default_factory=tuple)
    attempts: int = 1  # choices of the free variables tried

    def describe(self) -> str:
        if self.ok:
            f = self.factorization
            return f"lifted to {f.label()} valid over Q (solved mod 2^{self.modulus_exponent})"
        return f"does not lift: {self.reason}"


@njit(cache=True)
def _rref_gf2(A, ncols):
    """Row-reduce the bit-packed rows of ``A`` in place on its first ``ncols`` columns.

    The remaining columns ride along (an identity there records the row operations). Returns
    the pivot column of each of the first ``rank`` rows (−1 after).
    """
    nrows, nwords = A.shape
    piv = -np.ones(nrows, np.int64)
    rank = 0
    for col in range(ncols):
        w = col >> 6
        bit = np.uint64(1) << np.uint64(col & 63)
        sel = -1
        for r in range(rank, nrows):
            if A[r, w] & bit:
                sel = r
                break
        if sel < 0:
            continue
        if sel != rank:
            for k in range(nwords):
                tmp = A[sel, k]
                A[sel, k] = A[rank, k]
                A[rank, k] = tmp
        for r in range(nrows):
            if r != rank and (A[r, w] & bit):
                for k in range(w, nwords):
                    A[r, k] ^= A[rank, k]
        piv[rank] = col
        rank += 1
        if rank == nrows:
            break
    return piv


@njit(cache=True)
def _apply(M, b):
    """``M · b`` over GF(2): M bit-packed rows (nrows × nwords), b a 0/1 int vector."""
    nrows, nwords = M.shape
    packed = np.zeros(nwords, np.uint64)
    for i in range(b.shape[0]):
        if b[i]:
            packed[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    out = np.zeros(nrows, np.int64)
    for r in range(nrows):
        acc = np.uint64(0)
        for k in range(nwords):
            acc ^= M[r, k] & packed[k]
        c = 0
        while acc:
            acc &= acc - np.uint64(1)
            c ^= 1
        out[r] = c
    return out


def _pack(rows: np.ndarray) -> np.ndarray:
    """0/1 matrix -> bit-packed uint64 rows (bit j of word j//64)."""
    nr, nc = rows.shape
    nw = (nc + 63) // 64
    padded = np.zeros((nr, nw * 64), np.uint8)
    padded[:, :nc] = rows
    return np.packbits(padded.reshape(nr, nw, 64), axis=-1, bitorder="little").view("<u8").reshape(nr, nw).astype(np.uint64)


def _residual(U, V, W, T, mod):
    """``einsum(U, V, W) − T`` modulo ``mod`` (≤ 2^21), exact in int64."""
    R = U.shape[1]
    uv = np.mod(U[:, None, :] * V[None, :, :], mod).reshape(-1, R)  # < 2^42 before the mod
    t = np.mod(uv @ W.T, mod)  # R·2^42 < 2^63 for R < 2^21
    return np.mod(t.reshape(T.shape) - T, mod)


def _rational(x: int, mod: int) -> Fraction | None:
    """The a/b ≡ x (mod ``mod``) with |a|, b ≤ sqrt(mod/2), b odd; None when there is none."""
    bound = math.isqrt(mod // 2)
    r0, r1, s0, s1 = mod, x % mod, 0, 1
    while r1 > bound:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        s0, s1 = s1, s0 - q * s1
    if s1 == 0 or abs(s1) > bound or s1 % 2 == 0:
        return None
    return Fraction(r1, s1)


def _symmetric(x: np.ndarray, mod: int) -> np.ndarray:
    x = np.mod(x, mod)
    return np.where(x >= mod // 2, x - mod, x)


def hensel_lift(f: Factorization, max_exponent: int = 20, tries: int = 8, seed: int = 0,
                tie: np.ndarray | None = None, integral: bool = False) -> LiftReport:
    """Lift the mod-2 scheme ``f`` to one valid over Q; ``LiftReport.describe()`` says how it went.

    The first attempt sets the free variables to zero; when it fails for a reason that is not
    definitive, up to ``tries − 1`` more attempts pick them at random (seeded) at every step.

    ``tie`` restricts the lift to schemes with a given structure: the coefficient vector
    x = (U, V, W raveled) is ``p[tie]`` for a shorter vector p of unknowns, so equal ``tie``
    entries stay equal in every step (a Z3-invariant scheme keeps its symmetry:
    ``search.flips.symmetric.orbit_tie``). The unknowns are p and the Jacobian is J·L with L the
    0/1 map p → x (the chain rule; its column sums are taken mod 2). Entries of x that must be
    equal mod 2 must be equal in ``f``.

    With ``integral`` a lift whose coefficients are fractions (odd denominators) counts as a
    failure and the next attempt draws other free variables: only a scheme valid over Z is returned.
    """
    if not f.is_integral:
        raise ValueError(f"{f.label()}: Hensel lifting starts from an integral (mod-2) scheme")
    n, m, p = f.shape
    T = matmul_tensor(n, m, p)
    U0, V0, W0 = (np.mod(np.asarray(a, np.int64), 2) for a in (f.U, f.V, f.W))
    if not Factorization(f.shape, U0, V0, W0, "Z2").verify():
        return LiftReport(False, None, 0, "the scheme is not valid mod 2", definitive=True)
    A, B, C = T.shape
    R = f.rank
    nx = R * (A + B + C)
    x0 = np.concatenate([U0.ravel(), V0.ravel(), W0.ravel()]).astype(np.int64)
    if tie is not None:
        tie = np.asarray(tie, np.int64)
        if tie.shape != (nx,) or tie.min() < 0:
            raise ValueError(f"tie must map each of the {nx} coefficients to an unknown")
        npar = int(tie.max()) + 1
        p0 = np.zeros(npar, np.int64)
        p0[tie] = x0
        if not np.array_equal(p0[tie], x0):
            raise ValueError("tie joins coefficients that differ mod 2")
    # Jacobian mod 2: row (a,b,c); columns U[a',r] (a'·R + r), V[b',r], W[c',r]
    J = np.zeros((A, B, C, nx), np.uint8)
    vw = (V0[:, None, :] * W0[None, :, :]) & 1  # (B, C, R): ∂F[a,b,c]/∂U[a,r] = V[b,r]·W[c,r]
    uw = (U0[:, None, :] * W0[None, :, :]) & 1  # (A, C, R)
    uv = (U0[:, None, :] * V0[None, :, :]) & 1  # (A, B, R)
    for r in range(R):
        for a in range(A):
            J[a, :, :, a * R + r] = vw[:, :, r]
        for b in range(B):
            J[:, b, :, (A + b) * R + r] = uw[:, :, r]
        for c in range(C):
            J[:, :, c, (A + B + c) * R + r] = uv[:, :, r]
    E = A * B * C
    J = J.reshape(E, nx)
    if tie is not None:  # J·L: the columns of tied coefficients summed mod 2
        Jp = np.zeros((E, npar), np.uint8)
        for i in range(nx):
            Jp[:, tie[i]] ^= J[:, i]
        J, ncols = Jp, npar
    else:
        ncols = nx
    aug = np.concatenate([J, np.eye(E, dtype=np.uint8)], axis=1)
    del J
    packed = _pack(aug)
    del aug
    piv = _rref_gf2(packed, ncols)
    rank = int((piv >= 0).sum())
    # M = the row operations (identity part); rows < rank give pivot variables, rows ≥ rank
    # are the consistency conditions.
    M = _unpack_tail(packed, ncols, E)
    free = ncols - rank
    free_cols = np.setdiff1d(np.arange(ncols), piv[:rank])
    Rfree = None
    gen = np.random.default_rng(seed)
    reports = []
    for attempt in range(max(1, tries)):
        if attempt == 1:  # the RREF's free columns, to pick random solutions from now on
            bits = np.unpackbits(packed[:rank].view(np.uint8).reshape(rank, -1), axis=1, bitorder="little")
            Rfree = bits[:, free_cols].astype(np.int64)
        rep = _lift_from(f, x0, T, M, piv, rank, free, free_cols, Rfree, gen if attempt else None,
                         max_exponent, A, B, C, R, tie)
        if rep.ok and integral and not rep.factorization.is_integral:
            rep = replace(rep, ok=False, factorization=None,
                          reason="the lift has fractional coefficients (odd denominators), not valid over Z")
        if rep.ok or rep.definitive:
            return replace(rep, attempts=attempt + 1)
        reports.append(rep)
    last = reports[-1]
    return replace(last, attempts=len(reports),
                   reason=last.reason + f" (tried {len(reports)} choices of the free variables)")


def _lift_from(f, x, T, M, piv, rank, free, free_cols, Rfree, gen, max_exponent, A, B, C, R, tie=None) -> LiftReport:
    """One lifting attempt; free variables zero (``gen`` None) or random at every step.

    ``x`` is the full coefficient vector; with ``tie`` the solved unknowns δ live in the tied
    space and x moves by δ[tie]."""
    history = []
    ncols = len(x) if tie is None else int(tie.max()) + 1
    for k in range(1, max_exponent):
        mod = 2 ** (k + 1)
        U, V, W = _split(x, A, B, C, R)
        res = _residual(U, V, W, T, mod)
        if np.any(res % (2**k)):
            raise AssertionError("lifting invariant broken")  # cannot happen: F ≡ 0 mod 2^k by construction
        rhs = ((res // 2**k) % 2).ravel()  # J δ ≡ −F/2^k ≡ F/2^k (mod 2)
        y = _apply_bits(M, rhs)
        bad = int(y[rank:].sum())
        if bad:
            reason = (f"the Brent equations mod 2^{k + 1} have no solution above this one "
                      f"({bad} inconsistent conditions)")
            if k == 1:
                reason += (": no 2-adic lift with this structure exists" if tie is not None
                           else ": no 2-adic lift exists, the scheme is genuinely mod-2 only")
            else:
                reason += ": an earlier free-variable choice may be to blame"
            return LiftReport(False, None, k, reason, definitive=(k == 1), free_variables=free,
                              history=tuple(history))
        delta = np.zeros(ncols, np.int64)
        if gen is None or Rfree is None or not len(free_cols):
            delta[piv[:rank]] = y[:rank]
        else:  # pivot = y + Σ_free R[i, j]·x_j (mod 2) for random free x
            xf = gen.integers(0, 2, len(free_cols))
            delta[free_cols] = xf
            delta[piv[:rank]] = (y[:rank] + Rfree @ xf) % 2
        if tie is not None:
            delta = delta[tie]
        x = x + (2**k) * delta
        history.append(f"mod 2^{k + 1}: {int(delta.sum())} coefficients changed")
        # the symmetric residues, as integers: often already the lift
        cand = _symmetric(x, mod)
        g = _make(f, cand, A, B, C, R)
        if g is not None:
            return LiftReport(True, g, k + 1, free_variables=free, history=tuple(history))
    mod = 2**max_exponent
    fr = [_rational(int(v), mod) for v in x]
    if any(q is None for q in fr):
        return LiftReport(False, None, max_exponent,
                          f"solved mod 2^{max_exponent} but some coefficients are no small rational "
                          "(the free-variable choice may be to blame)", free_variables=free, history=tuple(history))
    arr = np.empty(len(x), dtype=object)
    arr[:] = fr
    g = _make(f, arr, A, B, C, R)
    if g is None:
        return LiftReport(False, None, max_exponent, "the rational reconstruction is not valid over Q",
                          free_variables=free, history=tuple(history))
    return LiftReport(True, g, max_exponent, free_variables=free, history=tuple(history))


def _unpack_tail(packed: np.ndarray, start: int, count: int) -> np.ndarray:
    """Columns [start, start+count) of the bit-packed matrix, re-packed from bit 0."""
    bits = np.unpackbits(packed.view(np.uint8).reshape(packed.shape[0], -1), axis=1, bitorder="little")
    return _pack(bits[:, start:start + count])


def _apply_bits(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _apply(M, b.astype(np.int64))


def _split(x, A, B, C, R):
    return (x[:A * R].reshape(A, R), x[A * R:(A + B) * R].reshape(B, R), x[(A + B) * R:].reshape(C, R))


def _make(f: Factorization, x: np.ndarray, A, B, C, R, how: str = "Hensel") -> Factorization | None:
    """The lifted scheme with provenance saying ``how`` it was lifted ("Hensel" or "sign"), or None if invalid."""
    U, V, W = _split(x, A, B, C, R)
    prov = f.provenance
    notes = (prov.notes + " " if prov.notes else "") + f"{how}-lifted from mod-2 scheme {f.label()} ({f.digest[:12]})"
    lifting = "Hensel lifting" if how == "Hensel" else "ternary (sign) lifting"
    g = Factorization(f.shape, U, V, W, "Q", _lifted_name(f), Provenance(prov.source, prov.found_by,
                      (prov.method + " + " if prov.method else "") + f"{lifting} (search.lift)", prov.date, notes))
    return g if g.verify() else None


def _lifted_name(f: Factorization) -> str:
    name = f.label()
    return name[:-5] if name.endswith("-mod2") else name + "-lifted"


def ternary_lift(f: Factorization, tries: int = 4096, seed: int = 0, tie: np.ndarray | None = None) -> LiftReport:
    """Signs for a mod-2 scheme: a scheme valid over Z with the same support and entries ±1.

    Every 1 becomes 1 + 2δ (δ = 1 gives −1 mod 4) and every 0 stays 0, so the lift mod 4 is the
    linear system J_S·δ ≡ F/2 (mod 2) restricted to the support S (one GF(2) row reduction). A
    solution is valid mod 4 only; each candidate from the solution space (the particular one,
    then random choices of the free variables) is checked exactly over Z. A Hensel lift keeps the
    coefficients it needs (often ±2, ±3); this one keeps the ternary form that the flip walk,
    the addition-aware walk and the kernels prefer, or reports that none was found.

    ``tie`` (as in ``hensel_lift``) gives tied coefficients one sign: a Z3-invariant scheme keeps
    its symmetry (``search.flips.symmetric.orbit_tie``), with a third of the sign variables.
    """
    if not f.is_integral:
        raise ValueError(f"{f.label()}: ternary lifting starts from an integral (mod-2) scheme")
    n, m, p = f.shape
    T = matmul_tensor(n, m, p)
    U0, V0, W0 = (np.mod(np.asarray(a, np.int64), 2) for a in (f.U, f.V, f.W))
    if not Factorization(f.shape, U0, V0, W0, "Z2").verify():
        return LiftReport(False, None, 0, "the scheme is not valid mod 2", definitive=True)
    A, B, C = T.shape
    R = f.rank
    x0 = np.concatenate([U0.ravel(), V0.ravel(), W0.ravel()]).astype(np.int64)
    S = np.flatnonzero(x0)  # the variables: signs of the nonzero coefficients
    # ∂F[a,b,c]/∂x over the support, mod 2 (as in hensel_lift, restricted to the columns S)
    J = np.zeros((A, B, C, x0.shape[0]), np.uint8)
    vw = (V0[:, None, :] * W0[None, :, :]) & 1
    uw = (U0[:, None, :] * W0[None, :, :]) & 1
    uv = (U0[:, None, :] * V0[None, :, :]) & 1
    for r in range(R):
        for a in range(A):
            J[a, :, :, a * R + r] = vw[:, :, r]
        for b in range(B):
            J[:, b, :, (A + b) * R + r] = uw[:, :, r]
        for c in range(C):
            J[:, :, c, (A + B + c) * R + r] = uv[:, :, r]
    E = A * B * C
    JS = J.reshape(E, -1)[:, S]
    del J
    inv = None
    if tie is not None:  # one sign per tied group of the support: the columns summed mod 2
        tie = np.asarray(tie, np.int64)
        up, inv = np.unique(tie[S], return_inverse=True)
        if np.any(x0[np.isin(tie, up)] == 0):
            raise ValueError("tie joins coefficients that differ mod 2")
        Jt = np.zeros((E, len(up)), np.uint8)
        for i in range(len(S)):
            Jt[:, inv[i]] ^= JS[:, i]
        JS = Jt
    ns = JS.shape[1]
    packed = _pack(np.concatenate([JS, np.eye(E, dtype=np.uint8)], axis=1))
    piv = _rref_gf2(packed, ns)
    rank = int((piv >= 0).sum())
    M = _unpack_tail(packed, ns, E)
    U, V, W = _split(x0, A, B, C, R)
    res = _residual(U, V, W, T, 4)
    rhs = ((res // 2) % 2).ravel()
    y = _apply_bits(M, rhs)
    if int(y[rank:].sum()):
        return LiftReport(False, None, 1, "no signs make the scheme valid mod 4 (the ternary system is "
                          "inconsistent): no ternary lift with this support", definitive=True,
                          free_variables=ns - rank)
    free_cols = np.setdiff1d(np.arange(ns), piv[:rank])
    bits = np.unpackbits(packed[:rank].view(np.uint8).reshape(rank, -1), axis=1, bitorder="little")
    Rfree = bits[:, free_cols].astype(np.int64)
    gen = np.random.default_rng(seed)
    for attempt in range(max(1, tries)):
        delta = np.zeros(ns, np.int64)
        xf = gen.integers(0, 2, len(free_cols)) if attempt else np.zeros(len(free_cols), np.int64)
        delta[free_cols] = xf
        delta[piv[:rank]] = (y[:rank] + Rfree @ xf) % 2
        x = x0.copy()
        x[S] = 1 - 2 * (delta if inv is None else delta[inv])
        U, V, W = _split(x, A, B, C, R)
        if np.any(np.einsum("ir,jr,kr->ijk", U, V, W) != T):  # cheap exact check before the Factorization
            continue
        g = _make(f, x, A, B, C, R, how="sign")
        if g is not None:
            g = g.replace(name=g.label() + "-ternary")
            return LiftReport(True, g, 2, free_variables=len(free_cols), attempts=attempt + 1,  # mod 4 by construction, then exact
                              history=(f"signs valid over Z after {attempt + 1} candidate(s)",))
    return LiftReport(False, None, 2, f"{tries} sign choices valid mod 4 were tried, none is valid over Z "
                      f"({len(free_cols)} free sign variables)", free_variables=len(free_cols), attempts=tries)
