"""Symmetric flip graph for square shapes <n,n,n> (Moosbauer & Poole 2025): Z3-invariant schemes.

With our convention (``c[i,k] = Σ_j a[i,j]·b[j,k]``, W not transposed) the matmul tensor as a
trilinear form is ``T(A, B, C) = trace(A·B·Cᵀ)``, and ``trace(A·B·Cᵀ) = trace(B·Cᵀ·A)`` makes the
map on rank-one terms

    σ(x ⊗ y ⊗ z) = zᵀ ⊗ x ⊗ yᵀ         (x, y, z read as n×n matrices; σ³ = id)

a symmetry of T: σ applied to every term of a scheme gives a scheme. A scheme is *invariant*
when σ permutes its terms: it is a set of orbits {t, σt, σ²t} and of fixed terms (x, x, xᵀ).
The naive algorithm is invariant: σ maps the product (i, j, k) to (k, i, j); i = j = k are its
n fixed terms and the other n³ − n products form (n³ − n)/3 orbits.

The walk holds the orbits in rows ``3k, 3k+1, 3k+2`` = (t_k, σt_k, σ²t_k) of the same bitmask
arrays as ``kernel`` and moves orbit by orbit, so that every scheme it visits is invariant:

- flip: a term r and a term s of another orbit that share a factor (up to sign) are flipped
  exactly as in ``kernel._flip``; the same flip on the images, (σr, σs) and (σ²r, σ²s), is
  implied, so both orbits are regenerated from the changed r and s (σ is linear, so the sum of
  every image pair is unchanged, and the orbits are disjoint, so the three flips commute);
- reduction: r agrees with a term q of another orbit in two slots: r absorbs q, the orbit of
  q goes (rank − 3); a factor of r vanishes: its orbit goes (rank − 3); over Z2, a term with
  σr = r makes its orbit three equal terms, 3t = t mod 2: the orbit becomes one fixed term
  (rank − 2, a *collapse*: the only move that changes the number of fixed terms, hence the rank
  mod 3; ``collapse=False`` skips it, and the search does so when the start already has the
  target's residue, since a collapsed lineage can never come back to it);
- plus transition: ``kernel._plus`` on terms of two orbits; the new term starts a new orbit
  (rank + 3).

The fixed terms are not moved (a flip of a fixed term with an orbit term is not invariant);
the orbit terms decompose T minus the fixed terms, and every identity above holds for that
tensor. So the fixed terms are chosen at the start: ``split_fixed`` (rank + 7, one more fixed
term) and ``merge_fixed`` (rank + 2, one fewer) rewrite them exactly. Moosbauer & Poole start
from *diagonal cubes*: the naive fixed terms (E_ii)^3 merged along a partition of the diagonal
(``diagonal_state``, CLI ``--cubes``); their <5,5,5> rank 93 has 3 fixed terms from the parts
{0,4}, {1,3}, {2} (their code and run files, github.com/jakobmoosbauer/symmetric-flips: 3 cubes,
a plus transition after 50 000 of their flips without a reduction, i.e. ~16 700 orbit flips,
plus transitions up to the start's rank, fresh runs of 100 M flips after each new best, "1 in 30
runs" reaching 93 at about 10 s per run in C++).

Flips are drawn from an index of the rows' slot-0 factors (``search.flips.valueindex``), and the
reductions after a flip are looked up there too, so a flip costs O(1) instead of O(rank).

Over Z2 the result is lifted along its orbits: ``orbit_tie`` gives the unknowns of an invariant
scheme (an orbit's representative, a fixed term's x), and ``search.lift.ternary_lift(tie=...)``
(signs) and ``hensel_lift(tie=...)`` keep the lift invariant; ``python -m search.run --lift``
tries those first and the plain lifts after them.

Measured on <5,5,5> mod 2 (one walker on core 1, seed 0; commands in the README): from naive
with one split (6 fixed terms) 105 at 753 s and no lower in 20 min, and that 105 did not lift;
from the 3-cube start with an O(rank) scan for partners, 99 at 233 s in 10 min; with the index
(1.1–1.7 M orbit flips per CPU-second) lineages reach 99 in 13 s and Poole's run settings
(``--fresh-resets``) in 21 s, and neither goes lower in 10 min; rank by rank with pools
(``symmetric_pool_search``) reaches 96 at 223 s, and in one hour (5.5 G flips) nothing lower (the
pools keep to few basins). Poole's run settings given more than 10 min reach 93 with every seed
tried: seeds 10–13, one core each, at 765, 639, 654 and 419 s, in their 25th, 23rd, 32nd and 17th
fresh lineage (about 25 s per lineage; the lineages before ended at 96–111, mostly 99–102), about
Poole's "1 in 30". All four 93s got ±1 signs along their orbits at once (two are in
``factors/5x5x5-flips.npz``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance
from search.flips import kernel as K
from search.flips.encoding import FIELDS
# The compiled walk and the state live in their own modules; their names stay importable from here.
from search.flips.symmetric_kernels import sym_walk, transpose_table  # noqa: F401
from search.flips.symmetric_state import (SymmetricState, diagonal_state, is_invariant, merge_fixed,  # noqa: F401
                                          naive_state, orbit_tie, parse_parts, sigma, split_fixed,
                                          to_factorization)

@dataclass(frozen=True)
class SymmetricConfig:
    field: str = "Z2"
    target_rank: int | None = None
    budget_s: float = 60.0
    max_flips: int | None = None
    path_length: int = 1_000_000
    plateau: int = 50_000
    plateau_min: int | None = 5_000
    max_plus: int = 6  # plus transitions may go this far above the lineage's best rank (2 orbits)
    reset_flips: int | None = 20_000_000
    fresh_resets: bool = False  # a reset restarts from the start, not from a recent improvement (Poole's runs)
    collapse: bool | None = None  # Z2 orbit -> fixed term reductions (None: off when the start has the target's residue)
    levels: bool = False  # rank by rank with pools (symmetric_pool_search) instead of lineages
    splits: int | None = None  # fixed terms split at the start (None: as the target rank's residue mod 3 needs)
    parts: tuple[tuple[int, ...], ...] | None = None  # diagonal start: one fixed term per part (diagonal_state)
    pool_size: int = 100
    chunk: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")


@dataclass
class SymmetricResult:
    best: Factorization
    flips: int
    seconds: float
    history: list[tuple[float, int]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    start: Factorization | None = None  # the scheme the walk started from, e.g. diagonal-5x5x5-0+4,1+3,2-r129


def _start(n: int, cfg: SymmetricConfig) -> tuple[SymmetricState, str, bool]:
    """The start of a search (naive with splits, or a diagonal start), its name with its rank, and whether Z2
    collapses are taken (``cfg.collapse``; None: only when the start lacks the target's residue)."""
    cap = n ** 3 + 3 * cfg.max_plus + 60
    if cfg.parts is not None:
        if cfg.splits:
            raise FactorizationError("a diagonal start (parts) and splits do not combine")
        st0 = diagonal_state(n, [list(p) for p in cfg.parts], cfg.field, capacity=cap)
        start_name = f"diagonal-{n}x{n}x{n}-" + ",".join("+".join(map(str, p)) for p in cfg.parts)
    else:
        st0 = naive_state(n, cfg.field, capacity=cap)
        splits = cfg.splits
        if splits is None:
            splits = (cfg.target_rank - n) % 3 if cfg.target_rank else 0
        for q in range(splits):
            st0 = split_fixed(st0, q % n, (q % n + 1 + q // n) % n, cfg.field)
        start_name = f"naive-{n}x{n}x{n}" + (f"-split{splits}" if splits else "")
    collapse = cfg.collapse
    if collapse is None:  # a collapse changes the rank mod 3 for good: off when the start has the target's residue
        collapse = not cfg.target_rank or (cfg.target_rank - st0.rank) % 3 != 0
    return st0, f"{start_name}-r{st0.rank}", collapse


def _checked(st: SymmetricState, field: str, n: int, provenance: Provenance) -> Factorization:
    """The scheme as a Factorization, verified exactly and checked invariant (a failure is a bug)."""
    f = to_factorization(st, field, f"flips-sym-{n}x{n}x{n}-r{st.rank}" + ("-mod2" if field == "Z2" else ""),
                         provenance)
    res = f.verify()
    if not res or not is_invariant(f):
        raise FactorizationError(f"symmetric walk produced a bad scheme: {res.describe()}, "
                                 f"invariant={is_invariant(f)}")
    return f


def _state_key(st: SymmetricState) -> bytes:
    """The scheme up to the order of orbits and fixed terms (orbits by their sorted rows)."""
    rows = list(zip(map(tuple, st.P[:st.R].tolist()), map(tuple, st.N[:st.R].tolist())))
    orbits = sorted(tuple(sorted(rows[3 * k:3 * k + 3])) for k in range(st.R // 3))
    fixed = sorted(zip(map(tuple, st.FP[:st.nf].tolist()), map(tuple, st.FN[:st.nf].tolist())))
    return repr((orbits, fixed)).encode()


class _Run:
    """What the two drivers share: the compiled walk's buffers and random streams, the flip count
    and the clock, the best scheme so far and its history, and the stop test."""

    def __init__(self, n: int, cfg: SymmetricConfig, salt: int,
                 on_best: Callable[[float, Factorization], None] | None,
                 should_stop: Callable[[], bool] | None, provenance: Provenance | None) -> None:
        self.n, self.cfg, self.on_best, self.should_stop = n, cfg, on_best, should_stop
        self.mod2 = cfg.field == "Z2"
        self.table = transpose_table(n)
        self.st0, start_name, self.collapse = _start(n, cfg)
        # ``salt`` keeps the two drivers' streams apart for one seed
        self.rng = np.array([np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(cfg.seed * 2654435761 + salt)], np.uint64)
        self.out = np.zeros(5, np.int64)
        self.nfix = np.zeros(1, np.int64)
        self.pick = np.random.default_rng(cfg.seed)
        self.base = provenance or Provenance()
        self.best = self.start = to_factorization(self.st0, cfg.field, start_name, self.base)
        self.best_rank = self.st0.rank
        self.history = [(0.0, self.st0.rank)]
        self.target = cfg.target_rank or 0
        self.flips = 0
        self.t0, self.c0 = time.perf_counter(), time.thread_time()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def done(self) -> bool:
        cfg = self.cfg
        return (self.best_rank <= self.target or self.seconds() >= cfg.budget_s
                or (cfg.max_flips is not None and self.flips >= cfg.max_flips)
                or (self.should_stop is not None and self.should_stop()))

    def plateau(self) -> int:
        """The plateau of the next path: ``cfg.plateau``, or drawn from [plateau_min, plateau]."""
        cfg = self.cfg
        return cfg.plateau if cfg.plateau_min is None else int(self.pick.integers(cfg.plateau_min, cfg.plateau + 1))

    def walk(self, cur: SymmetricState, rank: int, k: int, plateau: int) -> int:
        """At most ``k`` flips of ``cur`` in place, stopping below ``rank`` (plus transitions up to
        ``rank + max_plus``); returns the flips made."""
        self.nfix[0] = cur.nf
        cur.R = sym_walk(cur.P, cur.N, cur.R, cur.FP, cur.FN, self.nfix, self.mod2, rank - 1, k, plateau,
                         rank + self.cfg.max_plus, self.rng, self.out, self.table, self.collapse)
        cur.nf = int(self.nfix[0])
        made = int(self.out[K.OUT_FLIPS])
        self.flips += made
        return made

    def improve(self, cur: SymmetricState) -> bool:
        """Record ``cur`` if it lowers the best rank (verified, in the history, told to ``on_best``)."""
        if cur.rank >= self.best_rank:
            return False
        t = self.seconds()
        f = _checked(cur, self.cfg.field, self.n, self.base)
        self.best_rank, self.best = cur.rank, f
        self.history.append((t, cur.rank))
        if self.on_best is not None:
            self.on_best(t, f)
        return True

    def result(self) -> SymmetricResult:
        return SymmetricResult(self.best, self.flips, self.seconds(), self.history,
                               time.thread_time() - self.c0, self.start)


def symmetric_pool_search(n: int, config: SymmetricConfig,
                          on_best: Callable[[float, Factorization], None] | None = None,
                          should_stop: Callable[[], bool] | None = None,
                          provenance: Provenance | None = None) -> SymmetricResult:
    """Rank by rank with pools (``search.flips.pools`` for invariant schemes): a runner walks
    ``path_length`` flips from a random member of the current level's pool (plus transitions up to
    ``max_plus`` above the level); the schemes it brings below the level fill the next pool
    (distinct up to the order of orbits), and a level ends when that pool holds ``pool_size``
    schemes, or holds one and the level has spent its first success's flips again over 4 runners
    more. Every scheme that lowers the best rank is verified exactly and checked invariant."""
    cfg = config
    run = _Run(n, cfg, 3, on_best, should_stop, provenance)
    level = run.st0.rank
    pool = [run.st0]
    nxt: dict[bytes, SymmetricState] = {}
    level_flips, first, after = 0, None, 0
    while not run.done():
        cur = pool[int(run.pick.integers(len(pool)))].copy()
        plateau = run.plateau()
        spent = 0
        while spent < cfg.path_length and cur.rank >= level and not run.done():
            k = min(cfg.chunk, cfg.path_length - spent)
            if cfg.max_flips is not None:
                k = max(1, min(k, cfg.max_flips - run.flips))
            made = run.walk(cur, level, k, plateau)
            spent += made
            if made < k and cur.rank >= level:
                break  # nothing moves
        level_flips += spent
        if first is not None:
            after += 1
        if cur.rank < level:
            nxt.setdefault(_state_key(cur), cur)
            if first is None:
                first = level_flips
            run.improve(cur)
        if nxt and (len(nxt) >= cfg.pool_size or run.best_rank <= run.target
                    or (level_flips >= 2 * first and after >= 4)):
            low = min(st.rank for st in nxt.values())
            pool = [st for st in nxt.values() if st.rank == low]
            level, nxt, level_flips, first, after = low, {}, 0, None, 0
        elif spent == 0:
            break
    return run.result()


def symmetric_walk_search(n: int, config: SymmetricConfig,
                          on_best: Callable[[float, Factorization], None] | None = None,
                          should_stop: Callable[[], bool] | None = None,
                          provenance: Provenance | None = None,
                          on_reset: Callable[[float, int], None] | None = None) -> SymmetricResult:
    """Walk the symmetric flip graph of <n,n,n> from the naive algorithm (lineages, pools, plus
    transitions as in ``walker.walk_search``); every reported scheme is verified exactly and
    checked to be invariant. ``on_reset(seconds, rank)`` hears the lowest rank of each lineage
    that is abandoned after ``reset_flips`` flips without improving."""
    cfg = config
    if cfg.levels:
        return symmetric_pool_search(n, cfg, on_best, should_stop, provenance)
    run = _Run(n, cfg, 1, on_best, should_stop, provenance)
    cur = run.st0.copy()
    lineage_rank = cur.rank
    lineage_flips = 0
    starts = [run.st0.copy()]
    pool = [cur.copy()]
    while not run.done():
        path = 0
        plateau = run.plateau()
        while path < cfg.path_length and not run.done():
            k = min(cfg.chunk, cfg.path_length - path)
            if cfg.max_flips is not None:
                k = min(k, cfg.max_flips - run.flips)
            made = run.walk(cur, lineage_rank, k, plateau)
            path += made
            lineage_flips += made
            if cur.rank < lineage_rank or made < k:
                break
            if cur.rank == lineage_rank:
                if len(pool) < cfg.pool_size:
                    pool.append(cur.copy())
                else:
                    pool[int(run.pick.integers(len(pool)))] = cur.copy()
        if cur.rank < lineage_rank:
            lineage_rank = cur.rank
            lineage_flips = 0
            pool = [cur.copy()]
            if run.improve(cur):
                starts.append(cur.copy())
                if len(starts) > 9:
                    del starts[1]
            continue
        if cfg.reset_flips is not None and lineage_flips >= cfg.reset_flips:
            if on_reset is not None:  # the lineage's lowest rank, before it is abandoned
                on_reset(run.seconds(), lineage_rank)
            cur = (starts[0] if cfg.fresh_resets else starts[int(run.pick.integers(len(starts)))]).copy()
            lineage_rank = cur.rank
            lineage_flips = 0
            pool = [cur.copy()]
            continue
        if run.out[K.OUT_FLIPS] == 0 and path == 0 and len(pool) == 1:
            break
        cur = pool[int(run.pick.integers(len(pool)))].copy()
    return run.result()
