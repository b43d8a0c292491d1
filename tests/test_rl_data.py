"""Synthetic demonstrations and augmentations keep every sample an exact decomposition step."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.algebra.library import library_algorithm
from search.rl.config import GameConfig, TrainConfig
from search.rl.data import (augment, batch_from_samples, canonicalize_batch, concat_batches, random_actions,
                            synthetic_batch, synthetic_demo, synthetic_position, trajectory_samples)
from search.rl.game import TensorGame, canonicalize, is_null, outer, split, term_sizes

CONFIGS = [GameConfig(shape=(2, 2, 2)), GameConfig(shape=(2, 2, 3), coefficients=(-1, 0, 1)),
           GameConfig(shape=(2, 3, 2), field="Z2"), GameConfig(shape=(1, 2, 3))]


def _term(a, cfg):
    t = outer(*split(a, cfg.dims))
    return np.mod(t, 2) if cfg.field == "Z2" else t


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.shape}-{c.field}")
def test_synthetic_demo_is_an_exact_trajectory(cfg):
    rng = np.random.default_rng(0)
    for _ in range(20):
        demo = synthetic_demo(cfg, TrainConfig(), rng)
        R = len(demo)
        for k, s in enumerate(demo):
            assert s.value == -(R - k) and s.step == k
            assert set(np.unique(s.actions).tolist()) <= set(cfg.coefficients) | ({1} if cfg.field == "Z2" else set())
            nxt = s.residual.astype(np.int64) - _term(s.actions[0], cfg)
            if cfg.field == "Z2":
                nxt = np.mod(nxt, 2)
            if k + 1 < R:
                assert np.array_equal(nxt, demo[k + 1].residual)
            else:
                assert not nxt.any()  # the last action finishes the decomposition


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.shape}-{c.field}")
def test_random_actions_are_non_null_and_in_the_set(cfg):
    acts = random_actions(cfg, np.random.default_rng(1), 0.7, 200)
    assert acts.shape == (200, sum(cfg.dims))
    assert not any(is_null(a, cfg.dims) for a in acts)
    assert set(np.unique(acts).tolist()) <= set(cfg.coefficients)


@pytest.mark.parametrize("name", ["strassen", "laderman"])
@pytest.mark.parametrize("seed", range(3))
def test_signed_permutation_augmentation_preserves_the_decomposition(name, seed):
    """Augment every position of a known algorithm's game: each augmented residual is still exactly
    the sum of the augmented remaining terms, and replaying them from the augmented start solves it."""
    f = library_algorithm(name)
    cfg = GameConfig(shape=f.shape)
    acts = [np.concatenate([f.U[:, r], f.V[:, r], f.W[:, r]]) for r in range(f.rank)]
    samples = trajectory_samples(cfg, TensorGame(cfg).start, acts)
    for k, s in list(enumerate(samples))[::3]:  # every third position: Laderman's 23 suffice sparsely
        a = augment(s, cfg, np.random.default_rng([seed, k]))
        assert set(np.unique(a.actions).tolist()) <= set(cfg.coefficients)  # signed permutations keep the set
        # The augmented target is a term of some decomposition of the augmented residual: the rest
        # of the game (augmented with the same permutation) must finish it. Rebuild that permutation
        # by augmenting the whole remaining trajectory with the same generator seed.
        rest = trajectory_samples(cfg, s.residual.astype(np.int64), acts[k:])
        aug_rest = [augment(r, cfg, np.random.default_rng([seed, k])) for r in rest]
        assert np.array_equal(aug_rest[0].residual, a.residual)
        total = sum(_term(r.actions[0], cfg) for r in aug_rest)
        assert np.array_equal(total, a.residual.astype(np.int64))
        assert len(a.history) == len(s.history)


def test_synthetic_position_matches_its_value_and_canonical_target():
    cfg, t = GameConfig(shape=(2, 2, 2)), TrainConfig()
    rng = np.random.default_rng(3)
    for _ in range(50):
        s = synthetic_position(cfg, t, rng)
        assert np.array_equal(canonicalize(s.actions[0], cfg.dims), s.actions[0])
        assert -cfg.steps <= s.value <= -1
        assert s.residual.any()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.shape}-{c.field}")
@pytest.mark.parametrize("all_targets", [True, False])
def test_synthetic_position_targets_are_remaining_terms(cfg, all_targets):
    """Every policy target of a demo position is a term whose removal leaves a residual of one term
    fewer: with all targets on, the targets are the distinct remaining terms with uniform weights."""
    t = TrainConfig(demo_all_targets=all_targets)
    rng = np.random.default_rng(5)
    for _ in range(30):
        s = synthetic_position(cfg, t, rng)
        remaining = -int(s.value)
        assert np.isclose(s.weights.sum(), 1.0) and np.allclose(s.weights, s.weights[0])
        assert len(s.actions) <= (remaining if all_targets else 1)
        res = s.residual.astype(np.int64)
        for a in s.actions:
            # The residual is a sum of `remaining` terms with `a` among them: a game from it that
            # plays `a` first still reaches zero in `remaining` moves (checked below for rank one).
            if remaining == 1:
                nxt = res - _term(a, cfg)
                assert not (np.mod(nxt, 2) if cfg.field == "Z2" else nxt).any()
        assert len({a.tobytes() for a in s.actions}) == len(s.actions)  # deduplicated


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.shape}-{c.field}")
@pytest.mark.parametrize("all_targets", [True, False])
def test_synthetic_batch_positions_are_exact_decomposition_states(cfg, all_targets):
    """Each position of a vectorised synthetic batch: with all targets, the residual is exactly the sum of
    its (canonical) targets and the value −(their number); with one target, playing it leaves a residual
    of one term fewer; the history holds the terms before the cut (zeros where there were none)."""
    t = TrainConfig(demo_all_targets=all_targets, demo_min_rank=2)
    b = synthetic_batch(cfg, t, np.random.default_rng(7), 64)
    assert len(b) == 64 and b.history.shape == (64, cfg.history, sum(cfg.dims))
    for i in range(64):
        tg = b.actions[b.owner == i]
        assert np.isclose(b.weights[b.owner == i].sum(), 1.0)
        assert all(np.array_equal(canonicalize(a, cfg.dims, cfg.field), a) for a in tg)
        assert set(np.unique(tg).tolist()) <= set(cfg.coefficients)
        remaining = -int(b.value[i])
        if all_targets:
            total = sum(_term(a, cfg) for a in tg)
            total = np.mod(total, 2) if cfg.field == "Z2" else total
            assert len(tg) == remaining and np.array_equal(total, b.residual[i])
        else:
            assert len(tg) == 1
        assert (b.history[i].any(1).sum()) == min(int(b.step[i]), cfg.history)


def test_canonicalize_batch_matches_canonicalize():
    rng = np.random.default_rng(4)
    for cfg in CONFIGS:
        acts = rng.choice(cfg.coefficients, size=(100, sum(cfg.dims)))
        want = np.stack([canonicalize(a, cfg.dims, cfg.field) for a in acts])
        assert np.array_equal(canonicalize_batch(acts, cfg.dims, cfg.field), want)


def test_batch_from_samples_keeps_targets_with_their_positions():
    cfg = GameConfig(shape=(2, 2, 2))
    f = library_algorithm("strassen")
    acts = [np.concatenate([f.U[:, r], f.V[:, r], f.W[:, r]]) for r in range(f.rank)]
    samples = trajectory_samples(cfg, TensorGame(cfg).start, acts)
    b = batch_from_samples(samples, cfg)
    assert len(b) == 7 and b.owner.tolist() == list(range(7))
    assert b.value.tolist() == [-7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0]
    assert not b.history[0].any() and np.array_equal(b.history[3][-1], acts[2]) and np.array_equal(b.history[3][0], acts[1])
    both = concat_batches([b, b])
    assert len(both) == 14 and both.owner.tolist() == list(range(14))


def test_ordered_synthetic_batches_and_demos_follow_non_increasing_sizes():
    cfg = GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1), ordered=True)
    rng = np.random.default_rng(8)
    b = synthetic_batch(cfg, TrainConfig(demo_min_rank=4), rng, 100)
    for i in range(100):
        tg = b.actions[b.owner == i]
        sz = term_sizes(tg, cfg.dims)
        past = [int(term_sizes(a, cfg.dims)) for a in b.history[i] if a.any()]
        assert (sz == sz[0]).all() and all(p >= sz[0] for p in past) and past == sorted(past, reverse=True)
    for _ in range(10):
        demo = synthetic_demo(cfg, TrainConfig(), rng)
        g = TensorGame(cfg, target=demo[0].residual.astype(np.int64))
        for s in demo:
            g.step(s.actions[0])  # the game refuses an out-of-order move
        assert g.solved
    for _ in range(20):
        s = synthetic_position(cfg, TrainConfig(), rng)
        assert len(set(term_sizes(s.actions, cfg.dims).tolist())) == 1
