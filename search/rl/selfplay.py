"""Self-play: one game of TensorGame played by sampled MCTS with the network, as training data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from compiler.algebra.factors import Factorization
from search.rl.config import RunConfig
from search.rl.data import Sample
from search.rl.game import TensorGame, canonicalize, random_basis
from search.rl.mcts import MCTS
from search.rl.network import AlphaTensorNet


@dataclass
class GameRecord:
    start: np.ndarray  # the tensor played (in the game's basis)
    actions: list  # the actions played, in the game's basis
    samples: list  # Sample per move, with MCTS visit targets
    solved: bool
    total_reward: float
    factorization: Factorization | None = None  # exactly verified, original basis
    bonus: float = 0.0  # λ·b(f) of the reward plugin (0 for the rank reward)
    in_basis: bool = False
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        return len(self.actions) if self.solved else None


def make_evaluator(net: AlphaTensorNet, temperature: float, generator: torch.Generator):
    def evaluate(game: TensorGame, k: int):
        return net.evaluate(game.residual, game.actions, game.steps, k, temperature, generator)
    return evaluate


def make_batch_policy(net: AlphaTensorNet, temperature: float, generator: torch.Generator):
    def act(residuals: np.ndarray, histories: list, step: int, k: int = 1, temperature: float = temperature) -> np.ndarray:
        return net.act_batch(residuals, histories, step, temperature, generator, k)
    return act


def play_game(net: AlphaTensorNet, cfg: RunConfig, rng: np.random.Generator, reward=None,
              provenance: dict | None = None) -> GameRecord:
    """Play one game; ``reward`` (a search.rewards plugin) adds λ·b(f) to a solved game's return."""
    import time
    t0 = time.perf_counter()
    tcfg = cfg.train
    in_basis = tcfg.change_of_basis and rng.random() < tcfg.basis_probability
    basis = random_basis(cfg.game.dims, rng) if in_basis else None
    game = TensorGame(cfg.game, basis)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    mcts = MCTS(make_evaluator(net, cfg.mcts.sample_temperature, gen), cfg.mcts, tcfg.canonicalize,
                np.random.default_rng(int(rng.integers(2**62))),
                make_batch_policy(net, cfg.mcts.rollout_temperature or cfg.mcts.sample_temperature, gen))
    root = mcts.node(game)
    positions, rewards = [], []
    info: dict = {}
    while not game.done:
        mcts.search(root)
        if mcts.solution is not None and cfg.mcts.stop_on_solution:
            # Where it came from: a rollout started at this depth (0: the game's root, by root rollouts).
            info["solved_by_rollout_from_step"] = mcts.solution_from
            info["solved_at_move"] = game.steps
            # A rollout solved the game: play its remaining moves, each a demonstrated (weight-1) target.
            for a in mcts.solution[game.steps:]:
                positions.append(Sample(game.residual.astype(np.int8), list(game.actions), game.steps,
                                        canonicalize(a, game.dims, game.cfg.field)[None], np.ones(1), 0.0))
                rewards.append(game.step(a))
            break
        if not root.actions:  # the policy proposed only null actions: end the game unsolved
            break
        acts, probs = mcts.policy(root)
        positions.append(Sample(game.residual.astype(np.int8), list(game.actions), game.steps,
                                np.stack(acts), probs.copy(), 0.0))
        i = mcts.choose(root, rng, temperature=game.steps < cfg.mcts.temperature_moves)
        rewards.append(game.step(acts[i]))
        root = mcts.advance(root, i)
    if not game.done:  # stopped early: charge the rest of the step budget and the residual's bound
        rewards.append(-(cfg.game.steps - game.steps) - game.terminal_penalty())
    f, bonus = None, 0.0
    if game.solved:
        f = game.factorization(**(provenance or {"method": "rl"}))
        if reward is not None and cfg.reward != "rank":
            bonus = cfg.reward_lambda * float(reward(f))
            rewards[-1] += bonus
    ret = np.cumsum(rewards[::-1])[::-1]
    for s, g in zip(positions, ret):
        s.value = float(g)
    return GameRecord(game.start.copy(), list(game.actions), positions, game.solved, float(sum(rewards)), f, bonus,
                      in_basis, time.perf_counter() - t0, info)
