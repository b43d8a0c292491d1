"""Self-play bookkeeping with a scripted policy: returns, value targets, the reward plugin's bonus."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from compiler.algebra.library import library_algorithm  # noqa: E402
from search.rewards import load_reward  # noqa: E402
from search.rl.config import GameConfig, MCTSConfig, RunConfig, TrainConfig  # noqa: E402
from search.rl.selfplay import play_game  # noqa: E402

STRASSEN = library_algorithm("strassen")
COLUMNS = [np.concatenate([STRASSEN.U[:, r], STRASSEN.V[:, r], STRASSEN.W[:, r]]) for r in range(7)]


class ScriptedNet:
    """Stands in for the network: proposes Strassen's next product (by step count), value −(7 − step)."""

    def evaluate(self, residual, history, step, k, temperature=1.0, generator=None):
        return np.stack([COLUMNS[step]] * k), -float(7 - step)


CFG = RunConfig(game=GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1)),
                mcts=MCTSConfig(simulations=4, samples=2),
                train=TrainConfig(change_of_basis=False), reward="_reward_plugins:NnzReward", reward_lambda=0.5)


def test_scripted_game_solves_and_labels_returns():
    rec = play_game(ScriptedNet(), RunConfig(**{**CFG.__dict__, "reward": "rank"}), np.random.default_rng(0))
    assert rec.solved and rec.rank == 7 and rec.factorization.verify()
    assert rec.total_reward == -7.0 and rec.bonus == 0.0
    assert [s.value for s in rec.samples] == [-7.0 + k for k in range(7)]  # the return from each position
    for s in rec.samples:
        assert abs(s.weights.sum() - 1) < 1e-12


def test_reward_plugin_adds_lambda_times_bonus_to_a_solved_game():
    plugin = load_reward(CFG.reward)
    rec = play_game(ScriptedNet(), CFG, np.random.default_rng(0), reward=plugin,
                    provenance={"method": "rl", "notes": "test"})
    b = plugin(rec.factorization)
    assert b == -float(sum(STRASSEN.nnz))
    assert rec.bonus == 0.5 * b
    assert rec.total_reward == -7.0 + 0.5 * b  # AlphaTensor's r' = r + λ·b
    assert rec.samples[0].value == rec.total_reward
    assert rec.factorization.provenance.method == "rl"


class RolloutOnlyNet:
    """Searches offer Strassen's first product (and junk) at the start, then only junk; a one-sample
    request (a rollout) gets Strassen's next product: only a rollout can finish the game."""

    JUNK = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0])  # a11·b11 → c12: not a Strassen product

    def evaluate(self, residual, history, step, k, temperature=1.0, generator=None):
        if k == 1:
            return COLUMNS[step][None], -float(7 - step)
        return np.stack([COLUMNS[0] if step == 0 else self.JUNK, self.JUNK] * (k // 2)), -float(7 - step)


def test_a_solving_rollout_is_played_out_as_a_verified_game():
    cfg = RunConfig(game=GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1), max_steps=7),
                    # One rollout candidate per move: the scripted net answers one-sample requests only.
                    mcts=MCTSConfig(simulations=4, samples=2, rollouts=True, rollout_candidates=1),
                    train=TrainConfig(change_of_basis=False))
    rec = play_game(RolloutOnlyNet(), cfg, np.random.default_rng(0))
    assert rec.solved and rec.rank == 7 and rec.factorization.verify()
    assert rec.total_reward == -7.0
    assert [s.value for s in rec.samples] == [-7.0 + k for k in range(7)]
    assert rec.info["solved_by_rollout_from_step"] is not None and rec.info["solved_at_move"] <= 1
    # Without rollouts the same searches only see the junk action and cannot solve it.
    plain = RunConfig(**{**cfg.__dict__, "mcts": MCTSConfig(simulations=4, samples=2)})
    assert not play_game(RolloutOnlyNet(), plain, np.random.default_rng(0)).solved
