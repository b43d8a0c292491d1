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
from search.rl.game import canonicalize, is_null, outer, split


@dataclass
class Sample:
    residual: np.ndarray  # int8 (S1, S2, S3)
    history: list  # previous actions, oldest first
    step: int
    actions: np.ndarray  # (k, L) policy-target actions
    weights: np.ndarray  # (k,) summing to 1
    value: float  # return from this position (sum of the remaining rewards)


def random_action(cfg: GameConfig, rng: np.random.Generator, p_zero: float) -> np.ndarray:
    """A non-null action: each coefficient 0 with probability ``p_zero``, else uniform on the others."""
    nz = np.array([c for c in cfg.coefficients if c != 0])
    # ±1 twice as likely as ±2: small coefficients dominate known algorithms.
    w = 1.0 / np.abs(nz)
    w /= w.sum()
    while True:
        a = np.where(rng.random(sum(cfg.dims)) < p_zero, 0, rng.choice(nz, size=sum(cfg.dims), p=w))
        if not is_null(a, cfg.dims):
            return a.astype(np.int64)


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


def synthetic_demo(cfg: GameConfig, tcfg: TrainConfig, rng: np.random.Generator) -> list[Sample]:
    """A random factorization → its target tensor → the positions of decomposing it."""
    R = int(rng.integers(1, (tcfg.demo_max_rank or cfg.steps) + 1))
    acts = [random_action(cfg, rng, tcfg.demo_zero_probability) for _ in range(R)]
    t = sum(outer(*split(a, cfg.dims)) for a in acts)
    if cfg.field == "Z2":
        t = np.mod(t, 2)
    return trajectory_samples(cfg, t, acts, canonical=tcfg.canonicalize)


def signed_permutation(d: int, rng: np.random.Generator, signed: bool) -> np.ndarray:
    P = np.zeros((d, d), np.int64)
    P[np.arange(d), rng.permutation(d)] = rng.choice([-1, 1], size=d) if signed else 1
    return P


def augment(sample: Sample, cfg: GameConfig, rng: np.random.Generator, canonical: bool = True) -> Sample:
    """A random signed permutation of the three modes applied to the whole sample."""
    P1, P2, P3 = (signed_permutation(d, rng, cfg.field != "Z2") for d in cfg.dims)

    def act(a: np.ndarray) -> np.ndarray:
        u, v, w = split(a, cfg.dims)
        b = np.concatenate([P1 @ u, P2 @ v, P3 @ w])
        return canonicalize(b, cfg.dims, cfg.field) if canonical else b

    res = np.einsum("ai,bj,ck,ijk->abc", P1, P2, P3, sample.residual.astype(np.int64))
    if cfg.field == "Z2":
        res = np.mod(res, 2)
    return Sample(res.astype(np.int8), [act(a) for a in sample.history], sample.step,
                  np.stack([act(a) for a in sample.actions]), sample.weights, sample.value)
