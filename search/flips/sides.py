"""Addition-aware plateau walk on the compiler's own cost, counted side by side.

The additions of a scheme after the compiler's CSE are the sum of three independent counts
(``compiler.ir.cse.side_additions``): the a side (the distinct columns of U up to a scalar, as
operands of the products), the b side (V) and the c side (the outputs, rows of W, over the
products). A move changes at most two of them: a flip on a shared a-factor rewrites V and W and
leaves U alone; a change of basis on one of the three block dimensions rewrites the two sides that
dimension indexes. ``SideCounter`` therefore keys each side by its canonical content (columns up
to sign, sorted; U and V as sets, W as a multiset) and counts it once, with a cheap CSE effort
(``restarts``, default 2: the deterministic greedy and the difference pass). That count drives the
walk; a scheme whose walk count comes within ``margin`` of the best one is scored with the reward
plugin (``search.rewards``, e.g. ``"additions"``: the compiler's full CSE on the real program),
which alone decides the result.

Moves keep the rank: flips (when two terms share a factor; a reduction, rank − 1, is taken when
it comes) and elementary changes of basis (``objective.basis_move``; the only moves of isolated
schemes such as Strassen⊗Winograd), ternary results only. Acceptance: a move that does not raise
the walk count is always taken (plateau walking at fixed rank), a worse one with probability
exp(−Δ/temperature); after ``patience`` moves without a new best walk count the walk resumes from a
random member of the pool of schemes at the best walk count. Every accepted scheme is exactly
verified first: an invalid scheme is never counted, scored or kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compiler.algebra.factors import Factorization, Provenance
from search.flips import kernel as K
from search.flips.encoding import decode, encode
from search.flips.objective import basis_move


@dataclass(frozen=True)
class SidesConfig:
    budget_s: float = 60.0
    max_moves: int | None = None  # stop after this many proposed moves (tests); None: the budget decides
    restarts: int = 2  # CSE restarts per side inside the walk; the reward (full CSE) scores candidates
    one_orientation: bool = True  # inside the walk, CSE each side in its natural orientation only (about 2x faster)
    reward_share: float = 0.3  # at most this share of the wall time goes to reward calls
    temperature: float = 0.7  # Metropolis temperature in additions (0: only moves that do not raise the count)
    basis_prob: float = 0.2  # share of basis moves for schemes that also have flips
    margin: int = 1  # score schemes whose walk count is within this of the best walk count
    patience: int = 3000  # moves without a new best walk count before resuming from the pool
    pool_size: int = 64  # schemes kept at the best walk count (distinct digests)
    seed: int = 0


@dataclass
class SidesResult:
    best: Factorization
    best_value: float  # reward of ``best``
    start_value: float
    best_walk: int  # best walk count (sum of the three cheap side counts)
    moves: int
    accepted: int
    evaluations: int  # reward calls
    rejected_invalid: int  # proposals that failed exact verification (dropped unscored)
    side_counts: int  # distinct sides counted (cache misses)
    seconds: float
    history: list[tuple[float, float]] = field(default_factory=list)  # (seconds, best reward)


def _canonical(A: np.ndarray, unique: bool) -> np.ndarray:
    """Columns of ``A`` with their first nonzero entry made positive, zero columns dropped,
    sorted (and deduplicated when ``unique``): equal for schemes that differ by the order and
    signs of their terms."""
    A = np.asarray(A, dtype=np.int64)
    A = A[:, np.any(A != 0, axis=0)]
    first = np.argmax(A != 0, axis=0)
    A = A * np.sign(A[first, np.arange(A.shape[1])])[None, :]
    if unique:
        return np.unique(A, axis=1)
    return A[:, np.lexsort(A[::-1])]


class SideCounter:
    """Additions per side after the compiler's CSE, each distinct side counted once."""

    def __init__(self, shape: tuple[int, int, int], restarts: int = 2, effort=None):
        from compiler.ir.cse import side_additions
        self.shape = shape
        self.restarts = restarts
        self.effort = effort  # a compiler.ir.cse.Effort (None: the compiler's default)
        self._count_side = side_additions
        self.cache: dict[tuple, int] = {}
        self.misses = 0

    def _targets(self, side: int, A: np.ndarray) -> list:
        from compiler.ir.program import inp, lin, mul
        n, m, p = self.shape
        if side < 2:
            name, width = ("a", m) if side == 0 else ("b", p)
            return [lin((inp(name, q // width, q % width), int(c)) for q, c in enumerate(col) if c)
                    for col in A.T.tolist()]
        # c side: outputs over the products; which product is which does not change the count,
        # so the products are stood for by distinct placeholder nodes (a_{r,0}·b_{0,0}), in column order
        prods = [mul(inp("a", r, 0), inp("b", 0, 0)) for r in range(A.shape[1])]
        return [lin((prods[r], int(c)) for r, c in enumerate(row) if c) for row in A.tolist()]

    def side(self, k: int, A: np.ndarray) -> int:
        C = _canonical(A, unique=k < 2)
        key = (k, C.shape, C.tobytes())
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = int(self._count_side(self._targets(k, C), self.restarts, 0, self.effort))
            self.misses += 1
        return hit

    def __call__(self, f: Factorization) -> int:
        return sum(self.side(k, A) for k, A in enumerate((f.U, f.V, f.W)))


def _is_ternary(f: Factorization) -> bool:
    return f.is_integral and all(int(np.abs(np.asarray(a)).max(initial=0)) <= 1 for a in (f.U, f.V, f.W))


def _flip_move(f: Factorization, rng: np.ndarray) -> Factorization | None:
    """One random flip (and the reductions it allows), or None when ``f`` has no flip."""
    P, N, R = encode(f, "Z")
    r, s, u, v = K._flip(P, N, R, rng, False)
    if r < 0:
        return None
    watch = np.array([r, s], np.int64)
    hint = np.array([u, v], np.int64)
    R2, _ = K._settle_hint(P, N, R, watch, hint, False)
    return decode(P, N, R2, f.shape, "Z", f.name, f.provenance)


def _basis(f: Factorization, gen: np.random.Generator, tries: int = 16) -> Factorization | None:
    for _ in range(tries):
        g = basis_move(f, gen)
        if _is_ternary(g):
            return g
    return None


def sides_walk(start: Factorization, reward: Callable[[Factorization], float], config: SidesConfig,
               on_best: Callable[[float, Factorization, float], None] | None = None,
               provenance: Provenance | None = None, counter: SideCounter | None = None,
               propose: Callable[[Factorization, np.random.Generator], Factorization | None] | None = None,
               ) -> SidesResult:
    """Walk at ``start``'s rank (or below) to maximise ``reward``; see the module docstring.

    ``propose`` (tests, experiments) replaces the flip and basis moves; what it returns is verified
    like every other proposal, and an invalid scheme is counted and dropped, never scored or kept.
    """
    cfg = config
    start.require_real()
    start.require_valid()
    if not _is_ternary(start):
        raise ValueError(f"{start.label()}: the addition walk moves ternary schemes (coefficients in {{-1,0,1}})")
    if counter is None:
        from compiler.ir.cse import Effort
        # inside the walk: ``restarts`` runs per side even for tiny systems (the compiler gives <3,3,3>
        # sides 64), and with one_orientation only the natural orientation
        counter = SideCounter(start.shape, cfg.restarts,
                              Effort(other_orientation=0 if cfg.one_orientation else Effort().other_orientation,
                                     tiny_size=0))
    gen = np.random.default_rng(cfg.seed)
    rng = np.array([np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(cfg.seed * 2654435761 + 11)], np.uint64)
    base = provenance or start.provenance
    cur, cur_c = start, counter(start)
    best_walk = cur_c
    pool = [start]
    best_f, best_v = start, float(reward(start))
    start_v = best_v
    seen = {start.digest}
    t0 = time.perf_counter()
    history = [(0.0, best_v)]
    moves = accepted = evals = stale = invalid = 0
    reward_s = 0.0
    has_flips = True
    while time.perf_counter() - t0 < cfg.budget_s and (cfg.max_moves is None or moves < cfg.max_moves):
        moves += 1
        cand = None
        if propose is not None:
            cand = propose(cur, gen)
            if cand is None:
                continue
        elif has_flips and gen.random() >= cfg.basis_prob:
            cand = _flip_move(cur, rng)
            if cand is None:
                has_flips = False  # isolated: no two terms share a factor; changes of basis only
        if cand is None:
            cand = _basis(cur, gen)
            if cand is None:
                continue
        if not cand.verify():  # flips and changes of basis keep validity; checked all the same
            invalid += 1
            continue
        c = counter(cand)
        if not (cand.rank < cur.rank or c <= cur_c
                or (cfg.temperature > 0 and gen.random() < math.exp((cur_c - c) / cfg.temperature))):
            stale += 1
        else:
            accepted += 1
            if cand.rank < cur.rank:  # rank first: counts at the higher rank no longer compare
                best_walk, pool = c + 1, []
            cur, cur_c = cand, c
            if c < best_walk:
                best_walk, pool, stale = c, [], 0
            else:
                stale += 1
            if c == best_walk and len(pool) < cfg.pool_size and all(g.digest != cand.digest for g in pool):
                pool.append(cand)
            now = time.perf_counter() - t0
            if (c <= best_walk + cfg.margin and cand.digest not in seen
                    and (c < best_walk or reward_s <= cfg.reward_share * now)):
                seen.add(cand.digest)
                t1 = time.perf_counter()
                v = float(reward(cand))
                reward_s += time.perf_counter() - t1
                evals += 1
                if v > best_v or (v == best_v and cand.rank < best_f.rank):
                    best_f, best_v = cand.replace(provenance=base), v
                    history.append((time.perf_counter() - t0, v))
                    if on_best is not None:
                        on_best(time.perf_counter() - t0, best_f, v)
        if stale >= cfg.patience and pool:
            cur = pool[int(gen.integers(len(pool)))]
            cur_c, stale = counter(cur), 0
            has_flips = True
    return SidesResult(best_f, best_v, start_v, best_walk, moves, accepted, evals, invalid, counter.misses,
                       time.perf_counter() - t0, history)
