"""One flip-graph walker: pools, restarts and plus transitions around the compiled walk.

The strategy (Kauers & Moosbauer 2022, with Arai et al.'s plus transitions):

1. Walk from the current scheme until a reduction lowers the rank below the best rank so far,
   for at most ``path_length`` flips (a plus transition after ``plateau`` flips without one).
2. A scheme that reaches a new best rank is verified exactly (``Factorization.verify`` in the
   walk's field) and starts the pool of that rank; the walker goes on from it.
3. A path that ends without improving restarts from a random member of the pool at the best
   rank; schemes met at the best rank on the way join the pool (``pool_size`` at most, random
   replacement), so restarts spread over the plateau instead of repeating one path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compiler.factors import Factorization, FactorizationError, Provenance
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
    plateau: int = 100_000  # flips without a reduction before a plus transition
    max_plus: int = 1  # plus transitions may raise the rank this far above the best rank
    pool_size: int = 100
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

    best_rank = R
    best = start
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

    while not done():
        path = 0
        while path < cfg.path_length and not done():
            n = min(cfg.chunk, cfg.path_length - path)
            if cfg.max_flips is not None:
                n = min(n, cfg.max_flips - flips)
            R = K.walk(P, N, R, mod2, best_rank - 1, n, cfg.plateau, best_rank + cfg.max_plus, rng, out)
            path += int(out[K.OUT_FLIPS])
            flips += int(out[K.OUT_FLIPS])
            plus += int(out[K.OUT_PLUS])
            if R < best_rank:
                break
            if out[K.OUT_FLIPS] < n and R >= best_rank:  # the walk found no flip at all
                break
            if R == best_rank and len(pool) < cfg.pool_size:
                pool.append((P[:R].copy(), N[:R].copy()))
            elif R == best_rank:
                pool[int(pick.integers(len(pool)))] = (P[:R].copy(), N[:R].copy())
        if R < best_rank:
            elapsed = time.perf_counter() - t0
            f = decode(P, N, R, shape, cfg.field, _name(shape, R, cfg.field), base)
            res = f.verify()
            if not res:  # a move that breaks validity is a bug in the kernel, never a result
                raise FactorizationError(f"flip walk produced an invalid scheme: {res.describe()}")
            best_rank, best = R, f
            pool = [(P[:R].copy(), N[:R].copy())]
            history.append((elapsed, R))
            if on_best is not None:
                on_best(elapsed, f)
            continue
        # restart from the pool at the best rank
        restarts += 1
        Pp, Np = pool[int(pick.integers(len(pool)))]
        P[:] = 0
        N[:] = 0
        P[:best_rank] = Pp
        N[:best_rank] = Np
        R = best_rank
        if out[K.OUT_FLIPS] == 0 and path == 0:
            break  # nothing can move (e.g. <1,1,1>): stop rather than spin
    return WalkResult(best, flips, time.perf_counter() - t0, history, restarts, plus, time.thread_time() - c0)
