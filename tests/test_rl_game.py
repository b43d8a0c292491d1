"""TensorGame rules: rewards, termination, the terminal penalty bound, exact factorizations."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.algebra.factors import matmul_tensor
from compiler.algebra.library import library_algorithm
from search.rl.config import GameConfig
from search.rl.game import (TensorGame, batch_ranks, can_finish, canonicalize, flattening_ranks, gf2_rank, int_rank,
                            is_null, is_rank_one, outer, random_basis, random_unimodular, rank_one_action, rank_upper_bound,
                            koszul_bounds, max_koszul_bound, order_admissible, rank_lower_bounds, split,
                            term_sizes)

SHAPES = [(2, 2, 2), (2, 2, 3), (1, 2, 3), (3, 3, 3)]


def actions_of(f):
    return [np.concatenate([f.U[:, r], f.V[:, r], f.W[:, r]]) for r in range(f.rank)]


@pytest.mark.parametrize("name", ["strassen", "winograd", "laderman"])
def test_playing_a_known_algorithm_solves_the_game(name):
    f = library_algorithm(name)
    g = TensorGame(GameConfig(shape=f.shape))
    rewards = [g.step(a) for a in actions_of(f)]
    assert g.solved and g.done
    assert rewards == [-1.0] * f.rank  # −1 per step, no terminal penalty when solved
    assert g.factorization().verify()
    assert g.factorization().rank == f.rank


def test_step_limit_charges_the_rank_bound_of_the_residual():
    f = library_algorithm("strassen")
    g = TensorGame(GameConfig(shape=(2, 2, 2), max_steps=5))
    acts = actions_of(f)
    rewards = [g.step(a) for a in acts[:5]]
    assert g.done and not g.solved
    residual = sum(outer(*split(a, g.dims)) for a in acts[5:])
    assert np.array_equal(g.residual, residual)
    # The residual is two rank-one terms; the slice bound is ≥ 2 and the last reward charges it.
    assert rewards[:4] == [-1.0] * 4
    assert rewards[4] == -1.0 - rank_upper_bound(residual)
    assert rank_upper_bound(residual) >= 2
    with pytest.raises(ValueError, match="over"):
        g.step(acts[5])
    with pytest.raises(ValueError, match="not solved"):
        g.factorization()


@pytest.mark.parametrize("shape", SHAPES)
def test_rank_bound_is_an_upper_bound_and_tight_on_naive(shape):
    t = matmul_tensor(*shape)
    n, m, p = shape
    # Each slice of the matmul tensor along a mode is a permutation-like 0/1 matrix: the bound is nmp.
    assert rank_upper_bound(t) == n * m * p
    rng = np.random.default_rng(0)
    g = GameConfig(shape=shape)
    for r in range(1, 4):
        acts = rng.integers(-2, 3, size=(r, sum(g.dims)))
        s = sum(outer(*split(a, g.dims)) for a in acts)
        assert rank_upper_bound(s) <= r * min(g.dims)  # each term adds rank ≤ 1 to each of its slices


def test_exact_ranks():
    assert int_rank(np.array([[1, 2], [2, 4]])) == 1
    assert int_rank(np.array([[1, 2], [3, 4]])) == 2
    assert gf2_rank(np.array([[1, 1], [1, 1]])) == 1
    assert gf2_rank(np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]])) == 2  # rows sum to 0 mod 2
    assert int_rank(np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]])) == 3


def test_coefficients_outside_the_set_are_refused():
    g = TensorGame(GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1)))
    with pytest.raises(ValueError, match="outside"):
        g.step(np.full(12, 2))
    with pytest.raises(ValueError, match="coefficients"):
        g.step(np.ones(5))


def test_z2_game_updates_mod_2_and_yields_mod2_factorization():
    f = library_algorithm("strassen")
    g = TensorGame(GameConfig(shape=(2, 2, 2), field="Z2"))
    for a in actions_of(f):
        g.step(np.mod(a, 2))
        assert set(np.unique(g.residual).tolist()) <= {0, 1}
    assert g.solved
    h = g.factorization()
    assert h.field == "Z2" and h.verify()


@pytest.mark.parametrize("seed", range(5))
def test_game_in_a_random_unimodular_basis_maps_back_to_an_exact_factorization(seed):
    f = library_algorithm("strassen")
    rng = np.random.default_rng(seed)
    cfg = GameConfig(shape=(2, 2, 2), coefficients=tuple(range(-40, 41)))  # basis change grows coefficients
    basis = random_basis(cfg.dims, rng)
    g = TensorGame(cfg, basis)
    assert not np.array_equal(g.start, matmul_tensor(2, 2, 2)) or seed  # (the identity is possible, rarely)
    # Strassen's terms in the new basis: u' = A u etc.
    for a in actions_of(f):
        u, v, w = split(a, g.dims)
        g.step(np.concatenate([basis.A @ u, basis.B @ v, basis.C @ w]))
    assert g.solved
    h = g.factorization()
    assert h.is_integral and h.verify() and h.rank == 7


@pytest.mark.parametrize("d", [1, 2, 4, 9])
def test_random_unimodular_is_integral_with_integral_inverse(d):
    M, Mi = random_unimodular(d, np.random.default_rng(d))
    assert M.dtype == np.int64 and Mi.dtype == np.int64
    assert np.array_equal(M @ Mi, np.eye(d, dtype=np.int64))
    assert abs(round(np.linalg.det(M))) == 1


def test_canonical_form_represents_the_same_rank_one_term():
    rng = np.random.default_rng(0)
    dims = (4, 4, 4)
    for _ in range(50):
        a = rng.integers(-2, 3, size=12)
        c = canonicalize(a, dims)
        assert np.array_equal(outer(*split(a, dims)), outer(*split(c, dims)))
        u, v, w = split(a, dims)
        for b in (np.concatenate([-u, -v, w]), np.concatenate([-u, v, -w]), np.concatenate([u, -v, -w])):
            assert np.array_equal(canonicalize(b, dims), c)


# -- exact admissible signals: flattening ranks, can_finish, the rank-one endgame ------------------
@pytest.mark.parametrize("shape", [(4, 16), (16, 4), (6, 9), (3, 3), (1, 5)])
def test_batch_ranks_agree_with_exact_rational_ranks(shape):
    rng = np.random.default_rng(0)
    full = rng.integers(-3, 4, size=(60, *shape)) * (rng.random((60, *shape)) < 0.5)
    low = np.einsum("bir,bjr->bij", rng.integers(-2, 3, (60, shape[0], 2)), rng.integers(-2, 3, (60, shape[1], 2)))
    for mats in (full, low, np.zeros((3, *shape), np.int64)):
        assert batch_ranks(mats).tolist() == [int_rank(m) for m in mats]


def test_batch_ranks_modulo_2_are_gf2_ranks():
    rng = np.random.default_rng(1)
    mats = rng.integers(0, 2, size=(80, 4, 6))
    assert batch_ranks(mats, 2).tolist() == [gf2_rank(m) for m in mats]


def test_flattening_ranks_bound_the_rank_and_can_finish_is_admissible():
    t = matmul_tensor(2, 2, 2)
    assert flattening_ranks(t).tolist() == [4, 4, 4]
    # Strassen's decomposition: after r of its terms the residual has rank ≤ 7 − r, so it is never
    # excluded; with one step fewer than its flattening rank it is.
    acts = actions_of(library_algorithm("strassen"))
    s = t.copy()
    for r, a in enumerate(acts):
        assert can_finish(s, 7 - r)
        assert flattening_ranks(s).max() <= 7 - r
        s = s - outer(*split(a, (4, 4, 4)))
    assert not can_finish(t, 3, koszul=False) and can_finish(t, 4, koszul=False)
    assert not can_finish(t, 5) and can_finish(t, 6)  # the Koszul bound of T is 6
    assert can_finish(np.zeros((4, 4, 4), np.int64), 0) and not can_finish(t * 0 + outer(*split(acts[0], (4, 4, 4))), 0)
    batch = np.stack([t, np.zeros_like(t)])
    assert can_finish(batch, 3).tolist() == [False, True]


@pytest.mark.parametrize("cfg", [GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1)),
                                 GameConfig(shape=(2, 2, 3)), GameConfig(shape=(2, 3, 2), field="Z2")],
                         ids=lambda c: f"{c.shape}-{c.field}")
def test_rank_one_action_decomposes_exactly_what_one_term_can(cfg):
    rng = np.random.default_rng(2)
    for _ in range(100):
        a = rng.choice(cfg.coefficients, size=sum(cfg.dims))
        if is_null(a, cfg.dims):
            continue
        s = outer(*split(a, cfg.dims))
        s = np.mod(s, 2) if cfg.field == "Z2" else s
        b = rank_one_action(s, cfg)
        assert b is not None and set(np.unique(b).tolist()) <= set(cfg.coefficients)
        t = outer(*split(b, cfg.dims))
        assert np.array_equal(np.mod(t, 2) if cfg.field == "Z2" else t, s)
    assert rank_one_action(np.zeros(cfg.dims, np.int64), cfg) is None
    assert rank_one_action(matmul_tensor(*cfg.shape), cfg) is None  # rank > 1


def test_rank_one_action_respects_the_coefficient_set():
    e = np.array([1, 0, 0, 0])
    two = 2 * outer(e, e, e)
    assert rank_one_action(two, GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1))) is None
    b = rank_one_action(two, GameConfig(shape=(2, 2, 2)))  # {-2..2}: the 2 goes into one factor
    assert np.array_equal(outer(*split(b, (4, 4, 4))), two)


def test_is_rank_one_is_exact_on_a_batch():
    rng = np.random.default_rng(3)
    terms = [outer(*split(rng.integers(-2, 3, 12), (4, 4, 4))) for _ in range(40)]
    ones = [t for t in terms if t.any()]
    twos = [ones[i] + ones[i + 1] for i in range(len(ones) - 1)]
    got = is_rank_one(np.stack(ones + twos + [np.zeros((4, 4, 4), np.int64)]))
    want = [True] * len(ones) + [bool(flattening_ranks(t).max() == 1) for t in twos] + [False]
    assert got.tolist() == want
    assert is_rank_one((outer(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), np.array([1, 0, 1, 0])) * 3)[None]).all()
    assert not is_rank_one(matmul_tensor(2, 2, 2)[None]).any()


def test_ordered_game_refuses_a_larger_term_after_a_smaller_one_and_keeps_every_factorization():
    f = library_algorithm("strassen")
    cfg = GameConfig(shape=(2, 2, 2), ordered=True)
    acts = actions_of(f)
    sizes = term_sizes(np.stack(acts), cfg.dims)
    assert sizes.tolist() == [8, 4, 4, 4, 4, 4, 4]  # (a11+a22)(b11+b22)(c11+c22) first, then six of size 4
    g = TensorGame(cfg)
    for i in np.argsort(-sizes, kind="stable"):  # any factorization, sorted, is a legal game
        g.step(acts[i])
    assert g.solved and g.factorization().verify()
    g = TensorGame(cfg)
    g.step(acts[1])
    assert g.size_bound == 4
    with pytest.raises(ValueError, match="out of order"):
        g.step(acts[0])
    # The transposition key tells apart equal residuals reached with different last sizes.
    assert TensorGame(GameConfig(shape=(2, 2, 2))).key() != TensorGame(cfg).key()


def test_order_admissible_bounds_the_entries_left_terms_can_cover():
    t = matmul_tensor(2, 2, 2)  # eight entries
    assert order_admissible(t[None], 8, np.array([1])).all()  # eight naive terms
    assert not order_admissible(t[None], 7, np.array([1])).any()  # seven size-1 terms cover ≤ 7 entries
    assert order_admissible(t[None], 2, np.array([4])).all()


def test_koszul_bound_is_a_lower_bound_that_separates_correct_second_moves():
    t = matmul_tensor(2, 2, 2)
    assert koszul_bounds(t[None]).tolist() == [6]
    acts = actions_of(library_algorithm("strassen"))
    s, prefix = t.copy(), []
    for r, a in enumerate(acts):  # residuals along Strassen's decomposition have rank ≤ 7 − r
        prefix.append(s.copy())
        s = s - outer(*split(a, (4, 4, 4)))
    lb = rank_lower_bounds(np.stack(prefix))
    assert (lb <= 7 - np.arange(7)).all() and lb[2] == 5
    # After Strassen's first term, a random second term almost always leaves a residual of bound 6 > 5.
    rng = np.random.default_rng(0)
    bad = []
    while len(bad) < 50:
        y = rng.integers(-1, 2, 12)
        if not is_null(y, (4, 4, 4)):
            bad.append(prefix[1] - outer(*split(y, (4, 4, 4))))
    assert (koszul_bounds(np.stack(bad)) == 6).mean() > 0.9
    assert max_koszul_bound((4, 4, 4)) == 6 and max_koszul_bound((1, 2, 2)) == 0
