"""The planner: candidates, cost model, accuracy bound, fast reject, explain, tune and autotune."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import pytest
import torch

import fastmm
from compiler.algebra.factors import naive
from compiler.algebra.library import library_algorithm
from fastmm import backends, calibrate, cost, runtime
from fastmm.accuracy import error_growth, stability_factor, within_bound
from fastmm.cache import CacheKey, TuningCache
from fastmm.cost import DeviceCost
from fastmm.planner import DEFAULT_CONFIG, PlannerConfig, Problem, crossover, decide, rank
from fastmm.plans import TORCH_MATMUL, CombineTile, GemmTile, Plan, TileConfig

needs_compiler = pytest.mark.skipif(backends.unavailable_reason() is not None,
                                    reason=str(backends.unavailable_reason()))
CPU = torch.device("cpu")


def _problem(n, dtype=torch.float32, k=None, p=None):
    return Problem(n, k or n, p or n, 1, dtype, CPU, "highest", (k or n, 1), (p or n, 1))


def test_plan_is_typed_and_roundtrips():
    f = library_algorithm("strassen")
    plan = Plan(f.name, f.digest, 2, "streaming", "triton", TileConfig(CombineTile(16, 128, 4), GemmTile(64, 64, 32, 4, 3)), f)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan and again.key == plan.key and isinstance(again.tile, TileConfig)
    assert again.tile.gemm.block_k == 32 and "c16x128" in again.key
    no_tile = Plan(f.name, f.digest, 1, "materialized", "torch", factorization=f)
    assert Plan.from_dict(no_tile.to_dict()) == no_tile and no_tile.tile is None
    assert TORCH_MATMUL.is_vendor and TORCH_MATMUL.key == "torch.matmul"


@pytest.mark.parametrize("name,expected", [("strassen", 12), ("winograd", 18), ("laderman", 35)])
def test_stability_factor_exact(name, expected):
    assert stability_factor(library_algorithm(name)) == Fraction(expected)


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 3, 3), (2, 3, 4)])
def test_classical_algorithm_has_no_error_growth(shape):
    assert error_growth(naive(*shape), 3) == 1.0


@pytest.mark.parametrize("dtype,max_strassen_levels", [(torch.float64, 4), (torch.float32, 3),
                                                       (torch.float16, 1), (torch.bfloat16, 1)])
def test_accuracy_bound_per_dtype(dtype, max_strassen_levels):
    f = library_algorithm("strassen")
    assert within_bound(f, max_strassen_levels, dtype)
    assert not within_bound(f, max_strassen_levels + 1, dtype)


@needs_compiler
@pytest.mark.parametrize("algorithm,levels", [("strassen", 1), ("strassen", 2), ("winograd", 2), ("laderman", 1)])
def test_predicted_growth_bounds_measured_error(algorithm, levels):
    # The model is worst case; on random data the ratio (fast error / torch.matmul error) must
    # stay below it. fp32 vs a float64 reference (float64's own error is 1e-9 of fp32's).
    g = torch.Generator().manual_seed(0)
    a = torch.rand(216, 216, generator=g, dtype=torch.float64)
    b = torch.rand(216, 216, generator=g, dtype=torch.float64)
    ref = a @ b
    f = library_algorithm(algorithm)
    out = fastmm.matmul(a.float(), b.float(), algorithm=f, levels=levels)
    err = ((out.double() - ref).norm() / ref.norm()).item()
    base = ((torch.matmul(a.float(), b.float()).double() - ref).norm() / ref.norm()).item()
    assert err <= error_growth(f, levels) * base


@needs_compiler
def test_candidates_are_flat_and_include_vendor():
    scored = rank(_problem(8192))
    plans = [s.plan for s in scored]
    assert TORCH_MATMUL in plans
    assert {p.backend for p in plans} >= {"torch.matmul", "torch"}
    assert all(isinstance(p, Plan) for p in plans) and len(set(plans)) == len(plans)
    refused = {s.plan.key: s.refused for s in scored if s.refused}
    assert any("error growth" in why for why in refused.values())        # winograd × 3 levels in fp32


@needs_compiler
def test_backends_listed_only_where_supported():
    assert "torch" in backends.available("cpu", torch.float32)
    assert "triton" not in backends.available("cpu", torch.float32)   # GPU plugins are not asked on CPU


@pytest.mark.parametrize("n", [1, 64, 512, 1000])
def test_small_shapes_rejected_before_planning(n):
    d = decide(_problem(n))
    assert d.plan.is_vendor and "reject_below" in d.reason and d.candidates == ()


@needs_compiler
def test_cost_model_prefers_vendor_at_moderate_sizes_and_fast_plans_at_large():
    assert decide(_problem(2048)).plan.is_vendor
    big = decide(_problem(8192))
    assert not big.plan.is_vendor and "cost model" in big.reason


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_reject_threshold_below_model_crossover(dtype):
    # The fast reject must never hide a plan the cost model would pick.
    x = crossover(dtype)
    assert x is None or x >= DEFAULT_CONFIG.reject_below


@needs_compiler
def test_forced_plan_over_accuracy_bound_is_refused():
    a = torch.ones(64, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="error growth"):
        fastmm.matmul(a, a, algorithm="strassen", levels=2)


def test_plan_time_model_shapes():
    c = cost.CPU_DEFAULT[torch.float32]
    f = library_algorithm("strassen")
    one = Plan(f.name, f.digest, 1, "materialized", "torch", factorization=f)
    assert cost.plan_time(TORCH_MATMUL, 4096, 4096, 4096, c, 4) > 0
    # One Strassen level replaces 1/8 of the flops by additions: at 8192 it must be predicted
    # faster than the vendor GEMM, and at 256 slower.
    assert cost.plan_time(one, 8192, 8192, 8192, c, 4) < cost.plan_time(TORCH_MATMUL, 8192, 8192, 8192, c, 4)
    assert cost.plan_time(one, 256, 256, 256, c, 4) > cost.plan_time(TORCH_MATMUL, 256, 256, 256, c, 4)


def test_calibrate_measures_positive_numbers():
    values, details = calibrate.measure("cpu", torch.float32, budget_s=0.5, sizes=(128, 256), block=256)
    assert all(values[k] > 0 for k in ("peak_flops", "half_size", "bandwidth", "op_overhead"))
    assert details["seconds"] < 5


def test_explain_says_what_and_why():
    text = str(fastmm.explain(torch.ones(2048, 2048), torch.ones(2048, 2048)))
    assert "runs:" in text and "why:" in text and "torch.matmul" in text
    assert "fast reject" in str(fastmm.explain(torch.ones(3), torch.ones(3, 4)))


# ---- tuning ---------------------------------------------------------------------------------

SMALL = PlannerConfig(reject_below=0, min_leaf=16, max_levels=2, algorithms=("strassen", "laderman"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMM_CACHE_DIR", str(tmp_path))
    runtime._decide_cached.cache_clear()
    yield tmp_path
    runtime._decide_cached.cache_clear()


@needs_compiler
def test_tune_measures_candidates_and_matmul_uses_the_winner(cache_dir):
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    result = fastmm.tune(a, b, config=SMALL, reps=1, progress=False)
    measured = [s for s in result.timings if s.measured_s is not None]
    assert any(s.plan.is_vendor for s in measured) and len(measured) >= 3
    assert result.winner == min(measured, key=lambda s: s.measured_s).plan
    key = CacheKey.of(Problem.of(a, b))
    assert TuningCache(cache_dir).get(key) == result.winner
    d = fastmm.explain(a, b, config=SMALL).decision
    assert d.plan == result.winner and "tuning cache" in d.reason
    assert torch.allclose(fastmm.matmul(a, b, config=SMALL), a @ b, rtol=1e-4, atol=1e-4)  # fp32, K = 96


@needs_compiler
def test_failing_candidate_scores_infinitely_slow(cache_dir, monkeypatch):
    real = backends.build

    def flaky(f, levels, backend, schedule, tf32=False, tile=None, basis=""):  # the signature ops.py calls
        if f.name.startswith("laderman"):
            raise RuntimeError("simulated compile failure")
        return real(f, levels, backend, schedule, tf32, tile, basis)

    monkeypatch.setattr(backends, "build", flaky)
    result = fastmm.tune(torch.randn(81, 81), torch.randn(81, 81), config=SMALL, reps=1, progress=False)
    lad = [s for s in result.timings if s.plan.algorithm.startswith("laderman") and s.measured_s is not None]
    assert lad and all(s.measured_s == math.inf for s in lad)
    assert not result.winner.algorithm.startswith("laderman")
    # the other fast plans really ran (a mock with the wrong signature made every one of them raise)
    others = [s for s in result.timings if not s.plan.is_vendor and not s.plan.algorithm.startswith("laderman")
              and s.measured_s is not None]
    assert others and all(math.isfinite(s.measured_s) for s in others)


@needs_compiler
def test_autotune_env_tunes_on_miss(cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("FASTMM_AUTOTUNE", "eager")   # measure every candidate on the first call
    a, b = torch.randn(64, 72), torch.randn(72, 80)
    out = fastmm.matmul(a, b, config=dataclasses.replace(SMALL, autotune=None))
    assert torch.allclose(out, a @ b, rtol=1e-4, atol=1e-4)         # fp32, K = 72
    assert len(list(cache_dir.glob("*.json"))) == 1


def test_triton_plans_follow_torch_fp32_precision(monkeypatch):
    """The Triton backend's own tl.dot must use TF32 exactly when torch.matmul would (the torch
    backend's leaves are torch.matmul and follow torch's setting by themselves)."""
    from compiler.algebra.library import library_algorithm
    from fastmm import backends
    seen = []
    monkeypatch.setattr(backends, "compile_", lambda f, backend, levels, **options: seen.append(options))
    f = library_algorithm("strassen")
    backends.build.cache_clear()
    backends.build(f, 1, "triton", "streaming", True)
    backends.build(f, 1, "torch", "materialized", False)
    backends.build.cache_clear()
    assert seen == [{"schedule": "streaming", "tf32": True}, {"schedule": "materialized", "cutoff": 1}]
    assert not backends.uses_tf32(torch.ones(2, 2))            # CPU: never TF32
    assert not backends.uses_tf32(torch.ones(2, 2, dtype=torch.float64))


# ---- the backend contract: a new backend or schedule needs only its declaration ---------------

@needs_compiler
def test_new_backend_is_planned_and_priced_from_its_declaration(monkeypatch):
    from compiler.codegen import backends as registry
    from compiler.codegen.backends import Backend, CombinationTraffic
    torch_be = registry.get_backend("torch")
    toy = Backend("toy", "the torch backend re-declared with a schedule that keeps c-side sums out of memory",
                  torch_be.emit, torch_be.make_callable, devices=("cpu",), dtypes=("float64",),
                  options=torch_be.options, schedules=("materialized", "epilogue"),
                  traffic={"epilogue": CombinationTraffic(c=0.0)})
    monkeypatch.setitem(registry._REGISTRY, "toy", toy)
    backends.available.cache_clear()
    try:
        prob = _problem(8192, torch.float64)
        ranked = rank(prob)
        scored = {(s.plan.backend, s.plan.schedule, s.plan.levels, s.plan.algorithm): s for s in ranked
                  if s.refused is None and s.plan.algorithm.startswith("strassen") and not s.plan.is_alt_basis}
        assert ("toy", "epilogue", 2, "strassen-2x2x2-r7") in scored           # listed: it is declared
        # alternative-basis plans only where the declaration has make_altbasis (torch's, not toy's)
        alt_backends = {s.plan.backend for s in ranked if s.plan.is_alt_basis}
        assert "torch" in alt_backends and "toy" not in alt_backends
        assert not any(s.plan.backend == "toy" for s in rank(_problem(8192, torch.float32)))   # fp32 not declared
        # priced from the declaration: the same plan without its c-side traffic is cheaper
        plain = scored[("torch", "materialized", 2, "strassen-2x2x2-r7")].predicted_s
        assert scored[("toy", "epilogue", 2, "strassen-2x2x2-r7")].predicted_s < plain
        assert scored[("toy", "materialized", 2, "strassen-2x2x2-r7")].predicted_s == pytest.approx(plain)
    finally:
        backends.available.cache_clear()


def test_cost_model_names_no_backend():
    import inspect
    # no backend or schedule name as a literal, and no test of plan.backend: the planner passes the
    # backend's declared CombinationTraffic in
    source = inspect.getsource(cost)
    for name in ("triton", "cuda_backend", "fused", "streaming", "materialized", "torch\""):
        assert f'"{name}' not in source and f"'{name}" not in source, name
    assert "plan.backend" not in source and "plan.schedule" not in source


@needs_compiler
def test_torch_schedules_the_model_cannot_tell_apart_are_listed_once():
    plans = [s.plan for s in rank(_problem(8192)) if s.plan.backend == "torch"]
    # torch's "streaming" prices the same as "materialized"; "fused" declares less traffic
    assert {p.schedule for p in plans} == {"materialized", "fused"}


# ---- fp64, rectangular and batched products in the model -------------------------------------

@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_product_costs_batch_times_one(dtype):
    c = cost.default_cost("cpu", dtype)
    f = library_algorithm("strassen")
    plan = Plan(f.name, f.digest, 2, "materialized", "torch", factorization=f)
    item = torch.empty((), dtype=dtype).element_size()
    one = cost.plan_time(plan, 4096, 4096, 4096, c, item)
    assert cost.plan_time(plan, 4096, 4096, 4096, c, item, batch=4) == pytest.approx(4 * one)
    batched = Problem(4096, 4096, 4096, 4, dtype, CPU, "highest")
    assert any(not s.plan.is_vendor and s.refused is None for s in rank(batched))


@needs_compiler
def test_rectangular_products_are_planned_per_dimension():
    # 8192×4096×8192: Strassen splits every dimension; the leaf's smallest side decides its GEMM rate
    c = cost.default_cost("cpu", torch.float32)
    f = library_algorithm("strassen")
    plan = Plan(f.name, f.digest, 2, "materialized", "torch", factorization=f)
    t = cost.plan_time(plan, 8192, 4096, 8192, c, 4)
    leaf = f.rank ** 2 * c.gemm_time(2048, 1024, 2048)
    assert leaf < t < 1.5 * leaf
    # a leaf side below min_leaf is refused even when the others are large
    refused = {s.plan.key: s.refused for s in rank(_problem(8192, k=2048)) if s.refused}
    assert any("leaf dimension" in why for why in refused.values())


@needs_compiler
def test_trial_candidates_are_distinct_kinds_within_slack():
    from fastmm.planner import trial_candidates
    fast = DeviceCost(177.5e9, 240, 56e9, 2e-6)
    cfg = dataclasses.replace(DEFAULT_CONFIG, cost=fast)
    d = decide(_problem(8192), cfg)
    plans = trial_candidates(d, cfg)
    assert len(plans) == cfg.tuning.candidates
    kinds = {(p.factorization.shape, p.factorization.rank, p.levels) for p in plans}
    assert len(kinds) == len(plans)                            # not Strassen and Winograd at one depth
    vendor = next(s.predicted_s for s in d.candidates if s.plan.is_vendor)
    by_plan = {s.plan: s.predicted_s for s in d.candidates}
    assert all(by_plan[p] <= vendor * (1 + cfg.tuning.slack) for p in plans)
