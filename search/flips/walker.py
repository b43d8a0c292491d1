"""One flip-graph walker: pools, restarts and plus transitions around the compiled walk.

The strategy (Kauers & Moosbauer 2022, with Arai et al.'s plus transitions):

1. Walk from the current scheme until a reduction lowers the rank below the best rank so far,
   for at most ``path_length`` flips (a plus transition after ``plateau`` flips without one).
2. A scheme that reaches a new best rank is verified exactly (``Factorization.verify`` in the
   walk's field) and starts the pool of that rank; the walker goes on from it.
3. A path that ends without improving restarts from a random member of the pool at the best
   rank; schemes met at the best rank on the way join the pool (``pool_size`` at most, random
   replacement), so restarts spread over the plateau instead of repeating one path.
4. With ``reset_flips`` set, a lineage that goes that many flips without lowering its own rank
   is abandoned: the walker starts a new lineage from the start scheme or one of the recent
   global improvements (as Perminov's ternary_flip_graph resets its runners). One plateau can
   hold no reducible scheme at all (measured: <3,3,4> over Z2 reached 30 in 0.1 s and then
   195 M flips found no 29), and a fresh lineage reaches a different one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance
from search.flips import kernel as K
from search.flips.encoding import FIELDS, decode, encode, factorization_field


@dataclass(frozen=True)
class WalkConfig:
    """What one walker does; every field goes into the provenance of what it finds."""

    field: str = "Z"  # "Z": ternary coefficients, valid over Z; "Z2": arithmetic mod 2
    target_rank: int | None = None  # stop when reached (None: walk until the budget is spent)
    budget_s: float = 60.0
    max_flips: int | None = None  # total flips (None: the time budget alone decides)
    path_length: int = 2_000_000  # flips from one restart before the next restart
    plateau: int = 100_000  # flips without a reduction before a plus transition ...
    plateau_min: int | None = None  # ... drawn per path uniformly from [plateau_min, plateau] when set
    # (Perminov's ternary_flip_graph draws its plus period from [5K, 100K] per walk: paths that
    # leave the plateau early and late both occur, instead of one fixed trade-off)
    max_plus: int = 1  # plus transitions may raise the rank this far above the best rank
    pool_size: int = 100
    reset_flips: int | None = None  # flips without lowering the lineage's rank before a new lineage
    improvements: int = 8  # recent global improvements kept as lineage starts (besides the start)
    chunk: int = 200_000  # flips per compiled call: time and progress are checked between calls
    seed: int = 0

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")


@dataclass
class WalkResult:
    best: Factorization
    flips: int
    seconds: float
    history: list[tuple[float, int]] = field(default_factory=list)  # (seconds, rank) at each new best
    restarts: int = 0
    plus: int = 0
    cpu_seconds: float = 0.0  # this thread's CPU time: the fair rate on a machine shared with others

    @property
    def flips_per_second(self) -> float:
        return self.flips / self.seconds if self.seconds > 0 else 0.0

    @property
    def flips_per_cpu_second(self) -> float:
        return self.flips / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


def _name(shape, rank: int, field: str) -> str:
    return f"flips-{'x'.join(map(str, shape))}-r{rank}" + ("-mod2" if field == "Z2" else "")


def walk_search(start: Factorization, config: WalkConfig,
                on_best: Callable[[float, Factorization], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                provenance: Provenance | None = None) -> WalkResult:
    """Run one walker from ``start``; every returned or reported scheme is exactly verified."""
    cfg = config
    mod2 = cfg.field == "Z2"
    shape = start.shape
    if cfg.field == "Z2" and start.field == "Q":
        start = Factorization(shape, start.U, start.V, start.W, "Z2", start.name, start.provenance)
    start.require_valid()
    cap = start.rank + cfg.max_plus + 2
    P, N, R = encode(start, cfg.field, capacity=cap)
    # settle the start once (a file may hold terms that already merge): afterwards the kernel
    # only has to look at the terms each move changes
    R, _ = K._settle(P, N, R, np.arange(R, dtype=np.int64), cfg.field == "Z2")
    if R < start.rank:
        start = decode(P, N, R, shape, cfg.field, start.name, start.provenance)
    rng = np.array([np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(cfg.seed * 2654435761 + 1)], np.uint64)
    out = np.zeros(5, np.int64)
    base = provenance or Provenance()

    best_rank = R  # the walker's best (global to its lineages)
    best = start
    lineage_rank = R  # the current lineage's best rank: its walks stop one below it
    lineage_flips = 0  # flips since the lineage last lowered its rank
    # lineage starts: the start scheme and the most recent global improvements
    starts: list[tuple[np.ndarray, np.ndarray]] = [(P[:R].copy(), N[:R].copy())]
    pool: list[tuple[np.ndarray, np.ndarray]] = [(P[:R].copy(), N[:R].copy())]
    pick = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    c0 = time.thread_time()
    flips = restarts = plus = 0
    history: list[tuple[float, int]] = [(0.0, R)]
    target = cfg.target_rank if cfg.target_rank is not None else 0

    def done() -> bool:
        return (best_rank <= target
                or time.perf_counter() - t0 >= cfg.budget_s
                or (cfg.max_flips is not None and flips >= cfg.max_flips)
                or (should_stop is not None and should_stop()))

    def load(Pp: np.ndarray, Np: np.ndarray) -> int:
        P[:] = 0
        N[:] = 0
        P[:len(Pp)] = Pp
        N[:len(Np)] = Np
        return len(Pp)

    while not done():
        path = 0
        plateau = cfg.plateau if cfg.plateau_min is None else int(pick.integers(cfg.plateau_min, cfg.plateau + 1))
        while path < cfg.path_length and not done():
            n = min(cfg.chunk, cfg.path_length - path)
            if cfg.max_flips is not None:
                n = min(n, cfg.max_flips - flips)
            R = K.walk(P, N, R, mod2, lineage_rank - 1, n, plateau, lineage_rank + cfg.max_plus, rng, out)
            path += int(out[K.OUT_FLIPS])
            flips += int(out[K.OUT_FLIPS])
            lineage_flips += int(out[K.OUT_FLIPS])
            plus += int(out[K.OUT_PLUS])
            if R < lineage_rank:
                break
            if out[K.OUT_FLIPS] < n and R >= lineage_rank:  # the walk found no flip at all
                break
            if R == lineage_rank and len(pool) < cfg.pool_size:
                pool.append((P[:R].copy(), N[:R].copy()))
            elif R == lineage_rank:
                pool[int(pick.integers(len(pool)))] = (P[:R].copy(), N[:R].copy())
        if R < lineage_rank:
            lineage_rank = R
            lineage_flips = 0
            pool = [(P[:R].copy(), N[:R].copy())]
            if R < best_rank:
                elapsed = time.perf_counter() - t0
                f = decode(P, N, R, shape, cfg.field, _name(shape, R, cfg.field), base)
                res = f.verify()
                if not res:  # a move that breaks validity is a bug in the kernel, never a result
                    raise FactorizationError(f"flip walk produced an invalid scheme: {res.describe()}")
                best_rank, best = R, f
                starts.append((P[:R].copy(), N[:R].copy()))
                if len(starts) > cfg.improvements + 1:
                    del starts[1]  # the start scheme stays; the oldest improvement goes
                history.append((elapsed, R))
                if on_best is not None:
                    on_best(elapsed, f)
            continue
        restarts += 1
        if cfg.reset_flips is not None and lineage_flips >= cfg.reset_flips:
            # a new lineage from the start or a recent improvement
            Pp, Np = starts[int(pick.integers(len(starts)))]
            R = load(Pp, Np)
            lineage_rank = R
            lineage_flips = 0
            pool = [(Pp, Np)]
            continue
        # restart from the pool at the lineage's best rank
        Pp, Np = pool[int(pick.integers(len(pool)))]
        R = load(Pp, Np)
        if out[K.OUT_FLIPS] == 0 and path == 0:
            break  # nothing can move (e.g. <1,1,1>): stop rather than spin
    return WalkResult(best, flips, time.perf_counter() - t0, history, restarts, plus, time.thread_time() - c0)
