"""Flip-graph walk: every move keeps the scheme exactly valid (in the walk's field), reductions
lower the rank, plus transitions raise it by one, and the pooled walker reaches known ranks.

Validity is always checked with ``Factorization.verify`` (exact integer arithmetic, or mod 2 for
Z2 walks), never with a float tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.algebra.constructions import kron
from compiler.algebra.factors import Factorization, naive
from compiler.algebra.library import library_algorithm
from search.flips import kernel as K
from search.flips.encoding import decode, encode
from search.flips.walker import WalkConfig, walk_search

FIELDS = ["Z", "Z2"]
STARTS = {
    "naive-1x1x1": lambda: naive(1, 1, 1),
    "naive-2x2x2": lambda: naive(2, 2, 2),
    "naive-2x3x4": lambda: naive(2, 3, 4),  # rectangular: the three factor lengths differ
    "naive-1x3x2": lambda: naive(1, 3, 2),  # a 1 in the shape: few flips exist
    "strassen": lambda: library_algorithm("strassen"),
    "laderman": lambda: library_algorithm("laderman"),
    "strassen^2": lambda: kron(library_algorithm("strassen"), library_algorithm("strassen")),
}


def _state(f: Factorization, field: str, extra: int = 4):
    P, N, R = encode(f, field, capacity=f.rank + extra)
    return P, N, R


def _rng(seed: int) -> np.ndarray:
    return np.array([np.uint64(seed * 7919 + 1)], np.uint64)


def _check(P, N, R, shape, field) -> Factorization:
    g = decode(P, N, R, shape, field)
    res = g.verify()
    assert res, res.describe()
    if field == "Z":  # ternary walk: coefficients stay in {-1, 0, 1}
        for a in (g.U, g.V, g.W):
            assert np.abs(a).max(initial=0) <= 1
    return g


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(STARTS))
def test_encode_decode_round_trip(name, field):
    f = STARTS[name]()
    P, N, R = encode(f, field)
    g = decode(P, N, R, f.shape, field)
    if field == "Z":
        assert g == f
    else:
        assert np.array_equal(g.U, np.mod(f.U, 2)) and np.array_equal(g.W, np.mod(f.W, 2))


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(STARTS))
def test_every_single_move_preserves_validity(name, field):
    """One flip (or reduction, or plus transition) per call, verified after each."""
    f = STARTS[name]()
    P, N, R = _state(f, field, extra=40)
    out = np.zeros(5, np.int64)
    rng = _rng(3)
    for step in range(60):
        # plateau=1 forces a plus transition after every flip until the rank is rank+30
        R = K.walk(P, N, R, field == "Z2", 0, 1, 1 if step % 2 else 10**9, f.rank + 30, rng, out)
        _check(P, N, R, f.shape, field)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(STARTS)), field=st.sampled_from(FIELDS), seed=st.integers(0, 2**32),
       flips=st.integers(1, 3000), plateau=st.integers(1, 500), extra=st.integers(0, 6))
def test_walks_preserve_validity(name, field, seed, flips, plateau, extra):
    f = STARTS[name]()
    P, N, R = _state(f, field, extra=extra + 2)
    out = np.zeros(5, np.int64)
    R = K.walk(P, N, R, field == "Z2", 0, flips, plateau, f.rank + extra, _rng(seed), out)
    assert R == out[K.OUT_RANK] and R <= f.rank + extra
    _check(P, N, R, f.shape, field)


def _with_split_term(f: Factorization, sign: int = 1) -> Factorization:
    """``f`` with its first term x⊗y⊗z written as x⊗y⊗(z − e) + x⊗y⊗e: rank + 1, still valid."""
    U, V, W = (np.array(a) for a in (f.U, f.V, f.W))
    e = np.zeros(W.shape[0], np.int64)
    e[(np.flatnonzero(W[:, 0])[0] + 1) % W.shape[0]] = 1
    W0 = W[:, 0] - e
    return Factorization(f.shape, np.c_[U, U[:, :1] * sign], np.c_[V, V[:, :1] * sign],
                         np.c_[np.c_[W0, W[:, 1:]], e * 1], f.field)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", ["naive-2x2x2", "strassen", "laderman"])
def test_reduction_merges_terms_equal_in_two_slots(name, field):
    f = STARTS[name]()
    g = _with_split_term(f)
    assert g.rank == f.rank + 1 and g.verify()
    if field == "Z" and np.abs(np.asarray(g.W)).max() > 1:
        pytest.skip("the split left the ternary range")
    P, N, R = _state(g, field)
    watch = np.array([g.rank - 1, -1], np.int64)
    R2, red = K._settle(P, N, R, watch, field == "Z2")
    assert red >= 1 and R2 < R
    _check(P, N, R2, g.shape, field)


@pytest.mark.parametrize("field", FIELDS)
def test_reduction_drops_cancelling_pair_and_vanished_term(field):
    f = library_algorithm("strassen")
    U, V, W = (np.array(a) for a in (f.U, f.V, f.W))
    s = 1 if field == "Z2" else -1  # x⊗y⊗z + x⊗y⊗(s·z) = 0 (mod 2 a term cancels itself)
    g = Factorization(f.shape, np.c_[U, U[:, 0], U[:, 0]], np.c_[V, V[:, 0], V[:, 0]],
                      np.c_[W, W[:, 0], s * W[:, 0]], "Z2" if field == "Z2" else "Q")
    assert g.verify() and g.rank == f.rank + 2
    P, N, R = _state(g, field)
    R2, red = K._settle(P, N, R, np.array([R - 1, -1], np.int64), field == "Z2")
    assert R2 == f.rank and red == 1
    _check(P, N, R2, f.shape, field)
    # a term with a zero factor vanishes
    P, N, R = _state(f, field)
    P[R, :] = P[0, :]
    N[R, :] = N[0, :]
    P[R, 1] = N[R, 1] = 0
    R2, _ = K._settle(P, N, R + 1, np.array([R, -1], np.int64), field == "Z2")
    assert R2 == f.rank
    _check(P, N, R2, f.shape, field)


@pytest.mark.parametrize("field", FIELDS)
def test_plus_transition_raises_rank_by_one(field):
    f = library_algorithm("laderman")
    P, N, R = _state(f, field)
    R2, r, s, a, c = K._plus(P, N, R, _rng(5), field == "Z2", 64)
    assert R2 == R + 1 and r != s and a != c
    _check(P, N, R2, f.shape, field)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("shape,target", [((2, 2, 2), 7), ((2, 2, 3), 11), ((3, 3, 3), 23)])
def test_walker_reaches_known_rank_from_naive(shape, target, field):
    # flip budgets, not time: deterministic from the seed; measured need ≪ 1/10 of the budget
    res = walk_search(naive(*shape), WalkConfig(field=field, target_rank=target, budget_s=120,
                                                max_flips=20_000_000, seed=1))
    assert res.best.rank == target
    assert res.best.verify()
    assert res.best.field == ("Z2" if field == "Z2" else "Q")
    ranks = [r for _, r in res.history]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == len(ranks)


def test_walker_from_a_kron_product_and_refusals():
    f = kron(library_algorithm("strassen"), naive(1, 1, 2))  # <2,2,4;14> from a product
    res = walk_search(f, WalkConfig(field="Z", max_flips=50_000, seed=2, budget_s=60))
    assert res.best.verify() and res.best.rank <= 14
    with pytest.raises(ValueError):
        encode(library_algorithm("strassen").replace(field="Z2"), "Z")  # mod-2 scheme on the ternary walk
    with pytest.raises(ValueError):
        encode(naive(9, 9, 9), "Z")  # 81 entries per factor: beyond the 64-bit masks


@pytest.mark.parametrize("field", FIELDS)
def test_lineage_resets_restart_from_start_and_still_reach_rank(field):
    """``reset_flips``: stalled lineages restart from the start or a recent improvement; the walk
    still verifies everything and reaches the rank (tiny reset period: many resets happen)."""
    # target 10 is below the border rank of <2,2,3> (11 is optimal): the walk spends its whole flip budget
    cfg = WalkConfig(field=field, target_rank=10, max_flips=1_000_000, budget_s=120, seed=5, path_length=20_000,
                     plateau=5_000, plateau_min=500, max_plus=3, reset_flips=60_000)
    res = walk_search(naive(2, 2, 3), cfg)
    assert res.best.rank == 11 and res.best.verify()
    assert res.restarts > 10 and res.flips == 1_000_000


@pytest.mark.parametrize("field", ["Z", "Z2"])
def test_pool_search_levels_reach_rank_with_valid_schemes(field):
    """Rank by rank with pools: every level's pool is built from runners that lowered the rank, and
    each new best rank is an exactly valid scheme of that rank."""
    from search.flips.pools import PoolConfig, pool_search
    levels = []
    res = pool_search(naive(2, 3, 3), PoolConfig(field=field, target_rank=15, budget_s=60, max_flips=50_000_000,
                                                 pool_size=8, runner_flips=200_000, seed=1),
                      on_level=lambda t, r, n, fl: levels.append((r, n)))
    assert res.best.rank == 15 and res.best.verify()
    assert [r for r, _ in levels] == sorted((r for r, _ in levels), reverse=True)
    assert all(1 <= n <= 8 for _, n in levels) and any(n > 1 for _, n in levels)  # pools, not single lineages
    assert [r for _, r in res.history] == sorted((r for _, r in res.history), reverse=True)
