"""Network shapes, token round trips, the teacher-forced policy and the risk-seeking readout."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from compiler.algebra.factors import matmul_tensor  # noqa: E402
from search.rl.config import GameConfig, NetConfig  # noqa: E402
from search.rl.network import AlphaTensorNet, quantile_loss  # noqa: E402

@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets run fastest on one thread; on a shared 2-core machine two threads thrash (107 s vs ~5 s)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = NetConfig(d_model=16, heads=2, torso_layers=1, policy_layers=1, quantiles=4)

CASES = [  # (shape, field, coefficients, chunk): square, rectangular, mod 2, one-coefficient tokens
    ((2, 2, 2), "Z", (-2, -1, 0, 1, 2), 0),
    ((2, 2, 3), "Z", (-1, 0, 1), 0),
    ((1, 2, 3), "Z2", (0, 1), 0),
    ((2, 3, 2), "Z", (-2, -1, 0, 1, 2), 1),
]


@pytest.mark.parametrize("shape, field, coeffs, chunk", CASES)
def test_shapes_and_token_round_trip(shape, field, coeffs, chunk):
    torch.manual_seed(0)
    g = GameConfig(shape=shape, field=field, coefficients=coeffs, history=2)
    net = AlphaTensorNet(g, NetConfig(**{**TINY.__dict__, "chunk": chunk}))
    S1, S2, S3 = g.dims
    L = S1 + S2 + S3
    rng = np.random.default_rng(0)
    acts = rng.choice(coeffs, size=(7, L))
    toks = net.tokens(acts)
    assert toks.shape == (7, net.n_tokens) and int(toks.max()) < len(coeffs) ** net.chunk
    assert np.array_equal(net.values_of(toks), acts)
    x = torch.randn(3, 3, S1, S2, S3)
    mem, q, logits = net(x, torch.rand(3), toks[:3])
    assert mem.shape == (3, S1 * S2 + S2 * S3 + S3 * S1, TINY.d_model)
    assert q.shape == (3, TINY.quantiles)
    assert logits.shape == (3, net.n_tokens, len(coeffs) ** net.chunk)
    sampled, value = net.evaluate(matmul_tensor(*shape) % 2, [acts[0]], 1, k=5)
    assert sampled.shape == (5, L) and set(np.unique(sampled).tolist()) <= set(coeffs)
    assert np.isfinite(value)


def test_policy_is_causal_teacher_forcing_matches_prefix():
    """Changing a later token must not change the logits of earlier positions."""
    torch.manual_seed(0)
    net = AlphaTensorNet(GameConfig(shape=(2, 2, 2)), NetConfig(**{**TINY.__dict__, "chunk": 1})).eval()
    mem = torch.randn(1, 48, TINY.d_model)
    a = torch.randint(0, 5, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % 5
    la, lb = net.policy.logits(a, mem), net.policy.logits(b, mem)
    # The same float ops on the same inputs: equal up to reassociation noise (1e-5 ≫ fp32 eps·depth).
    assert torch.allclose(la[0, :8], lb[0, :8], atol=1e-5)
    assert not torch.allclose(la[0, 8:], lb[0, 8:], atol=1e-5)


def test_supervised_learning_fits_one_demonstration():
    """A few dozen Adam steps on one (state, action) pair make that action the most likely sample."""
    torch.manual_seed(0)
    g = GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1))
    net = AlphaTensorNet(g, TINY)
    target = np.array([1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1])  # Strassen's first product
    x, s = net.encode(matmul_tensor(2, 2, 2), [], 0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(30):
        mem, q, logits = net(torch.from_numpy(x)[None], torch.tensor([s]), net.tokens(target[None]))
        loss = torch.nn.functional.cross_entropy(logits[0], net.tokens(target[None])[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    sampled, _ = net.evaluate(matmul_tensor(2, 2, 2), [], 0, k=20, temperature=0.3)
    hits = sum(np.array_equal(a, target) for a in sampled)
    assert hits >= 15, hits


def test_risk_seeking_readout_and_quantile_loss():
    net = AlphaTensorNet(GameConfig(shape=(2, 2, 2)), NetConfig(**{**TINY.__dict__, "risk_quantile": 0.75}))
    q = torch.tensor([[-4.0, -3.0, -2.0, -1.0]])
    assert float(net.readout(q)) == pytest.approx(-1.0 * 8)  # the top quantile, in units of the step limit
    taus = net.taus
    # A perfect, constant prediction has zero loss; a biased one does not.
    assert float(quantile_loss(torch.full((2, 4), -1.0), torch.tensor([-1.0, -1.0]), taus)) == 0.0
    assert float(quantile_loss(torch.zeros(2, 4), torch.tensor([-1.0, -1.0]), taus)) > 0.1


def test_act_batch_samples_one_valid_action_per_state():
    import torch
    torch.set_num_threads(1)
    game = GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1))
    net = AlphaTensorNet(game, NetConfig(d_model=16, heads=2, torso_layers=1, policy_layers=1))
    net.eval()
    from compiler.algebra.factors import matmul_tensor
    S = np.repeat(matmul_tensor(2, 2, 2)[None], 5, 0)
    acts = net.act_batch(S, [[] for _ in range(5)], 0, 1.0, torch.Generator().manual_seed(0))
    assert acts.shape == (5, 12) and set(np.unique(acts).tolist()) <= {-1, 0, 1}


def test_encode_batch_matches_encode_per_position():
    from search.rl.config import TrainConfig
    from search.rl.data import synthetic_batch
    g = GameConfig(shape=(2, 2, 3), coefficients=(-1, 0, 1), history=2)
    net = AlphaTensorNet(g, TINY)
    b = synthetic_batch(g, TrainConfig(demo_min_rank=3), np.random.default_rng(0), 40)
    x, step = net.encode_batch(b.residual, b.history, b.step)
    for i in range(40):
        past = [a for a in b.history[i] if a.any()]  # synthetic terms are never null: zero rows are padding
        xe, se = net.encode(b.residual[i], past, int(b.step[i]))
        assert np.array_equal(x[i].numpy(), xe) and float(step[i]) == pytest.approx(se)


def test_act_batch_with_k_samples_groups_them_by_state():
    g = GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1))
    net = AlphaTensorNet(g, TINY).eval()
    S = np.repeat(matmul_tensor(2, 2, 2)[None], 3, 0)
    acts = net.act_batch(S, [[] for _ in range(3)], 0, 1.0, torch.Generator().manual_seed(0), k=4)
    assert acts.shape == (12, 12) and set(np.unique(acts).tolist()) <= {-1, 0, 1}
