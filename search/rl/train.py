"""The learner: replay buffer, best-game retraining, synthetic demonstrations, augmentations, losses.

Loss = cross-entropy of the autoregressive policy on the target actions (teacher forced; MCTS
visit fractions weight the sampled actions of a self-play position) + quantile-Huber loss of the
value head on the return (in units of the step limit).
"""

from __future__ import annotations

import io
from collections import deque

import numpy as np
import torch

from search.rl.config import RunConfig
from search.rl.data import (Batch, Sample, augment, batch_from_samples, concat_batches, order_terms,
                            synthetic_batch, trajectory_samples)
from search.rl.network import AlphaTensorNet, quantile_loss
from search.rl.selfplay import GameRecord


class Learner:
    BEST_GAMES = 16  # games kept for retraining on the best

    def __init__(self, cfg: RunConfig, net: AlphaTensorNet | None = None) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.net = net or AlphaTensorNet(cfg.game, cfg.net)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.train.lr, weight_decay=1e-4, foreach=True)
        self.rng = np.random.default_rng([cfg.seed, 1])
        self.buffer: deque[Sample] = deque(maxlen=cfg.train.buffer_size)
        self.best: list[tuple[float, int, list[Sample]]] = []  # (return, tiebreak, samples), best first
        self.steps = 0
        self._tiebreak = 0

    # -- data ---------------------------------------------------------------------------------------
    def add_game(self, rec: GameRecord) -> None:
        t = self.cfg.train
        self.buffer.extend(rec.samples)
        if rec.solved and t.reorder and len(rec.actions) > 1:
            # Any order of a factorization's terms is a valid game: replay it in a random order.
            acts = np.stack(rec.actions)[self.rng.permutation(len(rec.actions))]
            if self.cfg.game.ordered:  # ties only: the order of sizes is the game's rule
                acts = order_terms(acts, self.cfg.game.dims, self.rng)
            self.buffer.extend(trajectory_samples(self.cfg.game, rec.start, list(acts), canonical=t.canonicalize))
        if t.retrain_best and rec.samples:
            self._tiebreak += 1
            self.best.append((rec.total_reward, self._tiebreak, rec.samples))
            self.best.sort(key=lambda x: (-x[0], x[1]))
            del self.best[self.BEST_GAMES:]

    def make_batch(self) -> Batch:
        t, g, rng = self.cfg.train, self.cfg.game, self.rng
        B = t.batch_size
        have_games = t.self_play and len(self.buffer) > 0
        n_syn = (int(B * t.synthetic_fraction) if have_games else B) if t.synthetic else 0
        n_best = int(B * t.best_fraction) if (t.retrain_best and self.best and have_games) else 0
        n_buf = B - n_syn - n_best if have_games else 0
        played = []
        for _ in range(n_best):
            s = self.best[int(rng.integers(len(self.best)))][2]
            played.append(s[int(rng.integers(len(s)))])
        for i in rng.integers(len(self.buffer), size=n_buf) if n_buf else []:
            played.append(self.buffer[int(i)])
        if t.signed_permutations:
            # Synthetic positions need no augmentation: their terms have i.i.d. coefficients with a
            # sign-symmetric law, so a signed permutation leaves their distribution unchanged.
            played = [augment(s, g, rng, t.canonicalize) for s in played]
        parts = [synthetic_batch(g, t, rng, n_syn)] if n_syn else []
        if played:
            parts.append(batch_from_samples(played, g))
        return concat_batches(parts) if parts else None

    # -- optimisation -------------------------------------------------------------------------------
    def loss(self, batch: Batch | list) -> tuple[torch.Tensor, dict]:
        net = self.net
        if isinstance(batch, list):
            batch = batch_from_samples(batch, self.cfg.game)
        x, step = net.encode_batch(batch.residual, batch.history, batch.step)
        w = torch.from_numpy(batch.weights).float()
        mem, q, _ = net(x, step)
        toks = net.tokens(batch.actions)
        logits = net.policy.logits(toks, mem[torch.from_numpy(batch.owner)])
        logp = torch.log_softmax(logits, -1).gather(-1, toks[..., None]).squeeze(-1).sum(-1)
        pol = -(w * logp).sum() / len(batch)
        target = torch.from_numpy(batch.value).float() / self.cfg.game.steps
        val = quantile_loss(q, target, net.taus)
        return pol + val, {"policy_loss": float(pol.detach()), "value_loss": float(val.detach())}

    def train_step(self) -> dict:
        batch = self.make_batch()
        if batch is None or not len(batch):
            return {}
        self.net.train()
        loss, info = self.loss(batch)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.net.eval()
        self.steps += 1
        return info

    # -- weights and checkpoints ----------------------------------------------------------------------
    def weights(self) -> bytes:
        buf = io.BytesIO()
        torch.save(self.net.state_dict(), buf)
        return buf.getvalue()

    def state(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "steps": self.steps,
                "rng": self.rng.bit_generator.state}

    def load_state(self, st: dict) -> None:
        self.net.load_state_dict(st["net"])
        self.opt.load_state_dict(st["opt"])
        self.steps = st["steps"]
        self.rng.bit_generator.state = st["rng"]


def net_from_weights(cfg: RunConfig, weights: bytes) -> AlphaTensorNet:
    net = AlphaTensorNet(cfg.game, cfg.net)
    net.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    net.eval()
    return net
