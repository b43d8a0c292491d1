"""Flip-graph search benchmarks: the compiled walk's flip rate and time-to-rank from the naive
algorithm (``pytest --benchmark-only bench/bench_flips.py``).

The reference is the C++ tool ``ternary_flip_graph`` (Perminov), about 3 M flips/s per thread;
the issue's target is within 3× of it, i.e. ≥ 1 M flips/s per thread. The rate is reported per
second of this thread's CPU time (``time.thread_time``) as well as per wall second, because the
2-core development machine is shared with other engineers' jobs and wall time there measures the
scheduler more than the code.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from compiler.algebra.factors import naive
from search.flips import kernel as K
from search.flips.encoding import encode
from search.flips.walker import WalkConfig, walk_search

TARGET_FLIPS_PER_CPU_S = 1.0e6  # 3 M/s (C++ reference) / 3
FLIPS = 2_000_000


@pytest.mark.parametrize("field", ["Z", "Z2"])
@pytest.mark.parametrize("shape", [(3, 3, 3), (4, 4, 4)])
def test_flip_rate(benchmark, shape, field):
    # a scheme in the middle of a walk (naive has unusually many flips): 200k flips from naive
    P0, N0, R0 = encode(naive(*shape), field, capacity=shape[0] * shape[1] * shape[2] + 4)
    out = np.zeros(5, np.int64)
    R0 = K.walk(P0, N0, R0, field == "Z2", 0, 200_000, 1 << 62, R0, np.array([7], np.uint64), out)
    stats = {"flips": 0, "cpu": 0.0, "wall": 0.0}

    def run():
        P, N = P0.copy(), N0.copy()
        c, w = time.thread_time(), time.perf_counter()
        K.walk(P, N, R0, field == "Z2", 0, FLIPS, 1 << 62, R0, np.array([11], np.uint64), out)
        stats["cpu"] += time.thread_time() - c
        stats["wall"] += time.perf_counter() - w
        stats["flips"] += int(out[K.OUT_FLIPS])

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    per_cpu = stats["flips"] / stats["cpu"]
    benchmark.extra_info.update(flips_per_cpu_s=round(per_cpu), flips_per_wall_s=round(stats["flips"] / stats["wall"]),
                                shape=list(shape), field=field, rank=int(R0))
    assert per_cpu >= TARGET_FLIPS_PER_CPU_S, f"{per_cpu:.3g} flips per CPU second, target {TARGET_FLIPS_PER_CPU_S:.3g}"


@pytest.mark.parametrize("field", ["Z", "Z2"])
@pytest.mark.parametrize("shape,target", [((3, 3, 3), 23), ((2, 2, 3), 11), ((2, 3, 3), 15)])
def test_time_to_rank_from_naive(benchmark, shape, target, field):
    """The issue asks for <3,3,3> rank 23 in under 60 s from the naive algorithm."""
    res = {}

    def run():
        res["r"] = walk_search(naive(*shape), WalkConfig(field=field, target_rank=target, budget_s=60, seed=0,
                                                         plateau=20_000))

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    r = res["r"]
    benchmark.extra_info.update(rank=r.best.rank, wall_s=round(r.seconds, 2), cpu_s=round(r.cpu_seconds, 2),
                                flips=r.flips)
    assert r.best.rank <= target and r.best.verify()
    assert r.seconds < 60


@pytest.mark.parametrize("field", ["Z", "Z2"])
@pytest.mark.parametrize("n", [4, 5])
def test_symmetric_flip_rate(benchmark, n, field):
    """Orbit flips per CPU second of the symmetric walk (each flip also rewrites 4 images and
    transposes 4 factors, so it costs more than a plain flip; no target asserted)."""
    from search.flips.symmetric import naive_state, sym_walk, transpose_table
    table = transpose_table(n)
    s0 = naive_state(n, field, capacity=n ** 3 + 60)
    out = np.zeros(5, np.int64)
    nfix = np.array([s0.nf])
    s0.R = sym_walk(s0.P, s0.N, s0.R, s0.FP, s0.FN, nfix, field == "Z2", 0, 200_000, 1 << 62, s0.rank, np.array([7], np.uint64), out, table)
    s0.nf = int(nfix[0])
    stats = {"flips": 0, "cpu": 0.0}

    def run():
        s = s0.copy()
        nf = np.array([s.nf])
        c = time.thread_time()
        sym_walk(s.P, s.N, s.R, s.FP, s.FN, nf, field == "Z2", 0, FLIPS, 1 << 62, s.rank, np.array([11], np.uint64), out, table)
        stats["cpu"] += time.thread_time() - c
        stats["flips"] += int(out[K.OUT_FLIPS])

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(flips_per_cpu_s=round(stats["flips"] / stats["cpu"]), n=n, field=field, rank=s0.rank)


@pytest.mark.parametrize("start", ["winograd*strassen", "strassen*winograd"])
def test_additions_walk_444(benchmark, start):
    """The addition-aware walk (search.flips.sides) from a product of library schemes at rank 49
    (168 and 170 additions after the compiler's CSE): the issue asks for < 165. Seed 0, 60 s
    (measured on core 0: Winograd⊗Strassen 168 -> 159 at ~10 s; Strassen² 180 -> 159 at 203 s)."""
    from search.flips.sides import SidesConfig, sides_walk
    from search.rewards import load_reward
    from search.run import load_start
    f = load_start(start, (4, 4, 4))
    reward = load_reward("additions")
    res = {}

    def run():
        res["r"] = sides_walk(f, reward, SidesConfig(budget_s=60, seed=0))

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    r = res["r"]
    first = next(t for t, v in r.history if v >= r.best_value)
    benchmark.extra_info.update(start=start, start_additions=-r.start_value, additions=-r.best_value,
                                first_reached_s=round(first, 1), moves=r.moves, reward_calls=r.evaluations)
    assert r.best.verify() and r.best.rank == 49
    assert -r.best_value < 165, f"{-r.best_value:g} additions after CSE from {start} ({-r.start_value:g})"


def _fresh_lineages(n, field, parts, target, budget_s, plateau, reset_flips, path_length, max_plus, seed):
    """Moosbauer & Poole's runs: symmetric walk from diagonal cubes, a plus transition after
    ``plateau`` orbit flips without a reduction, a fresh lineage from the start after
    ``reset_flips`` orbit flips without a new low (``python -m search.run --symmetric --fresh-resets``)."""
    from search.flips.symmetric import SymmetricConfig, symmetric_walk_search
    cfg = SymmetricConfig(field=field, target_rank=target, budget_s=budget_s, plateau=plateau, plateau_min=None,
                          path_length=path_length, max_plus=max_plus, reset_flips=reset_flips,
                          fresh_resets=True, parts=parts, seed=seed)
    return symmetric_walk_search(n, cfg)


@pytest.mark.parametrize("seed", range(5))
def test_symmetric_444_rank49_over_Z(benchmark, seed):
    """<4,4,4> rank 49 over Z (ternary) from one diagonal cube, fresh lineages (plus after 1 000
    orbit flips, a fresh lineage after 1 M): the issue asks for 49 within 30 min; measured on one
    core, 20 of 20 seeds in 0.6–23.5 s (README). Asserted here: each of 5 seeds within 120 s."""
    from search.flips.symmetric import is_invariant
    res = {}

    def run():
        res["r"] = _fresh_lineages(4, "Z", ((0, 1, 2, 3),), 49, 120, 1000, 1_000_000, 1_100_000, 18, seed)

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    r = res["r"]
    benchmark.extra_info.update(rank=r.best.rank, wall_s=round(r.seconds, 2), cpu_s=round(r.cpu_seconds, 2),
                                flips=r.flips, seed=seed)
    assert r.best.rank == 49 and r.best.verify() and is_invariant(r.best) and r.best.is_integral


@pytest.mark.slow
def test_symmetric_555_rank93_within_an_hour(benchmark):
    """<5,5,5> rank 93 mod 2 from three diagonal cubes with Poole's run settings (plus after 50 000
    of his flips = 16 667 orbit flips, a fresh lineage after 33 M orbit flips without a new low),
    then ±1 signs along the orbits (valid over Z). The issue asks for 93 within an hour; seed 11
    reached it at 639 s in its 23rd lineage and seed 10 at 765 s (README). Slow: up to an hour."""
    from search.flips.symmetric import is_invariant, orbit_tie
    from search.lift import ternary_lift
    res = {}

    def run():
        res["r"] = _fresh_lineages(5, "Z2", ((0, 4), (1, 3), (2,)), 93, 3600, 16_667, 33_000_000, 34_000_000, 36, 11)

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    r = res["r"]
    benchmark.extra_info.update(rank=r.best.rank, wall_s=round(r.seconds, 2), cpu_s=round(r.cpu_seconds, 2),
                                flips=r.flips)
    assert r.best.rank == 93 and r.best.verify() and is_invariant(r.best)
    lifted = ternary_lift(r.best, tries=4096, tie=orbit_tie(r.best))
    assert lifted.ok and lifted.factorization.verify() and is_invariant(lifted.factorization)
