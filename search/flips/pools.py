"""Rank by rank with pools: a breadth-first flip-graph search (after Perminov's ternary method).

``walk_search`` (search.flips.walker) is depth first: the first scheme one rank lower becomes the
walker's whole future. Here every rank is a level with a pool of distinct schemes:

1. A *runner* takes a random member of the current pool and walks from it (flips, reductions,
   plus transitions after ``plateau`` flips without a reduction, at most ``max_plus`` above the
   level's rank) for at most ``runner_flips`` flips or until the rank drops below the level.
2. A runner that drops below the level adds its scheme (deduplicated by content) to the next
   pool. The level ends when the next pool holds ``pool_size`` schemes, or, once it holds at
   least one, when the level has spent ``extra`` times the flips of its first success again and
   run ``min_after`` runners since (hard levels keep what they found instead of waiting for a
   full pool: measured, <4,4,4> over Z from naive, pool 32 and 5 M flips per runner stayed at its
   first level for over 2 min, where the depth-first walker takes 4 s).
3. The next level's pool is the schemes of the lowest rank found. A level that never succeeds
   simply runs until the budget is spent.

Measured (``--levels --pool-size 16 --path-length 5000000 --plateau 50000 --plateau-min 5000
--max-plus 4``, <4,4,4> over Z from naive, one core): seed 1 reached rank 49 in 389 s (292 M
flips); seed 0 reached 52 at 864 s and no lower in 30 min. The depth-first walker reached 53 in 30 min.

Diversity is the point: one plateau can hold no reducible scheme at all (see walker.py), and a
pool of many distinct schemes of the level's rank spreads the runners over many plateaus.
Every scheme that lowers the best rank is verified exactly before it is reported or returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance
from search.flips import kernel as K
from search.flips.encoding import FIELDS, decode, encode
from search.flips.walker import WalkResult, _name


@dataclass(frozen=True)
class PoolConfig:
    field: str = "Z"
    target_rank: int | None = None
    budget_s: float = 60.0
    max_flips: int | None = None
    pool_size: int = 64  # schemes per level
    runner_flips: int = 3_000_000  # flips per runner (one walk from a pool member)
    plateau: int = 50_000  # flips without a reduction before a plus transition ...
    plateau_min: int | None = 5_000  # ... drawn per runner from [plateau_min, plateau]
    max_plus: int = 4  # plus transitions may raise the rank this far above the level
    extra: float = 1.0  # after the first success, a level spends at most this many times its cost again ...
    min_after: int = 4  # ... and runs at least this many runners (unless the pool is full first)
    chunk: int = 500_000  # flips per compiled call: time is checked between calls
    seed: int = 0

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")


@dataclass
class _Level:
    rank: int
    flips: int = 0  # flips spent at this level so far
    first: int | None = None  # flips spent when the first runner succeeded
    after: int = 0  # runners since the first success


def _key(P: np.ndarray, N: np.ndarray, R: int) -> bytes:
    rows = sorted(zip(map(tuple, P[:R].tolist()), map(tuple, N[:R].tolist())))
    return repr(rows).encode()


def pool_search(start: Factorization, config: PoolConfig,
                on_best: Callable[[float, Factorization], None] | None = None,
                on_level: Callable[[float, int, int, int], None] | None = None,
                provenance: Provenance | None = None,
                should_stop: Callable[[], bool] | None = None) -> WalkResult:
    """Level-by-level pooled search from ``start``; returns a ``WalkResult`` (its ``restarts``
    counts runners). ``on_level(seconds, rank, pool size, flips at the level)`` is called when a
    level ends; ``should_stop`` (checked between compiled calls) ends the search early, as when
    another searcher of ``parallel.run_walkers`` reached the target."""
    cfg = config
    mod2 = cfg.field == "Z2"
    shape = start.shape
    if mod2 and start.field == "Q":
        start = start.replace(field="Z2")
    start.require_valid()
    cap = start.rank + cfg.max_plus + 2
    P, N, R = encode(start, cfg.field, capacity=cap)
    R, _ = K._settle(P, N, R, np.arange(R, dtype=np.int64), mod2)
    rng = np.array([np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(cfg.seed * 2654435761 + 5)], np.uint64)
    pick = np.random.default_rng(cfg.seed)
    out = np.zeros(5, np.int64)
    base = provenance or Provenance()
    best = decode(P, N, R, shape, cfg.field, start.name, start.provenance) if R < start.rank else start
    pool = [(P[:R].copy(), N[:R].copy())]
    level = _Level(R)
    nxt: dict[bytes, tuple[np.ndarray, np.ndarray, int]] = {}
    t0, c0 = time.perf_counter(), time.thread_time()
    flips = runners = plus = 0
    history = [(0.0, R)]
    target = cfg.target_rank if cfg.target_rank is not None else 0

    def done() -> bool:
        return (level.rank <= target or time.perf_counter() - t0 >= cfg.budget_s
                or (cfg.max_flips is not None and flips >= cfg.max_flips)
                or (should_stop is not None and should_stop()))

    while not done():
        Pp, Np = pool[int(pick.integers(len(pool)))]
        P[:] = 0
        N[:] = 0
        P[:len(Pp)], N[:len(Np)] = Pp, Np
        R = len(Pp)
        plateau = cfg.plateau if cfg.plateau_min is None else int(pick.integers(cfg.plateau_min, cfg.plateau + 1))
        runners += 1
        spent = 0
        while spent < cfg.runner_flips and R >= level.rank and not done():
            n = min(cfg.chunk, cfg.runner_flips - spent)
            if cfg.max_flips is not None:
                n = max(1, min(n, cfg.max_flips - flips))
            R = K.walk(P, N, R, mod2, level.rank - 1, n, plateau, level.rank + cfg.max_plus, rng, out)
            spent += int(out[K.OUT_FLIPS])
            plus += int(out[K.OUT_PLUS])
            if out[K.OUT_FLIPS] < n and R >= level.rank:
                break  # no flip at all (an isolated scheme and no room for a plus transition)
        flips += spent
        level.flips += spent
        if level.first is not None:
            level.after += 1
        if R < level.rank:
            nxt.setdefault(_key(P, N, R), (P[:R].copy(), N[:R].copy(), R))
            if level.first is None:
                level.first = level.flips
            if R < best.rank:
                f = decode(P, N, R, shape, cfg.field, _name(shape, R, cfg.field), base)
                res = f.verify()
                if not res:  # a move that breaks validity is a bug in the kernel, never a result
                    raise FactorizationError(f"flip walk produced an invalid scheme: {res.describe()}")
                best = f
                history.append((time.perf_counter() - t0, R))
                if on_best is not None:
                    on_best(time.perf_counter() - t0, f)
        if nxt and (len(nxt) >= cfg.pool_size or best.rank <= target
                    or (level.flips >= (1 + cfg.extra) * level.first and level.after >= cfg.min_after)):
            low = min(r for _, _, r in nxt.values())
            pool = [(a, b) for a, b, r in nxt.values() if r == low]
            if on_level is not None:
                on_level(time.perf_counter() - t0, low, len(pool), level.flips)
            level, nxt = _Level(low), {}
        elif spent == 0 and not done():
            break  # nothing can move (e.g. <1,1,1>): stop rather than spin
    return WalkResult(best, flips, time.perf_counter() - t0, history, runners, plus, time.thread_time() - c0)
