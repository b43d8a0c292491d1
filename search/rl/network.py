"""The network: an attentive torso over the three grids, an autoregressive policy head, a quantile value head.

Torso (AlphaTensor's "attentive modes"): the state (the residual and the last ``history`` actions as
rank-one tensors, (h+1) channels of an S1×S2×S3 tensor) is read as three grids, X1[i,j] (fibres
over k), X2[j,k] (fibres over i) and X3[k,i] (fibres over j), each cell a d-dim embedding plus the
step count. An attentive-mode block attends, for every shared index, over the concatenation of the
two grids' lines through it (X1[:,j] ⧺ X2[j,:], X2[:,k] ⧺ X3[k,:], X3[:,i] ⧺ X1[i,:]). The output
is the S1S2 + S2S3 + S3S1 cell embeddings.

Policy head: a causal transformer decoder over the action's coefficient tokens (u, then v, then w),
cross-attending to the torso; teacher-forced in training, sampled token by token at inference.

Value head: quantiles of the return (in units of the step limit); the risk-seeking readout is the
mean of the quantiles above ``risk_quantile``, because the search wants the best outcome, not the
average one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from search.rl.config import GameConfig, NetConfig
from search.rl.game import outer, split


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


def _pair(block: _Block, P: torch.Tensor, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P (B,a,b,d) and Q (B,b,c,d) share index b: attend over P[:, :, j] ⧺ Q[:, j, :] for every j."""
    B, a, b, d = P.shape
    c = Q.shape[2]
    seq = torch.cat([P.transpose(1, 2), Q], dim=2).reshape(B * b, a + c, d)
    seq = block(seq).reshape(B, b, a + c, d)
    return seq[:, :, :a].transpose(1, 2), seq[:, :, a:]


class Torso(nn.Module):
    def __init__(self, dims: tuple[int, int, int], history: int, cfg: NetConfig) -> None:
        super().__init__()
        S1, S2, S3 = dims
        C, d = history + 1, cfg.d_model
        self.dims, self.C = dims, C
        self.proj = nn.ModuleList([nn.Linear(C * S3, d), nn.Linear(C * S1, d), nn.Linear(C * S2, d)])
        self.pos = nn.ParameterList([nn.Parameter(torch.randn(S1, S2, d) * 0.02),
                                     nn.Parameter(torch.randn(S2, S3, d) * 0.02),
                                     nn.Parameter(torch.randn(S3, S1, d) * 0.02)])
        self.step = nn.Linear(1, d)
        self.blocks = nn.ModuleList([nn.ModuleList([_Block(d, cfg.heads, cfg.dropout) for _ in range(3)])
                                     for _ in range(cfg.torso_layers)])
        self.ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """x (B, C, S1, S2, S3), step (B,) in [0, 1] → (B, S1S2+S2S3+S3S1, d)."""
        B = x.shape[0]
        S1, S2, S3 = self.dims
        C = self.C
        s = self.step(step.view(B, 1)).view(B, 1, 1, -1)
        X1 = self.proj[0](x.permute(0, 2, 3, 1, 4).reshape(B, S1, S2, C * S3)) + self.pos[0] + s
        X2 = self.proj[1](x.permute(0, 3, 4, 1, 2).reshape(B, S2, S3, C * S1)) + self.pos[1] + s
        X3 = self.proj[2](x.permute(0, 4, 2, 1, 3).reshape(B, S3, S1, C * S2)) + self.pos[2] + s
        for b12, b23, b31 in self.blocks:
            X1, X2 = _pair(b12, X1, X2)
            X2, X3 = _pair(b23, X2, X3)
            X3, X1 = _pair(b31, X3, X1)
        out = torch.cat([X1.reshape(B, S1 * S2, -1), X2.reshape(B, S2 * S3, -1), X3.reshape(B, S3 * S1, -1)], 1)
        return self.ln(out)


class PolicyHead(nn.Module):
    def __init__(self, length: int, vocab: int, cfg: NetConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.length, self.vocab = length, vocab
        self.tok = nn.Embedding(vocab + 1, d)  # index ``vocab`` is the start token
        self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
        layer = nn.TransformerDecoderLayer(d, cfg.heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True)
        self.dec = nn.TransformerDecoder(layer, cfg.policy_layers)
        self.out = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def _run(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        h = self.tok(tokens) + self.pos[:t]
        return self.out(self.dec(h, memory, tgt_mask=self.mask[:t, :t], tgt_is_causal=True))

    def logits(self, actions: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: actions (B, L) token indices → logits (B, L, vocab)."""
        start = torch.full((actions.shape[0], 1), self.vocab, dtype=torch.long, device=actions.device)
        return self._run(torch.cat([start, actions[:, :-1]], 1), memory)

    @torch.no_grad()
    def sample(self, memory: torch.Tensor, k: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """memory (1, M, d) → k sampled token sequences (k, L)."""
        mem = memory.expand(k, -1, -1)
        toks = torch.full((k, 1), self.vocab, dtype=torch.long, device=memory.device)
        for _ in range(self.length):
            logit = self._run(toks, mem)[:, -1] / max(temperature, 1e-6)
            nxt = torch.multinomial(torch.softmax(logit, -1), 1, generator=generator)
            toks = torch.cat([toks, nxt], 1)
        return toks[:, 1:]


class AlphaTensorNet(nn.Module):
    def __init__(self, game: GameConfig, cfg: NetConfig) -> None:
        super().__init__()
        self.game, self.cfg = game, cfg
        self.dims = game.dims
        self.coeffs = np.array(game.coefficients, dtype=np.int64)
        nc = len(self.coeffs)
        self.chunk = cfg.chunk or max(c for c in range(1, 9) if nc ** c <= 128)
        self.length = sum(self.dims)
        self.n_tokens = -(-self.length // self.chunk)
        self._lut = np.full(int(self.coeffs.max() - self.coeffs.min()) + 1, -1, np.int64)
        self._lut[self.coeffs - self.coeffs.min()] = np.arange(nc)
        self._zero = int(self._lut[-self.coeffs.min()])  # padding coefficient: 0
        self._place = nc ** np.arange(self.chunk)  # token = Σ index_i · |F|^i over the chunk
        self.torso = Torso(self.dims, game.history, cfg)
        self.policy = PolicyHead(self.n_tokens, nc ** self.chunk, cfg)
        d = cfg.d_model
        self.value = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.quantiles))
        # Quantile levels τ_i = (i + ½)/Q (the midpoints), as in quantile regression.
        self.register_buffer("taus", (torch.arange(cfg.quantiles) + 0.5) / cfg.quantiles, persistent=False)

    # -- encoding ---------------------------------------------------------------------------------
    def tokens(self, actions: np.ndarray) -> torch.Tensor:
        """Coefficient vectors (B, L) → token indices (B, n_tokens)."""
        a = np.asarray(actions, dtype=np.int64).reshape(-1, self.length)
        off = a - self.coeffs.min()
        if a.size and (off.min() < 0 or off.max() >= len(self._lut) or (self._lut[off] < 0).any()):
            raise ValueError(f"coefficients outside {tuple(self.coeffs)} in an action")
        idx = np.full((a.shape[0], self.n_tokens * self.chunk), self._zero, np.int64)
        idx[:, :self.length] = self._lut[a - self.coeffs.min()]
        return torch.from_numpy(idx.reshape(len(a), self.n_tokens, self.chunk) @ self._place)

    def values_of(self, tokens: torch.Tensor) -> np.ndarray:
        """Token indices (B, n_tokens) → coefficient vectors (B, L)."""
        t = tokens.cpu().numpy()[..., None] // self._place % len(self.coeffs)
        return self.coeffs[t.reshape(len(t), -1)[:, :self.length]]

    def encode(self, residual: np.ndarray, history: list[np.ndarray], step: int) -> tuple[np.ndarray, float]:
        """(C, S1, S2, S3) float32 features and the normalised step count."""
        h = self.game.history
        x = np.zeros((h + 1, *self.dims), np.float32)
        x[0] = residual
        for i, a in enumerate(reversed(history[-h:] if h else [])):
            x[i + 1] = outer(*split(a, self.dims))
        return x, step / self.game.steps

    def encode_batch(self, residual: np.ndarray, history: np.ndarray, step: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode`` for a batch: residuals (B, S1, S2, S3), histories (B, h, L) oldest first → (x, step)."""
        h = self.game.history
        B = len(residual)
        x = np.zeros((B, h + 1, *self.dims), np.float32)
        x[:, 0] = residual
        if h:
            u, v, w = split(np.moveaxis(history[:, ::-1], 2, 0), self.dims)  # most recent first
            x[:, 1:] = np.einsum("ibh,jbh,kbh->bhijk", u, v, w)
        return torch.from_numpy(x), torch.from_numpy(np.asarray(step, np.float32) / self.game.steps)

    def forward(self, x: torch.Tensor, step: torch.Tensor, actions: torch.Tensor | None = None):
        mem = self.torso(x, step)
        q = self.value(mem.mean(1))
        return mem, q, (self.policy.logits(actions, mem) if actions is not None else None)

    def readout(self, q: torch.Tensor) -> torch.Tensor:
        """Risk-seeking value: mean of the quantiles above ``risk_quantile``, in return units."""
        lo = min(int(self.cfg.risk_quantile * self.cfg.quantiles), self.cfg.quantiles - 1)
        return q.sort(-1).values[..., lo:].mean(-1) * self.game.steps

    @torch.no_grad()
    def evaluate(self, residual: np.ndarray, history: list[np.ndarray], step: int, k: int,
                 temperature: float = 1.0, generator: torch.Generator | None = None) -> tuple[np.ndarray, float]:
        """K sampled actions (k, L) as coefficient values, and the risk-seeking value of the state."""
        x, s = self.encode(residual, history, step)
        mem, q, _ = self.forward(torch.from_numpy(x)[None], torch.tensor([s], dtype=torch.float32))
        toks = self.policy.sample(mem, k, temperature, generator)
        return self.values_of(toks), float(self.readout(q)[0])


    @torch.no_grad()
    def act_batch(self, residuals: np.ndarray, histories: list[list[np.ndarray]], step: int,
                  temperature: float = 1.0, generator: torch.Generator | None = None, k: int = 1) -> np.ndarray:
        """``k`` sampled actions per state for a batch of states at the same step: (B·k, L), grouped by state.

        Batched rollouts use this: one torso pass and ``n_tokens`` decoder passes for B states, instead
        of B separate ``evaluate`` calls (the per-call overhead dominates at these sizes).
        """
        feats = [self.encode(r, h, step)[0] for r, h in zip(residuals, histories)]
        x = torch.from_numpy(np.stack(feats))
        mem = self.torso(x, torch.full((len(feats),), step / self.game.steps, dtype=torch.float32))
        if k > 1:
            mem = mem.repeat_interleave(k, 0)
        toks = torch.full((len(mem), 1), self.policy.vocab, dtype=torch.long)
        for _ in range(self.policy.length):
            logit = self.policy._run(toks, mem)[:, -1] / max(temperature, 1e-6)
            toks = torch.cat([toks, torch.multinomial(torch.softmax(logit, -1), 1, generator=generator)], 1)
        return self.values_of(toks[:, 1:])


def quantile_loss(q: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """Quantile Huber loss of predictions q (B, Q) against scalar targets (B,)."""
    u = target[:, None] - q
    huber = torch.where(u.abs() <= kappa, 0.5 * u ** 2, kappa * (u.abs() - 0.5 * kappa))
    return ((taus - (u < 0).float()).abs() * huber / kappa).sum(-1).mean()
