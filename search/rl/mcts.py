"""Sampled MCTS (Sampled AlphaZero, Hubert et al. 2021) over TensorGame states.

At each expanded node, K actions are sampled from the policy; the node's prior over its sampled
actions is the empirical sample distribution β̂ (with β = π the Sampled-AlphaZero correction
β̂/β·π reduces to β̂). Selection is pUCT over the sampled actions with min-max-normalised Q values;
leaves are valued by the network's risk-seeking readout; terminal states have value 0 (their
terminal penalty is on the edge into them). Nodes live in a transposition table keyed by
(residual, step), so two action orders reaching the same residual share statistics, and the
subtree under the chosen action is reused for the next move. The improved policy is the root's
visit-count distribution over its sampled actions.

Optional leaf evaluation by policy rollouts (``MCTSConfig.rollouts``): one rollout (AlphaGo), or
``rollout_batch`` of them played side by side as one network batch per move, the leaf taking their
best exact return. A rollout that finishes the game is kept in ``solution`` and played by the caller.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from search.rl.config import MCTSConfig
from search.rl.game import TensorGame, canonicalize, is_null, rank_upper_bound, split

# evaluate(game, k) -> (actions (k', L) int array, value of the state)
Evaluator = Callable[[TensorGame, int], tuple[np.ndarray, float]]
# act_batch(residuals (B, S1, S2, S3), histories (B lists of actions), step) -> one action per state (B, L)
BatchPolicy = Callable[[np.ndarray, list, int], np.ndarray]


class Node:
    __slots__ = ("game", "actions", "prior", "N", "W", "R", "children", "value", "expanded")

    def __init__(self, game: TensorGame) -> None:
        self.game = game
        self.expanded = False
        self.value = 0.0
        self.actions: list[np.ndarray] = []
        self.prior = self.N = self.W = self.R = np.zeros(0)
        self.children: list[Node | None] = []

    @property
    def terminal(self) -> bool:
        return self.game.done

    def visits(self) -> int:
        return int(self.N.sum())


class MCTS:
    def __init__(self, evaluate: Evaluator, cfg: MCTSConfig, canonical: bool = True,
                 rng: np.random.Generator | None = None, act_batch: BatchPolicy | None = None) -> None:
        self.evaluate, self.cfg, self.canonical = evaluate, cfg, canonical
        self.act_batch = act_batch  # batched rollouts (rollout_batch > 1); None: one evaluate call per move
        self.table: dict[bytes, Node] = {}
        self.qmin, self.qmax = math.inf, -math.inf
        self.rng = rng  # for the root's Dirichlet noise (none without a generator)
        self.solution: list[np.ndarray] | None = None  # the actions of a rollout that solved the game
        self._root: Node | None = None
        self._root_prior = np.zeros(0)

    def node(self, game: TensorGame) -> Node:
        k = game.key()
        n = self.table.get(k)
        if n is None:
            n = self.table[k] = Node(game)
        return n

    def expand(self, node: Node) -> float:
        g = node.game
        acts, value = self.evaluate(g, self.cfg.samples)
        counts: dict[bytes, list] = {}
        for a in acts:
            a = canonicalize(a, g.dims, g.cfg.field) if self.canonical else np.asarray(a, np.int64)
            if is_null(a, g.dims):
                continue  # a zero factor changes nothing and costs a step
            e = counts.setdefault(a.tobytes(), [a, 0])
            e[1] += 1
        if not counts:  # every sample was null: keep the node a leaf with its value
            node.expanded, node.value = True, value
            return value
        node.actions = [a for a, _ in counts.values()]
        c = np.array([n for _, n in counts.values()], dtype=np.float64)
        node.prior = c / c.sum()
        node.N = np.zeros(len(c))
        node.W = np.zeros(len(c))
        node.R = np.zeros(len(c))
        node.children = [None] * len(c)
        node.expanded, node.value = True, value
        return value

    def _norm(self, q: np.ndarray) -> np.ndarray:
        if self.qmax > self.qmin:
            return (q - self.qmin) / (self.qmax - self.qmin)
        return np.full_like(q, 0.5)

    def select(self, node: Node) -> int:
        n_tot = node.N.sum()
        q = np.where(node.N > 0, node.W / np.maximum(node.N, 1), node.value)  # unvisited: the node's value
        prior = self._root_prior if node is self._root else node.prior
        score = self._norm(q) + self.cfg.c_puct * prior * math.sqrt(n_tot + 1) / (1 + node.N)
        return int(np.argmax(score))

    def simulate(self, root: Node) -> None:
        path: list[tuple[Node, int]] = []
        node = root
        while node.expanded and not node.terminal and node.actions:
            i = self.select(node)
            path.append((node, i))
            child = node.children[i]
            if child is None:
                g = node.game.clone()
                node.R[i] = g.step(node.actions[i])
                child = node.children[i] = self.node(g)
            node = child
        if node.terminal:
            v = 0.0
        else:
            v = self.expand(node) if not node.expanded else node.value
            if self.cfg.rollouts and node.actions:
                v = (1 - self.cfg.rollout_weight) * v + self.cfg.rollout_weight * self.rollout(node.game)
        for parent, i in reversed(path):
            v = parent.R[i] + v
            parent.N[i] += 1
            parent.W[i] += v
            self.qmin, self.qmax = min(self.qmin, v), max(self.qmax, v)

    def rollout(self, game: TensorGame) -> float:
        if self.cfg.rollout_batch > 1:
            return self.rollouts(game, self.cfg.rollout_batch)
        return self.rollout_one(game)

    def rollouts(self, game: TensorGame, n: int) -> float:
        """``n`` policy rollouts from ``game`` played side by side; the best return (risk-seeking).

        The best of n, not the mean: the search looks for one factorization, and a state from which
        one rollout in n finishes at rank r is worth −r to it (the value head's readout is likewise
        the upper quantiles). Every return is exact: −1 per move, and for an unfinished rollout the
        game's terminal penalty (the rank bound of its residual). A finishing rollout is kept in
        ``solution`` like a single one.
        """
        cfg, dims = game.cfg, game.dims
        S = np.repeat(game.residual[None], n, 0)
        hist = [list(game.actions) for _ in range(n)]
        alive = np.ones(n, bool)
        step = game.steps
        while step < cfg.steps and alive.any():
            idx = np.flatnonzero(alive)
            if self.act_batch is not None:
                acts = np.asarray(self.act_batch(S[idx], [hist[i] for i in idx], step), np.int64)
            else:
                acts = np.stack([self.evaluate(_state(game, S[i], hist[i]), 1)[0][0] for i in idx])
            u, v, w = split(acts.T, dims)
            S[idx] -= np.einsum("ib,jb,kb->bijk", u, v, w)
            if cfg.field == "Z2":
                S[idx] %= 2
            for j, i in enumerate(idx):
                hist[i].append(acts[j])
            step += 1
            alive[idx[~S[idx].reshape(len(idx), -1).any(1)]] = False
        solved = ~S.reshape(n, -1).any(1)
        if solved.any():
            i = min(np.flatnonzero(solved), key=lambda i: len(hist[i]))
            if self.solution is None or len(hist[i]) < len(self.solution):
                self.solution = list(hist[i])
            return -float(len(hist[i]) - game.steps)
        # Unfinished: all used the step limit; the best return has the smallest residual bound.
        pen = {}
        for i in range(n):
            pen.setdefault(S[i].tobytes(), S[i])
        best = min(rank_upper_bound(r, cfg.field) for r in pen.values())
        return -float(cfg.steps - game.steps) - float(best)

    def rollout_one(self, game: TensorGame) -> float:
        """AlphaGo's leaf evaluation: play on with one policy sample per move; its return.

        The return is exact (the game's own rewards and terminal penalty), so it corrects a value
        head that cannot yet tell a rank-6 residual from a rank-7 one. A rollout that solves the
        game is kept in ``solution``: the caller plays it out (it is a verified factorization).
        """
        g = game.clone()
        while not g.done:
            acts, _ = self.evaluate(g, 1)
            g.step(acts[0])
        if g.solved and (self.solution is None or len(g.actions) < len(self.solution)):
            self.solution = list(g.actions)
        return g.total_reward - game.total_reward

    def search(self, root: Node, simulations: int | None = None) -> Node:
        if not root.expanded and not root.terminal:
            self.expand(root)
        self._root, self._root_prior = root, root.prior
        if self.rng is not None and self.cfg.root_noise > 0 and len(root.prior) > 1:
            # AlphaZero's exploration: mix Dirichlet noise into the root's prior (the stored prior stays clean).
            noise = self.rng.dirichlet(np.full(len(root.prior), self.cfg.dirichlet_alpha))
            self._root_prior = (1 - self.cfg.root_noise) * root.prior + self.cfg.root_noise * noise
        for _ in range(simulations or self.cfg.simulations):
            self.simulate(root)
            if self.solution is not None and len(self.solution) <= root.game.cfg.steps and self.cfg.stop_on_solution:
                break
        return root

    def policy(self, root: Node) -> tuple[list[np.ndarray], np.ndarray]:
        """The improved policy: the sampled actions and their visit fractions."""
        n = root.N
        return root.actions, (n / n.sum() if n.sum() else root.prior)

    def choose(self, root: Node, rng: np.random.Generator, temperature: bool) -> int:
        if temperature:
            _, p = self.policy(root)
            return int(rng.choice(len(p), p=p))
        q = np.where(root.N > 0, root.W / np.maximum(root.N, 1), -np.inf)
        best = np.flatnonzero(root.N == root.N.max())
        return int(best[np.argmax(q[best])])

    def advance(self, root: Node, i: int) -> Node:
        """The next root: the chosen child (its subtree reused) or a fresh node."""
        child = root.children[i]
        if child is None:
            g = root.game.clone()
            g.step(root.actions[i])
            child = self.node(g)
        if not self.cfg.reuse_tree:
            self.table.clear()
            child = self.node(child.game)
            child.expanded = False
        return child


def _state(game: TensorGame, residual: np.ndarray, actions: list) -> TensorGame:
    """A copy of ``game`` at another residual and action list (for rollouts without a batch policy)."""
    g = game.clone()
    g.residual, g.actions = residual.copy(), list(actions)
    return g
