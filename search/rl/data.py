"""Training samples: synthetic demonstrations, self-play trajectories and their augmentations.

A ``Sample`` is one position: the residual, the previous actions, the step count, the policy
target (actions with weights: one demonstrated action, or MCTS visit fractions) and the return
from this position. Augmentations keep every sample exactly consistent: a signed permutation
(P₁, P₂, P₃) maps the residual to T ×₁ P₁ ×₂ P₂ ×₃ P₃ and each action (u, v, w) to
(P₁u, P₂v, P₃w), so the coefficients stay in the set and the remaining factorization stays one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.rl.config import GameConfig, TrainConfig
from search.rl.game import canonicalize, outer, split, term_sizes


@dataclass
class Sample:
    residual: np.ndarray  # int8 (S1, S2, S3)
    history: list  # previous actions, oldest first
    step: int
    actions: np.ndarray  # (k, L) policy-target actions
    weights: np.ndarray  # (k,) summing to 1
    value: float  # return from this position (sum of the remaining rewards)


def random_actions(cfg: GameConfig, rng: np.random.Generator, p_zero: float, k: int) -> np.ndarray:
    """``k`` non-null actions (k, L): each coefficient 0 with probability ``p_zero``, else a nonzero one."""
    nz = np.array([c for c in cfg.coefficients if c != 0])
    # ±1 twice as likely as ±2: small coefficients dominate known algorithms.
    w = 1.0 / np.abs(nz)
    w /= w.sum()
    L = sum(cfg.dims)
    out = np.zeros((0, L), np.int64)
    while len(out) < k:
        m = 2 * (k - len(out)) + 4
        a = np.where(rng.random((m, L)) < p_zero, 0, rng.choice(nz, size=(m, L), p=w)).astype(np.int64)
        a1, a2, _ = cfg.dims
        ok = a[:, :a1].any(1) & a[:, a1:a1 + a2].any(1) & a[:, a1 + a2:].any(1)
        out = np.concatenate([out, a[ok]])
    return out[:k]


def random_action(cfg: GameConfig, rng: np.random.Generator, p_zero: float) -> np.ndarray:
    return random_actions(cfg, rng, p_zero, 1)[0]


def order_terms(actions: np.ndarray, dims: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """The terms (R, L) in a random order of non-increasing size: a legal order of an ordered game."""
    a = np.asarray(actions)
    key = -term_sizes(a, dims) + rng.random(len(a))  # sizes are integers: the noise only breaks ties
    return a[np.argsort(key, kind="stable")]


def trajectory_samples(cfg: GameConfig, start: np.ndarray, actions: list[np.ndarray], final_penalty: float = 0.0,
                       canonical: bool = True) -> list[Sample]:
    """Positions of playing ``actions`` from ``start`` in order, each labelled with its next action."""
    out, s = [], start.copy()
    R = len(actions)
    for k, a in enumerate(actions):
        target = canonicalize(a, cfg.dims, cfg.field) if canonical else a
        out.append(Sample(s.astype(np.int8), list(actions[max(0, k - cfg.history):k]), k, target[None],
                          np.ones(1), -float(R - k) - final_penalty))
        s = s - outer(*split(a, cfg.dims))
        if cfg.field == "Z2":
            s = np.mod(s, 2)
    return out


def demo_rank(cfg: GameConfig, tcfg: TrainConfig, rng: np.random.Generator) -> int:
    """The number of terms of a synthetic demonstration: uniform in [demo_min_rank, demo_max_rank].

    The positions of a demo then cover every remaining rank up to R; a minimum near the target's
    rank (AlphaTensor: ranks around the target's) puts more of them where the game starts.
    """
    hi = tcfg.demo_max_rank or cfg.steps
    lo = min(max(1, tcfg.demo_min_rank), hi)
    return int(rng.integers(lo, hi + 1))


def synthetic_demo(cfg: GameConfig, tcfg: TrainConfig, rng: np.random.Generator) -> list[Sample]:
    """A random factorization → its target tensor → the positions of decomposing it."""
    R = demo_rank(cfg, tcfg, rng)
    acts = random_actions(cfg, rng, tcfg.demo_zero_probability, R)
    acts = list(order_terms(acts, cfg.dims, rng) if cfg.ordered else acts)
    t = np.einsum("ir,jr,kr->ijk", *split(np.stack(acts).T, cfg.dims))
    if cfg.field == "Z2":
        t = np.mod(t, 2)
    return trajectory_samples(cfg, t, acts, canonical=tcfg.canonicalize)


def synthetic_position(cfg: GameConfig, tcfg: TrainConfig, rng: np.random.Generator) -> Sample:
    """One position of a fresh synthetic demonstration (what a training batch draws)."""
    R = demo_rank(cfg, tcfg, rng)
    acts = random_actions(cfg, rng, tcfg.demo_zero_probability, R)
    if cfg.ordered:
        acts = order_terms(acts, cfg.dims, rng)
    k = int(rng.integers(R))
    u, v, w = split(acts[k:].T, cfg.dims)
    res = np.einsum("ir,jr,kr->ijk", u, v, w)
    if cfg.field == "Z2":
        res = np.mod(res, 2)
    if tcfg.demo_all_targets:
        # Every remaining term is a correct next move (the terms of a factorization commute), so the
        # policy target is uniform over them: R−k labels per position instead of one. In an ordered
        # game only the remaining terms of the largest size may come next.
        todo = acts[k:]
        if cfg.ordered:
            todo = todo[term_sizes(todo, cfg.dims) == term_sizes(todo, cfg.dims).max()]
    else:
        todo = acts[k:k + 1]
    targets = np.stack([canonicalize(a, cfg.dims, cfg.field) if tcfg.canonicalize else a for a in todo])
    targets = np.unique(targets, axis=0)
    return Sample(res.astype(np.int8), list(acts[max(0, k - cfg.history):k]), k, targets,
                  np.full(len(targets), 1.0 / len(targets)), -float(R - k))


def signed_permutation(d: int, rng: np.random.Generator, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(perm, signs): the matrix P with P[a, perm[a]] = signs[a], so (P x)[a] = signs[a]·x[perm[a]]."""
    return rng.permutation(d), (rng.choice([-1, 1], size=d) if signed else np.ones(d, np.int64))


def augment(sample: Sample, cfg: GameConfig, rng: np.random.Generator, canonical: bool = True) -> Sample:
    """A random signed permutation of the three modes applied to the whole sample.

    Signs only where the coefficient set is symmetric (−c in it for every c): over {0, 1} or Z2 a
    sign would leave the set, so plain permutations are used there.
    """
    signed = cfg.field != "Z2" and all(-c in cfg.coefficients for c in cfg.coefficients)
    (p1, s1), (p2, s2), (p3, s3) = (signed_permutation(d, rng, signed) for d in cfg.dims)
    a1, a2, _ = cfg.dims

    def act(a: np.ndarray) -> np.ndarray:
        u, v, w = split(a, cfg.dims)
        b = np.concatenate([s1 * u[p1], s2 * v[p2], s3 * w[p3]])
        return canonicalize(b, cfg.dims, cfg.field) if canonical else b

    # T ×₁ P₁ ×₂ P₂ ×₃ P₃ for signed permutations: gather and multiply by the signs.
    res = sample.residual[np.ix_(p1, p2, p3)] * (s1[:, None, None] * s2[None, :, None] * s3[None, None, :])
    if cfg.field == "Z2":
        res = np.mod(res, 2)
    return Sample(res.astype(np.int8), [act(a) for a in sample.history], sample.step,
                  np.stack([act(a) for a in sample.actions]), sample.weights, sample.value)


# -- batches as arrays: what the learner trains on ------------------------------------------------
@dataclass
class Batch:
    """Training positions as arrays (the vectorised form of a list of ``Sample``).

    ``history[b, i]`` is the i-th of the last ``h`` actions before position b, oldest first, zero rows
    where the game had fewer moves (a zero action shows as an all-zero history channel, as before).
    Policy targets are flattened: ``actions[j]`` belongs to position ``owner[j]`` with ``weights[j]``.
    """

    residual: np.ndarray  # (B, S1, S2, S3) int8
    history: np.ndarray  # (B, h, L) int64
    step: np.ndarray  # (B,) int64
    actions: np.ndarray  # (M, L) int64
    owner: np.ndarray  # (M,) int64
    weights: np.ndarray  # (M,) float64, summing to 1 per position
    value: np.ndarray  # (B,) float64

    def __len__(self) -> int:
        return len(self.residual)


def canonicalize_batch(actions: np.ndarray, dims: tuple[int, int, int], field: str = "Z") -> np.ndarray:
    """``canonicalize`` of every row of (M, L): the first nonzeros of u and v made positive."""
    a = np.array(actions, dtype=np.int64)
    if field == "Z2":
        return a % 2
    if not len(a) or a.min() >= 0:
        return a
    s1, s2, _ = dims
    rows = np.arange(len(a))
    for lo, hi in ((0, s1), (s1, s1 + s2)):
        x = a[:, lo:hi]
        first = x[rows, np.argmax(x != 0, 1)]  # 0 for a null factor: nothing to flip
        flip = first < 0
        a[flip, lo:hi] *= -1
        a[flip, s1 + s2:] *= -1
    return a


def synthetic_batch(cfg: GameConfig, tcfg: TrainConfig, rng: np.random.Generator, n: int) -> Batch:
    """``n`` positions of fresh synthetic demonstrations at once (``synthetic_position``, vectorised).

    Each position: a rank R drawn by ``demo_rank``'s rule, R random non-null terms, a cut k uniform
    in [0, R); the residual is the sum of terms k..R−1, the history the terms before k, the targets
    the remaining terms (or term k alone), the value −(R − k). Per-sample Python took 1 ms a
    position (33 ms of a 130 ms train step at batch 32); this is one numpy pass for the batch.
    """
    hi = tcfg.demo_max_rank or cfg.steps
    lo = min(max(1, tcfg.demo_min_rank), hi)
    R = rng.integers(lo, hi + 1, size=n)
    k = np.floor(rng.random(n) * R).astype(np.int64)
    L = sum(cfg.dims)
    acts = random_actions(cfg, rng, tcfg.demo_zero_probability, n * hi).reshape(n, hi, L)
    j = np.arange(hi)[None, :]
    if cfg.ordered:  # each demo's R terms in a random order of non-increasing size (padding last)
        key = np.where(j < R[:, None], -term_sizes(acts, cfg.dims) + rng.random((n, hi)), np.inf)
        acts = np.take_along_axis(acts, np.argsort(key, 1, kind="stable")[:, :, None], 1)
    live = (j >= k[:, None]) & (j < R[:, None])  # the terms still to play
    u, v, w = split(np.moveaxis(acts, 2, 0), cfg.dims)  # each (S, n, hi)
    res = np.einsum("ibr,jbr,kbr->bijk", u * live[None], v, w)
    if cfg.field == "Z2":
        res = np.mod(res, 2)
    h = cfg.history
    hist = np.zeros((n, h, L), np.int64)
    for i in range(h):  # slot i holds term k − h + i (oldest first)
        t = k - h + i
        ok = t >= 0
        hist[ok, i] = acts[ok, t[ok]]
    tgt = live if tcfg.demo_all_targets else (j == k[:, None])
    if cfg.ordered and tcfg.demo_all_targets:  # only the largest remaining terms may come next
        sz = np.where(live, term_sizes(acts, cfg.dims), -1)
        tgt = live & (sz == sz.max(1, keepdims=True))
    owner, term = np.nonzero(tgt)
    targets = acts[owner, term]
    if tcfg.canonicalize:
        targets = canonicalize_batch(targets, cfg.dims, cfg.field)
    counts = tgt.sum(1)
    return Batch(res.astype(np.int8), hist, k, targets, owner, 1.0 / counts[owner], -(R - k).astype(np.float64))


def batch_from_samples(samples: list, cfg: GameConfig) -> Batch:
    """A list of ``Sample`` as a ``Batch``."""
    L, h = sum(cfg.dims), cfg.history
    hist = np.zeros((len(samples), h, L), np.int64)
    for b, s in enumerate(samples):
        last = s.history[-h:] if h else []
        for i, a in enumerate(last):
            hist[b, h - len(last) + i] = a
    owner = np.concatenate([np.full(len(s.actions), b) for b, s in enumerate(samples)]).astype(np.int64)
    return Batch(np.stack([s.residual for s in samples]).astype(np.int8), hist,
                 np.array([s.step for s in samples], np.int64),
                 np.concatenate([np.asarray(s.actions, np.int64) for s in samples]), owner,
                 np.concatenate([np.asarray(s.weights, np.float64) for s in samples]),
                 np.array([s.value for s in samples], np.float64))


def concat_batches(parts: list) -> Batch:
    parts = [p for p in parts if len(p)]
    off = np.cumsum([0] + [len(p) for p in parts[:-1]])
    return Batch(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("residual", "history", "step", "actions")),
                 np.concatenate([p.owner + o for p, o in zip(parts, off)]),
                 np.concatenate([p.weights for p in parts]), np.concatenate([p.value for p in parts]))
