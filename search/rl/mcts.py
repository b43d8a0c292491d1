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
``root_rollouts`` evaluates a freshly expanded root the same way; ``rollout_first_temperature``
samples each rollout's first move at its own temperature.

Exact pruning (``MCTSConfig.prune``): sampled actions that ``admissible`` rejects (a residual whose
rank lower bound exceeds the steps left; in ordered games also the order and its entry bound) are
dropped at expansion, and rollouts play the first admissible of ``rollout_candidates`` samples; a
rank-one residual in the coefficient set is finished exactly without the network.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from search.rl.config import MCTSConfig
from search.rl.game import (TensorGame, can_finish, canonicalize, is_null, is_rank_one, max_koszul_bound,
                            order_admissible, rank_lower_bounds, rank_one_action, rank_upper_bound, split, term_sizes)

# evaluate(game, k) -> (actions (k', L) int array, value of the state)
Evaluator = Callable[[TensorGame, int], tuple[np.ndarray, float]]
# act_batch(residuals (B, S1, S2, S3), histories (B lists of actions), step[, k]) -> k actions per state,
# grouped by state (B·k, L); called without k for one action per state
BatchPolicy = Callable[..., np.ndarray]


def max_flattening_rank(dims: tuple[int, int, int]) -> int:
    """The largest rank any flattening of an S1×S2×S3 tensor can have."""
    a, b, c = dims
    return max(min(a, b * c), min(b, c * a), min(c, a * b))


def max_lower_bound(dims: tuple[int, int, int]) -> int:
    """The largest rank lower bound ``can_finish`` can prove for this shape: above it pruning never bites."""
    return max(max_flattening_rank(dims), max_koszul_bound(dims))


def admissible(residuals: np.ndarray, actions: np.ndarray, left: int, bounds: np.ndarray, cfg) -> tuple:
    """Which actions (B, L), played on residuals (B, S1, S2, S3), pass every exact test; and the residuals after.

    ``left``: the steps left after the move; ``bounds``: the largest term size allowed (ordered games).
    Tests: the order (ordered games), the entry bound of ``order_admissible``, and ``can_finish``
    where a flattening rank can exceed ``left``.
    """
    u, v, w = split(np.asarray(actions).T, cfg.dims)
    res = residuals - np.einsum("ib,jb,kb->bijk", u, v, w)
    if cfg.field == "Z2":
        res %= 2
    ok = np.ones(len(res), bool)
    if cfg.ordered:
        sizes = term_sizes(actions, cfg.dims)
        ok &= (sizes <= bounds) & order_admissible(res, left, sizes)
    if left < max_lower_bound(cfg.dims):
        sel = np.flatnonzero(ok)
        if len(sel):
            ok[sel] = can_finish(res[sel], left, cfg.field)
    return ok, res


def dead_value(residual: np.ndarray, steps: int, cfg) -> float:
    """An upper bound on the return from a state that cannot finish within the step limit.

    Every remaining step costs −1 and the residual at the limit has rank at least (its largest
    flattening rank − the steps left), and at least 1 as it is not zero; the game charges a rank
    bound ≥ the rank. So no line from here returns more than this.
    """
    left = cfg.steps - steps
    lb = int(rank_lower_bounds(residual[None], cfg.field)[0])
    return -float(left) - float(max(1, lb - left))


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
    ROOT_BATCH = 256  # root rollouts per network batch (measured: 2.8 s for 256 on <2,2,2>, 16 candidates)

    def __init__(self, evaluate: Evaluator, cfg: MCTSConfig, canonical: bool = True,
                 rng: np.random.Generator | None = None, act_batch: BatchPolicy | None = None) -> None:
        self.evaluate, self.cfg, self.canonical = evaluate, cfg, canonical
        self.act_batch = act_batch  # batched rollouts (rollout_batch > 1); None: one evaluate call per move
        self.table: dict[bytes, Node] = {}
        self.qmin, self.qmax = math.inf, -math.inf
        self.rng = rng  # for the root's Dirichlet noise (none without a generator)
        self.solution: list[np.ndarray] | None = None  # the actions of a rollout that solved the game
        self.rollout_counts = (0, 0)  # (finished, played) of the last batch of rollouts
        self.solution_from: int | None = None  # the game step the solving rollout started from
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
        if self.cfg.prune:
            finish = rank_one_action(g.residual, g.cfg)
            if finish is not None and g.cfg.ordered and term_sizes(finish, g.dims) > g.size_bound:
                finish = None  # out of order: the game cannot end with this term
            if finish is not None:  # the exact endgame: one move ends the game, none does better
                return self._set_actions(node, [finish], np.ones(1), -1.0)
            if g.cfg.steps - g.steps == 1:  # one step left and the residual is not one term: dead
                return self._set_actions(node, [], np.zeros(0), dead_value(g.residual, g.steps, g.cfg))
        acts, value = self.evaluate(g, self.cfg.samples)
        counts: dict[bytes, list] = {}
        for a in acts:
            a = canonicalize(a, g.dims, g.cfg.field) if self.canonical else np.asarray(a, np.int64)
            if is_null(a, g.dims):
                continue  # a zero factor changes nothing and costs a step
            e = counts.setdefault(a.tobytes(), [a, 0])
            e[1] += 1
        kept = list(counts.values())
        left = g.cfg.steps - g.steps - 1  # steps left after the move
        if self.cfg.prune and kept and (g.cfg.ordered or left < max_lower_bound(g.dims)):
            A = np.stack([a for a, _ in kept])
            ok, _ = admissible(g.residual[None], A, left, np.full(len(A), g.size_bound), g.cfg)
            kept = [e for e, keep in zip(kept, ok) if keep]
            if not kept:
                # None of the samples can lead to a finished game: value the node as a dead one (it is
                # not proven dead: other actions may exist, and its rollouts sample afresh).
                value = min(value, dead_value(g.residual, g.steps, g.cfg))
        if not kept:  # every sample was null or pruned: keep the node a leaf with its value
            return self._set_actions(node, [], np.zeros(0), value)
        c = np.array([n for _, n in kept], dtype=np.float64)
        return self._set_actions(node, [a for a, _ in kept], c / c.sum(), value)

    @staticmethod
    def _set_actions(node: Node, actions: list, prior: np.ndarray, value: float) -> float:
        node.actions = actions
        node.prior = prior
        node.N = np.zeros(len(actions))
        node.W = np.zeros(len(actions))
        node.R = np.zeros(len(actions))
        node.children = [None] * len(actions)
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
        qn = self._norm(q)
        if self.cfg.first_play == "max":
            qn = np.where(node.N > 0, qn, 1.0)  # optimistic: every sampled action is tried once, by prior
        score = qn + self.cfg.c_puct * prior * math.sqrt(n_tot + 1) / (1 + node.N)
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
            # Rollouts also from a leaf none of whose samples survived pruning: it is not proven dead
            # (its rollouts sample afresh), and the endgame's dead leaves die at once in them.
            if self.cfg.rollouts:
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

        With pruning, a rollout plays the first of ``rollout_candidates`` policy samples that
        ``can_finish`` admits (where the constraint can bite), finishes a rank-one residual exactly,
        and stops when none is admissible, its return then the ``dead_value`` bound.
        """
        cfg, dims = game.cfg, game.dims
        prune = self.cfg.prune
        S = np.repeat(game.residual[None], n, 0)
        hist = [list(game.actions) for _ in range(n)]
        alive = np.ones(n, bool)
        ret = np.full(n, -np.inf)  # returns of the rollouts that stopped unfinished (pruned)
        step = game.steps
        maxflat = max_lower_bound(dims)
        bound = np.full(n, game.size_bound)  # the largest term size each rollout may play next (ordered)
        while step < cfg.steps and alive.any():
            idx = np.flatnonzero(alive)
            left = cfg.steps - step - 1
            temp = self.cfg.rollout_first_temperature if step == game.steps else 0.0
            finish = {}
            if prune:
                # The exact endgame: a residual that is one term in the set is finished by it; with no
                # step after this one, nothing else can finish.
                for j in np.flatnonzero(is_rank_one(S[idx], cfg.field)):
                    a = rank_one_action(S[idx[j]], cfg)
                    if a is not None and not (cfg.ordered and term_sizes(a, dims) > bound[idx[j]]):
                        finish[j] = a
            if prune and left == 0:
                ok = np.zeros(len(idx), bool)
                ok[list(finish)] = True
                acts = np.zeros((len(idx), sum(dims)), np.int64)
            elif prune and (cfg.ordered or left < maxflat):
                k = max(1, self.cfg.rollout_candidates)
                cand = self._sample(game, S[idx], [hist[i] for i in idx], step, k, temp)  # (len(idx)·k, L)
                adm, _ = admissible(np.repeat(S[idx], k, 0), cand, left, np.repeat(bound[idx], k), cfg)
                adm = adm.reshape(len(idx), k)
                ok = adm.any(1)
                acts = cand.reshape(len(idx), k, -1)[np.arange(len(idx)), np.argmax(adm, 1)]
            else:
                acts = self._sample(game, S[idx], [hist[i] for i in idx], step, 1, temp)
                ok = np.ones(len(idx), bool)
            for j, a in finish.items():
                acts[j], ok[j] = a, True
            if prune and not ok.all():
                for i in idx[~ok]:  # no admissible move: this rollout cannot finish in time
                    ret[i] = -float(step - game.steps) + dead_value(S[i], step, cfg)
                alive[idx[~ok]] = False
                idx, acts = idx[ok], acts[ok]
                if not len(idx):
                    break
            u, v, w = split(acts.T, dims)
            S[idx] -= np.einsum("ib,jb,kb->bijk", u, v, w)
            if cfg.field == "Z2":
                S[idx] %= 2
            for j, i in enumerate(idx):
                hist[i].append(acts[j])
            bound[idx] = term_sizes(acts, dims)
            step += 1
            alive[idx[~S[idx].reshape(len(idx), -1).any(1)]] = False
        solved = ~S.reshape(n, -1).any(1)
        self.rollout_counts = (int(solved.sum()), n)  # for measurements: how many of the batch finished
        if solved.any():
            i = min(np.flatnonzero(solved), key=lambda i: len(hist[i]))
            if self.solution is None or len(hist[i]) < len(self.solution):
                self.solution = list(hist[i])
                self.solution_from = game.steps  # the depth the finishing rollout started at
            return -float(len(hist[i]) - game.steps)
        # Unfinished: at the step limit, the best return has the smallest residual bound.
        pen = {}
        for i in np.flatnonzero(np.isinf(ret)):
            pen.setdefault(S[i].tobytes(), S[i])
        best = float(ret.max())
        if pen:
            bound = min(rank_upper_bound(r, cfg.field) for r in pen.values())
            best = max(best, -float(cfg.steps - game.steps) - float(bound))
        return best

    def _sample(self, game: TensorGame, S: np.ndarray, hists: list, step: int, k: int,
                temperature: float = 0.0) -> np.ndarray:
        """``k`` policy samples for each of the states ``S``, grouped by state: (len(S)·k, L).

        ``temperature`` (> 0) overrides the batch policy's own (the evaluator fallback ignores it)."""
        if self.act_batch is not None:
            kw = {"temperature": temperature} if temperature > 0 else {}
            out = self.act_batch(S, hists, step, **kw) if k == 1 else self.act_batch(S, hists, step, k, **kw)
            return np.asarray(out, np.int64)
        out = []
        for i in range(len(S)):
            a = np.asarray(self.evaluate(_state(game, S[i], hists[i]), k)[0], np.int64)
            out.append(np.resize(a, (k, a.shape[1])))  # exactly k per state (an evaluator may return more or fewer)
        return np.concatenate(out)

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
            self.solution_from = game.steps
        return g.total_reward - game.total_reward

    def search(self, root: Node, simulations: int | None = None) -> Node:
        if not root.expanded and not root.terminal:
            self.expand(root)
            if self.cfg.rollouts and self.cfg.root_rollouts > 0:
                left = self.cfg.root_rollouts
                while left > 0 and not (self.solution is not None and self.cfg.stop_on_solution):
                    self.rollouts(root.game, min(left, self.ROOT_BATCH))
                    left -= self.ROOT_BATCH
        if self.solution is not None and self.cfg.stop_on_solution:
            return root
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
