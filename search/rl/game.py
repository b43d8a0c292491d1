"""TensorGame: decompose a residual tensor into rank-one terms, one action at a time.

State: the residual tensor S (int64, shape (n·m, m·p, n·p)), starting at the <n,m,p> matmul tensor,
optionally expressed in a random unimodular basis (``Basis``). An action is a vector of
coefficients ``a = (u, v, w)`` of length n·m + m·p + n·p with entries in the configured set; it
updates S ← S − u⊗v⊗w (modulo 2 over Z2). Every step costs −1. The game ends when S = 0 (a
factorization: the actions are its columns) or at the step limit, where the terminal reward is
−(an upper bound on the rank of S): the smallest, over the three modes, sum of the ranks of the
slices (any tensor is the sum of its slices, and a rank-r matrix slice is r rank-one terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from compiler.algebra.factors import Factorization, Provenance, matmul_tensor
from search.rl.config import GameConfig


# -- exact ranks -------------------------------------------------------------------------------
def int_rank(mat: np.ndarray) -> int:
    """Exact rank of an integer matrix over Q (fraction-free Gaussian elimination)."""
    a = [[int(x) for x in row] for row in np.asarray(mat).tolist()]
    rows, cols = len(a), len(a[0]) if a else 0
    r = 0
    for c in range(cols):
        piv = next((i for i in range(r, rows) if a[i][c] != 0), None)
        if piv is None:
            continue
        a[r], a[piv] = a[piv], a[r]
        for i in range(r + 1, rows):
            if a[i][c]:
                f, g = a[i][c], a[r][c]
                a[i] = [g * x - f * y for x, y in zip(a[i], a[r])]
        r += 1
        if r == rows:
            break
    return r


def gf2_rank(mat: np.ndarray) -> int:
    """Rank of a 0/1 matrix over GF(2) (rows as bit masks)."""
    rows = [int("".join(str(int(x) & 1) for x in row), 2) for row in np.asarray(mat).tolist()]
    r = 0
    for bit in reversed(range(np.asarray(mat).shape[1])):
        piv = next((i for i in range(r, len(rows)) if rows[i] >> bit & 1), None)
        if piv is None:
            continue
        rows[r], rows[piv] = rows[piv], rows[r]
        for i in range(len(rows)):
            if i != r and rows[i] >> bit & 1:
                rows[i] ^= rows[r]
        r += 1
    return r


def rank_upper_bound(s: np.ndarray, field: str = "Z") -> int:
    """min over modes of Σ rank(slice): an upper bound on the tensor rank of ``s``."""
    rk = gf2_rank if field == "Z2" else int_rank
    best = None
    for axis in range(3):
        tot = sum(rk(np.take(s, i, axis=axis)) for i in range(s.shape[axis]) if np.any(np.take(s, i, axis=axis)))
        best = tot if best is None else min(best, tot)
    return int(best or 0)


# -- exact admissible signals: what a residual needs, at the least -----------------------------
# A prime below 2³¹: products of two residues fit in int64 (fraction-free elimination multiplies two).
RANK_PRIME = 2147483629


def batch_ranks(mats: np.ndarray, prime: int = RANK_PRIME) -> np.ndarray:
    """Ranks modulo ``prime`` of a batch of integer matrices (B, r, c) → (B,), vectorised.

    Fraction-free Gaussian elimination in the residues: row_i ← p·row_i − a_i·row_piv keeps the rank
    (p ≠ 0 mod prime). The rank modulo a prime is never above the rank over Q (a nonzero minor mod
    prime is nonzero), so over Z this is a *lower* bound on the rational rank, equal to it unless
    the prime divides every maximal nonzero minor. With ``prime`` 2 it is the exact rank over GF(2).
    """
    A = np.mod(np.asarray(mats, dtype=np.int64), prime)
    if A.shape[1] < A.shape[2]:
        A = A.transpose(0, 2, 1)  # (B, long, short): one elimination pass per column of the short side
    A = np.ascontiguousarray(A)
    B, rows, cols = A.shape
    rank = np.zeros(B, np.int64)
    used = np.zeros((B, rows), bool)
    ar = np.arange(B)
    for j in range(cols):
        col = A[:, :, j]
        cand = (col != 0) & ~used
        has = cand.any(1)
        if not has.any():
            continue
        piv = np.argmax(cand, 1)
        pv = np.where(has, col[ar, piv], 1)
        prow = A[ar, piv]
        others = ~used & (np.arange(rows)[None, :] != piv[:, None]) & has[:, None]
        f = np.where(others, col, 0)
        A = np.mod(A * pv[:, None, None] - f[:, :, None] * prow[:, None, :], prime)
        used[ar[has], piv[has]] = True
        rank += has
    return rank


def flattening_ranks(s: np.ndarray, field: str = "Z") -> np.ndarray:
    """Ranks of the three flattenings of residuals ``s`` ((B, S1, S2, S3) or one tensor) → (B, 3).

    Each is a lower bound on the tensor rank (a sum of R rank-one terms flattens to rank ≤ R):
    exact over GF(2) for Z2; over Z the ranks modulo a large prime, themselves lower bounds.
    """
    s = np.asarray(s, dtype=np.int64)
    one = s.ndim == 3
    s = s[None] if one else s
    B, S1, S2, S3 = s.shape
    prime = 2 if field == "Z2" else RANK_PRIME
    out = np.stack([batch_ranks(s.reshape(B, S1, S2 * S3), prime),
                    batch_ranks(s.transpose(0, 2, 3, 1).reshape(B, S2, S3 * S1), prime),
                    batch_ranks(s.transpose(0, 3, 1, 2).reshape(B, S3, S1 * S2), prime)], 1)
    return out[0] if one else out


# Fixed combinations of slices for the Koszul bound (any choice gives a valid bound; generic ones give
# the largest, and a fixed seed keeps the pruning deterministic). One per mode: on 1000 <2,2,2>
# residuals (T minus a correct term minus a random one) 1, 2 and 3 per mode gave identical bounds
# (999 of 1000 at 6), and one costs 0.14 ms a residual against 0.26 ms for three.
_KOSZUL_TRIALS = 1


def _koszul_combinations(a: int, field: str) -> np.ndarray:
    g = np.random.default_rng(20261202).integers(-3, 4, size=(_KOSZUL_TRIALS, 3, a))
    return g % 2 if field == "Z2" else g


def koszul_bounds(s: np.ndarray, field: str = "Z") -> np.ndarray:
    """A rank lower bound from Koszul flattenings (Strassen's equations), for residuals (B, S1, S2, S3).

    Restrict one mode to a 3-dim subspace: three slice combinations X₁, X₂, X₃ (n×m). The Koszul
    flattening K = [[−X₂, X₁, 0], [−X₃, 0, X₁], [0, −X₃, X₂]] (3n × 3m) has rank 2 for a rank-one
    tensor and is linear in the tensor, so rank(K) ≤ 2·rank: rank ≥ ⌈rank(K)/2⌉. Reaches
    ⌈3·min(n,m)/2⌉, above the flattening rank: on <2,2,2> it is 6 for T and for T minus a random
    term after a correct one, but 5 for T minus two terms of a rank-7 decomposition. Ranks modulo a
    prime (lower bounds) as in ``flattening_ranks``; exact over GF(2).
    """
    s = np.asarray(s, dtype=np.int64)
    B = len(s)
    prime = 2 if field == "Z2" else RANK_PRIME
    best = np.zeros(B, np.int64)
    for mode in range(3):
        X = np.moveaxis(s, mode + 1, 1)  # (B, a, n, m): the slices along this mode
        a = X.shape[1]
        if a < 3:
            continue
        for G in _koszul_combinations(a, field):
            X1, X2, X3 = np.einsum("ta,banm->tbnm", G, X)
            Z = np.zeros_like(X1)
            K = np.concatenate([np.concatenate([-X2, X1, Z], 2), np.concatenate([-X3, Z, X1], 2),
                                np.concatenate([Z, -X3, X2], 2)], 1)
            best = np.maximum(best, (batch_ranks(K, prime) + 1) // 2)
    return best


def max_koszul_bound(dims: tuple[int, int, int]) -> int:
    """The largest value ``koszul_bounds`` can take for this shape (0 when no mode has 3 slices)."""
    out = 0
    for a, n, m in ((dims[0], dims[1], dims[2]), (dims[1], dims[0], dims[2]), (dims[2], dims[0], dims[1])):
        if a >= 3:
            out = max(out, -(-3 * min(n, m) // 2))
    return out


def rank_lower_bounds(s: np.ndarray, field: str = "Z", koszul: bool = True) -> np.ndarray:
    """max(flattening ranks, Koszul bound) for residuals (B, S1, S2, S3): a lower bound on each rank."""
    s = np.asarray(s, dtype=np.int64)
    lb = flattening_ranks(s, field).max(-1)
    return np.maximum(lb, koszul_bounds(s, field)) if koszul else lb


def can_finish(s: np.ndarray, remaining: int, field: str = "Z", koszul: bool = True) -> np.ndarray:
    """False where residual(s) ``s`` provably cannot be decomposed in ``remaining`` more terms.

    Admissible: a residual with a rank lower bound above the remaining steps has tensor rank above
    them, so no sequence of moves finishes it in time. True means "not excluded", not "finishable".
    The Koszul bound is computed only where it can exceed ``remaining`` and the flattening did not.
    """
    s = np.asarray(s, dtype=np.int64)
    one = s.ndim == 3
    s = s[None] if one else s
    ok = flattening_ranks(s, field).max(-1) <= remaining
    if koszul and remaining < max_koszul_bound(s.shape[1:]) and ok.any():
        sel = np.flatnonzero(ok)
        ok[sel] = koszul_bounds(s[sel], field) <= remaining
    return ok[0] if one else ok


def term_sizes(actions: np.ndarray, dims: tuple[int, int, int]) -> np.ndarray:
    """Entries of each term u⊗v⊗w: nnz(u)·nnz(v)·nnz(w), for actions (..., L)."""
    a = np.asarray(actions) != 0
    s1, s2, _ = dims
    return a[..., :s1].sum(-1) * a[..., s1:s1 + s2].sum(-1) * a[..., s1 + s2:].sum(-1)


def order_admissible(residuals: np.ndarray, left: int, sizes: np.ndarray) -> np.ndarray:
    """False where a residual provably needs more than ``left`` terms of size ≤ ``sizes`` (ordered games).

    A term of size z changes at most z entries, so ``left`` of them leave at most left·z entries
    nonzero: a residual with more nonzero entries cannot be finished in an ordered game.
    """
    r = np.asarray(residuals)
    nnz = (r.reshape(len(r), -1) != 0).sum(1)
    return nnz <= left * np.asarray(sizes)


def is_rank_one(s: np.ndarray, field: str = "Z") -> np.ndarray:
    """Which residuals of a batch (B, S1, S2, S3) are one rank-one tensor (nonzero), exactly.

    With (i, j, k) a nonzero entry of S = u⊗v⊗w, the fibres through it are u·v_j·w_k, u_i·v·w_k and
    u_i·v_j·w, so their outer product is S·S[i,j,k]²; conversely, that equality makes S an outer
    product. One vectorised integer test per residual (over Z2: the same test modulo 2).
    """
    s = np.asarray(s, dtype=np.int64)
    B = len(s)
    flat = s.reshape(B, -1)
    nz = flat.any(1)
    first = np.argmax(flat != 0, 1)
    i, j, k = np.unravel_index(first, s.shape[1:])
    b = np.arange(B)
    f1, f2, f3 = s[b, :, j, k], s[b, i, :, k], s[b, i, j, :]
    lhs = np.einsum("bi,bj,bk->bijk", f1, f2, f3)
    c = s[b, i, j, k]
    rhs = s * (c * c)[:, None, None, None]
    if field == "Z2":
        lhs, rhs = lhs % 2, rhs % 2
    return nz & (lhs == rhs).reshape(B, -1).all(1)


def rank_one_action(s: np.ndarray, cfg: GameConfig) -> np.ndarray | None:
    """The action (u, v, w) with u⊗v⊗w = s and coefficients in the set, if there is one (else None).

    The exact endgame of one remaining step: a rank-one integer tensor is c·u₀⊗v₀⊗w₀ with primitive
    fibres u₀, v₀, w₀ (each fibre through a nonzero entry is a multiple of its factor); the scalar c
    is split over the factors in whichever way keeps the coefficients in the set.
    """
    s = np.asarray(s, dtype=np.int64)
    nz = np.argwhere(s)
    if not len(nz):
        return None
    i, j, k = nz[0]
    fib = [s[:, j, k].copy(), s[i, :, k].copy(), s[i, j, :].copy()]
    if cfg.field == "Z2":
        u, v, w = (np.mod(f, 2) for f in fib)
        if np.array_equal(np.mod(outer(u, v, w), 2), np.mod(s, 2)):
            return np.concatenate([u, v, w])
        return None
    prim = []
    for f in fib:
        g = int(np.gcd.reduce(np.abs(f)))
        prim.append(f // g)
    c0 = outer(*prim)
    ref = c0[i, j, k]
    if s[i, j, k] % ref:
        return None
    c = s[i, j, k] // ref
    if not np.array_equal(c * c0, s):
        return None
    allowed = set(cfg.coefficients)
    m = abs(int(c))
    divisors = [d for d in range(1, m + 1) if m % d == 0]
    for c1 in divisors:  # c = c1·c2·c3 over the factors (the sign goes with the third)
        for c2 in (d for d in divisors if (m // c1) % d == 0):
            c3 = int(c) // (c1 * c2)
            a = np.concatenate([c1 * prim[0], c2 * prim[1], c3 * prim[2]])
            if set(np.unique(a).tolist()) <= allowed:
                return canonicalize(a, cfg.dims, cfg.field)
    return None


# -- actions -----------------------------------------------------------------------------------
def split(action: np.ndarray, dims: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, _ = dims
    action = np.asarray(action, dtype=np.int64)
    return action[:a], action[a:a + b], action[a + b:]


def outer(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("i,j,k->ijk", u, v, w)


def canonicalize(action: np.ndarray, dims: tuple[int, int, int], field: str = "Z") -> np.ndarray:
    """The one representative of (u,v,w) ~ (−u,−v,w) ~ (−u,v,−w): first nonzeros of u and v positive."""
    if field == "Z2":
        return np.asarray(action, dtype=np.int64) % 2
    if np.asarray(action).min() >= 0:
        return np.asarray(action, dtype=np.int64)  # a sign-free set ({0, 1}): nothing to choose
    u, v, w = (x.copy() for x in split(action, dims))
    for x in (u, v):
        nz = np.flatnonzero(x)
        if len(nz) and x[nz[0]] < 0:
            x *= -1
            w *= -1
    return np.concatenate([u, v, w])


def is_null(action: np.ndarray, dims: tuple[int, int, int]) -> bool:
    return any(not np.any(x) for x in split(action, dims))


# -- bases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Basis:
    """Unimodular change of basis of the three modes: the game plays T' = T ×₁ A ×₂ B ×₃ C."""

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    Ai: np.ndarray
    Bi: np.ndarray
    Ci: np.ndarray

    def apply(self, t: np.ndarray) -> np.ndarray:
        return np.einsum("ai,bj,ck,ijk->abc", self.A, self.B, self.C, t)

    def undo_factors(self, U: np.ndarray, V: np.ndarray, W: np.ndarray):
        """Factors of T' → factors of T: u = A⁻¹u' (integral: A is unimodular)."""
        return self.Ai @ U, self.Bi @ V, self.Ci @ W


def random_unimodular(d: int, rng: np.random.Generator, ops: int = 0, max_entry: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(M, M⁻¹), M a product of a signed permutation and elementary row additions (det ±1)."""
    perm = rng.permutation(d)
    signs = rng.choice([-1, 1], size=d)
    M = np.zeros((d, d), np.int64)
    M[np.arange(d), perm] = signs
    for _ in range((ops or d) if d > 1 else 0):
        i, j = rng.choice(d, size=2, replace=False)
        s = int(rng.choice([-1, 1]))
        row = M[i] + s * M[j]
        if np.abs(row).max() <= max_entry:
            M[i] = row
    Mi = np.array([[int(x) for x in row] for row in _exact_inv(M)], dtype=np.int64)
    assert (M @ Mi == np.eye(d, dtype=np.int64)).all()
    return M, Mi


def _exact_inv(M: np.ndarray) -> list[list[Fraction]]:
    n = M.shape[0]
    A = [[Fraction(int(x)) for x in row] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(M.tolist())]
    for c in range(n):
        piv = next(r for r in range(c, n) if A[r][c] != 0)
        A[c], A[piv] = A[piv], A[c]
        A[c] = [x / A[c][c] for x in A[c]]
        for r in range(n):
            if r != c and A[r][c]:
                f = A[r][c]
                A[r] = [x - f * y for x, y in zip(A[r], A[c])]
    return [row[n:] for row in A]


def random_basis(dims: tuple[int, int, int], rng: np.random.Generator) -> Basis:
    (A, Ai), (B, Bi), (C, Ci) = (random_unimodular(d, rng) for d in dims)
    return Basis(A, B, C, Ai, Bi, Ci)


# -- the game ----------------------------------------------------------------------------------
class TensorGame:
    """One episode. ``step`` returns the reward of the move; ``done`` says whether it ended."""

    def __init__(self, cfg: GameConfig, basis: Basis | None = None, target: np.ndarray | None = None) -> None:
        self.cfg = cfg
        self.dims = cfg.dims
        self.basis = basis
        t = matmul_tensor(*cfg.shape) if target is None else np.asarray(target, dtype=np.int64)
        if basis is not None:
            t = basis.apply(t)
        self.start = self._reduce(t)
        self.residual = self.start.copy()
        self.actions: list[np.ndarray] = []
        self.total_reward = 0.0

    def _reduce(self, t: np.ndarray) -> np.ndarray:
        return np.mod(t, 2) if self.cfg.field == "Z2" else t

    @property
    def steps(self) -> int:
        return len(self.actions)

    @property
    def solved(self) -> bool:
        return not self.residual.any()

    @property
    def done(self) -> bool:
        return self.solved or self.steps >= self.cfg.steps

    def key(self) -> bytes:
        k = self.residual.tobytes() + bytes([self.steps])
        # In an ordered game the moves left depend on the last term's size too.
        return k + int(self.size_bound).to_bytes(4, "little") if self.cfg.ordered else k

    @property
    def size_bound(self) -> int:
        """The largest size the next term may have (ordered games): the last term's, or any at first."""
        if not self.actions:
            return int(np.prod(self.dims))
        return int(term_sizes(self.actions[-1], self.dims))

    def clone(self) -> "TensorGame":
        g = TensorGame.__new__(TensorGame)
        g.cfg, g.dims, g.basis, g.start = self.cfg, self.dims, self.basis, self.start
        g.residual = self.residual.copy()
        g.actions = list(self.actions)
        g.total_reward = self.total_reward
        return g

    def step(self, action: np.ndarray) -> float:
        """Apply ``action``; −1, plus −(rank bound of the residual) if this hits the step limit unsolved."""
        if self.done:
            raise ValueError("the game is over")
        action = np.asarray(action, dtype=np.int64)
        if len(action) != sum(self.dims):
            raise ValueError(f"an action has {sum(self.dims)} coefficients, got {len(action)}")
        if not set(np.unique(action).tolist()) <= set(self.cfg.coefficients):
            raise ValueError(f"coefficients outside {self.cfg.coefficients}: {action.tolist()}")
        if self.cfg.ordered and term_sizes(action, self.dims) > self.size_bound:
            raise ValueError(f"out of order: a term of size {int(term_sizes(action, self.dims))} after one of "
                             f"size {self.size_bound} (ordered game)")
        self.residual = self._reduce(self.residual - outer(*split(action, self.dims)))
        self.actions.append(action)
        r = -1.0
        if not self.solved and self.steps >= self.cfg.steps:
            r -= self.terminal_penalty()
        self.total_reward += r
        return r

    def terminal_penalty(self) -> float:
        return float(rank_upper_bound(self.residual, self.cfg.field))

    def factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """U, V, W of the played actions, in the original basis."""
        cols = [split(a, self.dims) for a in self.actions]
        U, V, W = (np.stack([c[i] for c in cols], axis=1) if cols else np.zeros((d, 0), np.int64)
                   for i, d in enumerate(self.dims))
        if self.basis is not None:
            U, V, W = self.basis.undo_factors(U, V, W)
        return U, V, W

    def factorization(self, **provenance) -> Factorization:
        """The finished game as an exactly verified ``Factorization`` (raises if it is not one)."""
        if not self.solved:
            raise ValueError("the game is not solved: the residual is not zero")
        field = "Z2" if self.cfg.field == "Z2" else "Q"
        U, V, W = self.factors()
        n, m, p = self.cfg.shape
        f = Factorization(self.cfg.shape, U, V, W, field, f"{n}x{m}x{p}-rl-r{len(self.actions)}",
                          Provenance(**provenance) if provenance else Provenance(method="rl"))
        return f.require_valid()
