"""Reward plugins: the shared contract of search/rewards.py (higher is better)."""

from __future__ import annotations

import time

import pytest

from compiler.algebra.factors import Factorization, naive
from compiler.algebra.library import library_algorithm
from search.rewards import (AdditionsReward, Combined, RankReward, Reward, RewardError, RuntimeConfig,
                            RuntimeReward, load_reward)

torch = pytest.importorskip("torch")

STRASSEN = library_algorithm("strassen")


def test_rank_reward_is_minus_rank():
    r = load_reward("rank")
    assert isinstance(r, Reward) and r.name == "rank"
    assert r(STRASSEN) == -7.0
    assert r(naive(2, 2, 2)) == -8.0


def test_user_plugin_by_dotted_path():
    r = load_reward("_reward_plugins:NnzReward", scale=2.0)
    assert r.name == "nnz"
    assert r(naive(2, 2, 2)) == -2.0 * 24


def test_unknown_reward_is_a_clear_error():
    with pytest.raises(RewardError, match="unknown reward"):
        load_reward("no-such-reward")
    with pytest.raises(RewardError, match="cannot load"):
        load_reward("no_such_module_xyz:Thing")


def test_combined_form_r_plus_lambda_b():
    r = load_reward("rank+0.5*_reward_plugins:NnzReward")
    assert isinstance(r, Combined)
    assert r(STRASSEN) == -7.0 + 0.5 * -float(sum(STRASSEN.nnz))


def test_additions_reward_uses_compiler_cse_or_says_why():
    r = load_reward("additions")
    try:
        import compiler.ir.cse  # noqa: F401
    except ImportError:
        with pytest.raises(RewardError, match="compiler.ir.cse"):
            r(STRASSEN)
        return
    # Known counts (published): Strassen 18 additions, Winograd's variant 15 (with its shared
    # sums, which the CSE must find), the naive <2,2,2> 4 (one per output entry).
    assert r(STRASSEN) == -18.0
    assert r(library_algorithm("winograd")) == -15.0
    assert r(naive(2, 2, 2)) == -4.0


def test_additions_reward_uses_the_compilers_count():
    # the reward is the compiler's public cost model, not a guessed name: Strassen, one level,
    # after CSE (compiler.build's additions_cse column)
    from compiler.ir.cse import additions_after_cse
    n = additions_after_cse(STRASSEN)
    assert 0 < n <= 18  # 18 additions without CSE
    assert AdditionsReward()(STRASSEN) == -float(n)


# Small size and few repeats: these tests check the process isolation, not the speed.
FAST = dict(size=32, repeats=2, warmup=1)


def test_runtime_reward_measures_reference_backend(tmp_path):
    r = RuntimeReward(RuntimeConfig(backend="reference", **FAST), timeout_s=120,
                      cache_path=str(tmp_path / "cache.json"))
    v = r(STRASSEN)
    assert v < 0 and v != r.failure_reward, r.last_error
    t0 = time.perf_counter()
    assert r(STRASSEN) == v  # cached by digest: no second child
    assert time.perf_counter() - t0 < 0.5
    r2 = RuntimeReward(RuntimeConfig(backend="reference", **FAST), cache_path=str(tmp_path / "cache.json"))
    assert r2(STRASSEN) == v  # persisted


@pytest.mark.parametrize("backend, why", [
    ("_reward_plugins:crashing_backend", "exited"),
    ("_reward_plugins:wrong_backend", "wrong product"),
])
def test_runtime_reward_survives_crashing_kernel(backend, why):
    r = RuntimeReward(RuntimeConfig(backend=backend, **FAST), timeout_s=120, failure_reward=-99.0)
    assert r(STRASSEN) == -99.0
    assert why in r.last_error


def test_runtime_reward_survives_hanging_kernel():
    r = RuntimeReward(RuntimeConfig(backend="_reward_plugins:hanging_backend", **FAST), timeout_s=8,
                      failure_reward=-99.0)
    t0 = time.perf_counter()
    assert r(STRASSEN) == -99.0
    assert "timed out" in r.last_error
    assert time.perf_counter() - t0 < 30


def test_runtime_reward_with_the_compilers_torch_backend():
    r = RuntimeReward(RuntimeConfig(backend="torch", **FAST), timeout_s=120)
    v = r(STRASSEN)
    assert v < 0 and v != r.failure_reward, r.last_error


def test_load_runtime_with_options():
    r = load_reward("runtime", size=64, backend="reference", timeout_s=5.0)
    assert isinstance(r, RuntimeReward) and r.config.size == 64 and r.timeout_s == 5.0


def test_mod2_factorization_rejected_by_runtime():
    f = Factorization((1, 1, 1), [[1]], [[1]], [[1]], field="Z2")
    r = RuntimeReward(RuntimeConfig(**FAST), timeout_s=60, failure_reward=-99.0)
    assert r(f) == -99.0 and "modulo 2" in r.last_error  # refused without spawning a child
