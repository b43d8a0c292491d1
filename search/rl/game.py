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

from compiler.factors import Factorization, Provenance, matmul_tensor
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
        return self.residual.tobytes() + bytes([self.steps])

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
