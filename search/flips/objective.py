"""Addition-aware (or any-reward) search: rank-preserving moves that maximise a reward plugin.

Flips keep the rank (a reduction only lowers it), so a walk at the target rank moves between
schemes of that rank; ``improve`` anneals over them on a reward from ``search.rewards`` (e.g.
``"additions"`` = −additions after the compiler's CSE). The reward is slow (one CSE run: ~0.1 s
for <3,3,3;23>, ~1 s for <4,4,4;49>), so a compiled annealer explores on a cheap proxy, the
additions *before* CSE (Σ nnz − rows, from the bitmasks), and after each chunk its best-proxy
scheme is exactly verified and scored; only a valid scheme is ever scored or kept.

Schemes without any flip (Strassen, Laderman, winograd⊗winograd: no two terms share a factor)
are walked by changes of basis instead: ``basis_move`` applies one elementary matrix I ± e_ij on
one side (``compiler.algebra.constructions.change_basis``), which keeps rank and validity and changes the
additions; the best of a few by a proxy that counts a shared factor once is scored and accepted
by Metropolis. (Measured: Laderman, 64 additions after CSE, to 62 in 33 s this way.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numba import njit

from compiler.algebra.factors import Factorization, Provenance
from search.flips import kernel as K
from search.flips.encoding import FIELDS, decode, encode


@dataclass(frozen=True)
class ObjectiveConfig:
    field: str = "Z"
    budget_s: float = 60.0
    max_evals: int | None = None  # reward evaluations (None: the time budget decides)
    chunk: int = 20_000  # annealing steps per compiled call; the chunk's best-proxy scheme is scored
    temperature: float = 2.0  # in proxy units (additions before CSE) at the start ...
    final_temperature: float = 0.3  # ... cooled geometrically to this at the end of the budget
    patience: int = 50  # chunks without a better reward before returning to the best scheme
    proxy_margin: int = 4  # score a chunk's best only when its proxy is within this of the best scored
    basis_moves: bool = True  # walk by changes of basis where no flip exists (else: escape by plus transitions)
    max_escapes: int = 4  # failed attempts to leave a scheme without flips before giving up
    seed: int = 0

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")


@dataclass
class ObjectiveResult:
    best: Factorization
    best_value: float
    start_value: float
    evaluations: int
    rejected_invalid: int
    seconds: float
    history: list[tuple[float, float]] = field(default_factory=list)  # (seconds, best value)
    failed_escapes: int = 0  # > 0: the walk was stuck on a scheme without flips


@njit(cache=True)
def _popcount(x):
    c = 0
    while x:
        x &= x - np.uint64(1)
        c += 1
    return c


@njit(cache=True)
def naive_additions(P, N, R, out_rows):
    """Additions before CSE: Σ_r (|u_r| − 1) + Σ_r (|v_r| − 1) + Σ_r |w_r| − (#outputs)."""
    s = 0
    for r in range(R):
        s += _popcount(P[r, 0] | N[r, 0]) - 1 + _popcount(P[r, 1] | N[r, 1]) - 1 + _popcount(P[r, 2] | N[r, 2])
    return s - out_rows


@njit(cache=True)
def _anneal(P, N, R, mod2, steps, t_start, t_end, rng, out_rows, bestP, bestN):
    """``steps`` Metropolis steps on the proxy (one flip each, undone when rejected).

    A reduction (rank − 1) is always accepted: rank comes first. The lowest (rank, proxy) state
    met after the first accepted move is copied to ``bestP/bestN`` (so every chunk offers a
    scheme other than its start for scoring). Returns (rank, proxy, best rank, best proxy, accepted).
    """
    cur = naive_additions(P, N, R, out_rows)
    best = 1 << 60
    bestR = R + 1
    bestP[:, :] = P
    bestN[:, :] = N
    saveP = P.copy()
    saveN = N.copy()
    watch = np.empty(2, np.int64)
    hint = np.empty(2, np.int64)
    accepted = 0
    for i in range(steps):
        temp = t_start * (t_end / t_start) ** (i / steps)
        saveP[:R] = P[:R]
        saveN[:R] = N[:R]
        r, s, u, v = K._flip(P, N, R, rng, mod2)
        if r < 0:
            continue
        watch[0] = r
        watch[1] = s
        hint[0] = u
        hint[1] = v
        R2, red = K._settle_hint(P, N, R, watch, hint, mod2)
        new = naive_additions(P, N, R2, out_rows)
        u = np.float64(K._next(rng) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
        if R2 < R or new <= cur or u < np.exp((cur - new) / temp):
            R = R2
            cur = new
            accepted += 1
            if R < bestR or (R == bestR and cur < best):
                bestR = R
                best = cur
                bestP[:, :] = P
                bestN[:, :] = N
        else:
            P[:R] = saveP[:R]
            N[:R] = saveN[:R]
    return R, cur, bestR, best, accepted


def _escape(P, N, R, mod2, rng, flips: int = 2_000_000, tries: int = 16):
    """Leave a scheme without flips (Strassen and Laderman have none: no two terms share a
    factor): 2-4 plus transitions, then a walk back down to rank ``R``; kept only when the scheme
    reached admits flips (one plus transition measured to fall back to an isolated scheme in
    20 of 20 tries from Laderman; three, in 5 of 20 to a flippable one). Returns ``None`` when
    every try fails (200k flips per walk back measured too few: 3 of 4 seeds failed 64 tries from Laderman)."""
    out = np.zeros(5, np.int64)
    for t in range(tries):
        Q = np.zeros((P.shape[0] + 5, 3), np.uint64)
        M = np.zeros((P.shape[0] + 5, 3), np.uint64)
        Q[:R], M[:R] = P[:R], N[:R]
        R1 = R
        for _ in range(2 + t % 3):
            R1 = K._plus(Q, M, R1, rng, mod2, 64)[0]
        R2 = K.walk(Q, M, R1, mod2, R, flips, 1 << 62, R1, rng, out)
        if R2 > R:
            continue
        Q2, M2 = Q.copy(), M.copy()
        K.walk(Q2, M2, R2, mod2, 0, 8, 1 << 62, R2, rng, out)
        if out[K.OUT_FLIPS] > 0:
            return Q[:P.shape[0]].copy(), M[:P.shape[0]].copy(), R2
    return None


def _side_cost(A: np.ndarray) -> int:
    """Additions to form the distinct (up to sign) columns of A: a shared factor is built once."""
    cols = set()
    for c in A.T.tolist():
        neg = [-x for x in c]
        cols.add(tuple(max(c, neg)))
    return sum(sum(1 for x in c if x) - 1 for c in cols)


def proxy_additions(f: Factorization) -> int:
    """A cheap stand-in for additions after CSE: distinct a- and b-side factors, plus the c side."""
    U, V, W = (np.asarray(a, dtype=object) for a in (f.U, f.V, f.W))
    return _side_cost(U) + _side_cost(V) + int(np.count_nonzero(W != 0)) - W.shape[0]


def _is_ternary(f: Factorization) -> bool:
    return f.is_integral and all(int(np.abs(np.asarray(a)).max(initial=0)) <= 1 for a in (f.U, f.V, f.W))


def basis_move(f: Factorization, gen: np.random.Generator) -> Factorization:
    """``f`` in another basis: one elementary matrix I ± e_ij on one of the three sides.

    A rank-preserving move that exists for every scheme, including the ones without flips
    (the sandwich maps shared factors to shared factors, so it never creates a flip).
    """
    from compiler.algebra.constructions import change_basis
    mats = [np.eye(d, dtype=np.int64) for d in f.shape]
    sides = [k for k, d in enumerate(f.shape) if d > 1]
    k = sides[int(gen.integers(len(sides)))]
    d = f.shape[k]
    i, j = gen.choice(d, 2, replace=False)
    mats[k][i, j] = 1 if gen.random() < 0.5 else -1
    g = change_basis(f, *mats)
    return g.replace(name=f.name, provenance=f.provenance)


def _basis_step(cur: Factorization, cur_v: float, reward, gen: np.random.Generator, field: str,
                proposals: int = 8, temperature: float = 0.5):
    """Best-by-proxy of ``proposals`` basis moves, scored by the reward and accepted by Metropolis.

    Returns (candidate or None, its reward or None, accepted). The walk may pass through
    integral schemes with coefficients ±2 (measured: 33 of 40 elementary moves of winograd⊗winograd
    leave {-1,0,1}); ``improve`` keeps only ternary ones as results on the ternary walk.
    """
    best, best_p = None, None
    for _ in range(proposals):
        g = basis_move(cur, gen)
        if not g.is_integral or max(int(np.abs(np.asarray(a)).max(initial=0)) for a in (g.U, g.V, g.W)) > 2:
            continue  # the walk may pass through coefficients ±2; only ternary schemes are kept (see improve)
        p = proxy_additions(g)
        if best_p is None or p < best_p:
            best, best_p = g, p
    if best is None:
        return None, None, False
    if not best.verify():  # a change of basis preserves validity; checked all the same
        return None, None, False
    v = float(reward(best))
    ok = v >= cur_v or gen.random() < math.exp((v - cur_v) / temperature)
    return best, v, ok


def improve(start: Factorization, reward: Callable[[Factorization], float], config: ObjectiveConfig,
            on_best: Callable[[float, Factorization, float], None] | None = None,
            propose: Callable[[Factorization, np.random.Generator], Factorization] | None = None,
            provenance: Provenance | None = None) -> ObjectiveResult:
    """Walk at (at most) ``start``'s rank to maximise ``reward``; returns the best valid scheme.

    The compiled annealer explores on the proxy; after each chunk its best-proxy scheme is
    exactly verified and scored with ``reward`` (each distinct scheme once). ``propose`` (tests,
    experiments) replaces the compiled explorer; whatever it returns is verified before it is
    scored, and an invalid proposal is counted and dropped, never scored or accepted.
    """
    cfg = config
    mod2 = cfg.field == "Z2"
    shape = start.shape
    if mod2 and start.field == "Q":
        start = start.replace(field="Z2")
    start.require_valid()
    P, N, R = encode(start, cfg.field)
    bestP, bestN = P.copy(), N.copy()
    rng = np.array([np.uint64(0xD1B54A32D192ED03) ^ np.uint64(cfg.seed * 2654435761 + 7)], np.uint64)
    gen = np.random.default_rng(cfg.seed)
    out_rows = shape[0] * shape[2]
    best_f = start
    best_v = start_v = float(reward(start))
    seen = {start.digest}
    evals, invalid, stale, failed_escapes = 1, 0, 0, 0
    R0 = R
    basis_cur, basis_v = start, start_v
    best_proxy = int(naive_additions(P, N, R, out_rows))
    t0 = time.perf_counter()
    history = [(0.0, best_v)]
    base = provenance or start.provenance
    while True:
        el = time.perf_counter() - t0
        if el >= cfg.budget_s or (cfg.max_evals is not None and evals >= cfg.max_evals):
            break
        if propose is None:
            frac = min(1.0, el / cfg.budget_s) if cfg.budget_s > 0 else 1.0
            temp = cfg.temperature * (cfg.final_temperature / cfg.temperature) ** frac
            R, _, bR, bproxy, acc = _anneal(P, N, R, mod2, cfg.chunk, temp, temp, rng, out_rows, bestP, bestN)
            if acc == 0:  # an isolated scheme (Strassen, Laderman: no two terms share a factor)
                if cfg.basis_moves and not mod2:
                    # walk by changes of basis instead (they exist for every scheme)
                    cand, v, ok = _basis_step(basis_cur, basis_v, reward, gen, cfg.field)
                    if cand is None:
                        continue
                    evals += 1
                    ternary = _is_ternary(cand)
                    if ok:
                        basis_cur, basis_v = cand, v
                        if ternary:
                            P, N, R = encode(cand, cfg.field)
                    if v > best_v and (ternary or cfg.field != "Z"):
                        best_f, best_v = cand.replace(provenance=base), v
                        history.append((time.perf_counter() - t0, v))
                        if on_best is not None:
                            on_best(time.perf_counter() - t0, best_f, v)
                    continue
                esc = _escape(P, N, R, mod2, rng)
                if esc is None:
                    failed_escapes += 1
                    if failed_escapes >= cfg.max_escapes:
                        break  # nothing reachable: return the start, and say so in the result
                    continue
                P, N, R = esc
                continue
            if bR == R0 and bproxy > best_proxy + cfg.proxy_margin:
                stale += 1  # not promising enough to spend a reward evaluation on
                if stale >= cfg.patience:
                    P, N, R = encode(best_f, cfg.field)
                    stale = 0
                continue
            cand = decode(bestP, bestN, bR, shape, cfg.field, "", base)
            best_proxy = min(best_proxy, bproxy) if bR == R0 else best_proxy
        else:
            cand = propose(best_f, gen)
        if cand.digest in seen:
            stale += 1
        else:
            seen.add(cand.digest)
            if not cand.verify():  # only exactly valid schemes are ever scored or kept
                invalid += 1
                continue
            v = float(reward(cand))
            evals += 1
            if v > best_v:
                best_f, best_v, stale = cand, v, 0
                history.append((time.perf_counter() - t0, v))
                if on_best is not None:
                    on_best(time.perf_counter() - t0, cand, v)
            else:
                stale += 1
        if propose is None and stale >= cfg.patience:  # back to the best scheme found so far
            P, N, R = encode(best_f, cfg.field)
            stale = 0
    return ObjectiveResult(best_f, best_v, start_v, evals, invalid, time.perf_counter() - t0, history, failed_escapes)
