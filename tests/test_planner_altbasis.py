"""The planner proposes, prices, builds, caches and tunes alternative-basis plans (docs/altbasis.md)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import fastmm
from compiler.algebra.factors import naive
from compiler.algebra.library import library_algorithm
from compiler.codegen.backends import get_backend
from fastmm import backends, cost, runtime
from fastmm.cache import FORMAT, CacheKey, TuningCache
from fastmm.planner import PlannerConfig, Problem, Scored, candidates, decide, rank, trial_candidates
from fastmm.plans import STANDARD, TORCH_MATMUL, Plan

needs_compiler = pytest.mark.skipif(backends.unavailable_reason() is not None,
                                    reason=str(backends.unavailable_reason()))
CPU = torch.device("cpu")
# every level runs on these small shapes (reject_below 0, min_leaf 1), cost model only
SMALL = PlannerConfig(reject_below=0, min_leaf=1, max_levels=2, algorithms=("winograd",), autotune=False)
ALT = dataclasses.replace(SMALL, bases=("alt",))


def _problem(n, k, p, batch=1, dtype=torch.float64):
    return Problem(n, k, p, batch, dtype, CPU, "highest", (k, 1), (p, 1))


def _ints(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-4, 5, shape, generator=g).to(torch.float64)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMM_CACHE_DIR", str(tmp_path))
    runtime.forget_decisions()
    yield tmp_path
    runtime.forget_decisions()


def test_torch_backend_declares_alternative_bases():
    assert get_backend("torch").alt_bases and backends.alt_bases("torch")


@needs_compiler
def test_planner_lists_alt_basis_plans_beside_the_standard_ones():
    f = library_algorithm("winograd")
    alt = backends.stored_basis(f)
    assert alt is not None
    plans = [p for p in candidates(_problem(4096, 4096, 4096), SMALL) if not p.is_vendor]
    standard = {(p.levels, p.schedule, p.backend) for p in plans if not p.is_alt_basis}
    alts = [p for p in plans if p.is_alt_basis]
    # the same levels and schedules as the standard plans, on backends that declare alt bases
    assert {(p.levels, p.schedule, p.backend) for p in alts} == {s for s in standard if backends.alt_bases(s[2])}
    assert all(p.basis == alt.digest and p.key.endswith(f"/alt@{alt.digest[:16]}") for p in alts)
    assert len({p.key for p in plans}) == len(plans)
    off = dataclasses.replace(SMALL, bases=("standard",))
    assert not any(p.is_alt_basis for p in candidates(_problem(4096, 4096, 4096), off))
    assert all(p.is_alt_basis for p in candidates(_problem(4096, 4096, 4096), ALT) if not p.is_vendor)


@needs_compiler
def test_cost_model_prices_the_core_and_the_transforms():
    f = library_algorithm("winograd")
    alt = backends.stored_basis(f)
    c = cost.default_cost("cpu", torch.float64)
    n = 4096
    t = {}
    for lv in (1, 2):
        plain = Plan(f.name, f.digest, lv, "materialized", "torch", factorization=f)
        alt_plan = dataclasses.replace(plain, basis=alt.digest)
        t[lv] = (cost.plan_time(plain, n, n, n, c, 8), cost.plan_time(alt_plan, n, n, n, c, 8, alt=alt))
    gemms = [7 ** lv * c.gemm_time(n / 2 ** lv, n / 2 ** lv, n / 2 ** lv) for lv in (1, 2)]
    # the same leaf GEMMs; the rest is combination traffic, which differs
    for lv, g in zip((1, 2), gemms):
        assert t[lv][0] > g and t[lv][1] > g and t[lv][0] != t[lv][1]
    # with the levels fixed, everything but the leaf GEMMs is O(N²) traffic (the transforms once per
    # level, the core's additions): doubling N quadruples it (up to the per-op overheads)
    alt1 = dataclasses.replace(Plan(f.name, f.digest, 1, "materialized", "torch", factorization=f), basis=alt.digest)
    extra = cost.plan_time(alt1, 2 * n, 2 * n, 2 * n, c, 8, alt=alt) - 7 * c.gemm_time(n, n, n)
    assert math.isclose(extra, 4 * (t[1][1] - gemms[0]), rel_tol=1e-3)


@needs_compiler
def test_explain_shows_alt_basis_candidates_with_their_prediction():
    a = torch.zeros(512, 512, dtype=torch.float64)
    text = str(fastmm.explain(a, a, config=SMALL))
    rows = [r for r in text.splitlines() if "/alt@" in r]
    assert rows and all("ms" in r and "× torch.matmul" in r for r in rows)


@needs_compiler
@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("batch", [None, 3])
def test_forced_alt_basis_plan_is_bit_exact_on_odd_shapes(levels, batch):
    # small integers, float64: every sum of the transforms and core is an exact integer
    lead = () if batch is None else (batch,)
    a, b = _ints(*lead, 67, 130, seed=levels), _ints(*lead, 130, 45, seed=10 + levels)
    d = fastmm.explain(a, b, algorithm="winograd", levels=levels, backend="torch", config=ALT).decision
    assert d.plan.is_alt_basis and d.plan.levels == levels
    run = backends.build(d.plan.factorization, levels, "torch", d.plan.schedule, False, None, d.plan.basis)
    assert run.altbasis.digest == d.plan.basis and run.levels == levels and run.cutoff == 1  # every level runs
    out = fastmm.matmul(a, b, algorithm="winograd", levels=levels, backend="torch", config=ALT)
    assert torch.equal(out, torch.matmul(a, b))


@needs_compiler
def test_alt_basis_refused_for_an_algorithm_without_a_stored_basis():
    f = naive(2, 3, 2)
    assert backends.stored_basis(f) is None
    a, b = _ints(8, 12, seed=0), _ints(12, 8, seed=1)
    with pytest.raises(ValueError, match="no stored alternative basis"):
        fastmm.matmul(a, b, algorithm=f, levels=1, config=ALT)
    with pytest.raises(ValueError, match="no stored alternative basis"):
        backends.build(f, 1, "torch", "materialized", False, None, "0" * 64)
    w = library_algorithm("winograd")   # a basis that is not the stored one is refused as well
    with pytest.raises(ValueError, match="not the stored one"):
        backends.build(w, 1, "torch", "materialized", False, None, "0" * 64)
    # without an explicit algorithm, an algorithm lacking a basis simply has no alt plans
    cfg = dataclasses.replace(ALT, algorithms=("naive",))
    assert candidates(_problem(64, 64, 64), cfg) == [TORCH_MATMUL]


def test_plan_with_basis_roundtrips_key_and_dict():
    f = library_algorithm("winograd")
    plan = Plan(f.name, f.digest, 2, "fused", "torch", None, f, "ab" * 32)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan and again.key == plan.key and again.basis == plan.basis
    assert plan.key.endswith("/alt@" + "ab" * 8) and "alternative basis" in plan.describe()
    standard = dataclasses.replace(plan, basis=STANDARD)
    assert standard != plan and standard.key != plan.key and "/alt@" not in standard.key
    assert Plan.from_dict(standard.to_dict()) == standard


@needs_compiler
def test_cache_roundtrips_alt_plans_and_ignores_stale_or_old_entries(tmp_path):
    f = library_algorithm("winograd")
    alt = backends.stored_basis(f)
    problem = _problem(67, 130, 45)
    key = CacheKey.of(problem)
    plan = Plan(f.name, f.digest, 2, "materialized", "torch", None, f, alt.digest)
    tuning = TuningCache(tmp_path)
    path = tuning.put(key, plan, {plan.key: 0.1}, slower=(dataclasses.replace(plan, levels=1).key,))
    fresh = TuningCache(tmp_path)
    got = fresh.lookup(problem)
    assert got == plan and got.factorization == f and got.basis == alt.digest
    assert dataclasses.replace(plan, levels=1).key in fresh.slower(key)
    entry = json.loads(path.read_text())
    assert entry["format"] == FORMAT and entry["plan"]["basis"] == alt.digest
    # a stored basis that changed since tuning: the entry is stale (retuned, not run)
    stale = dataclasses.replace(plan, basis="cd" * 32)
    TuningCache(tmp_path / "stale").put(key, stale)
    assert TuningCache(tmp_path / "stale").lookup(problem) is None
    # entries of the previous format (no basis; decided without alternative-basis candidates) are ignored
    entry["format"] = FORMAT - 1
    path.write_text(json.dumps(entry))
    assert TuningCache(tmp_path).lookup(problem) is None


def test_tuning_by_use_gives_an_algorithm_one_slot_whatever_its_basis():
    f, s = library_algorithm("winograd"), library_algorithm("laderman")
    std = Plan(f.name, f.digest, 1, "materialized", "torch", factorization=f)
    alt = dataclasses.replace(std, basis="ab" * 32)
    other = Plan(s.name, s.digest, 1, "materialized", "torch", factorization=s)
    scored = (Scored(alt, 0.8), Scored(std, 0.81), Scored(other, 0.9), Scored(TORCH_MATMUL, 1.0))
    chosen = trial_candidates(decide_stub(scored), PlannerConfig())
    assert chosen == [alt, other]


def decide_stub(scored):
    from fastmm.planner import Decision
    return Decision(TORCH_MATMUL, "stub", scored)


@needs_compiler
def test_tune_measures_alt_basis_plans_like_any_candidate(cache_dir):
    cfg = dataclasses.replace(SMALL, schedules=("materialized",))
    a, b = _ints(67, 130, seed=3), _ints(130, 45, seed=4)
    result = fastmm.tune(a, b, config=cfg, reps=1, progress=False)
    alts = [s for s in result.timings if s.plan.is_alt_basis]
    assert len(alts) == 2 and all(s.refused is None and math.isfinite(s.measured_s) for s in alts)
    ranked = rank(Problem.of(a, b), cfg)
    assert {s.plan.key for s in ranked} == {s.plan.key for s in result.timings}
    # whatever won is what matmul now runs, exactly
    assert decide(Problem.of(a, b), cfg, cache=TuningCache(cache_dir)).plan == result.winner
    assert torch.equal(fastmm.matmul(a, b, config=cfg), a @ b)


@needs_compiler
def test_a_backend_without_make_altbasis_gets_no_alt_plans(monkeypatch):
    from compiler.codegen import backends as registry
    from compiler.codegen.backends import Backend
    torch_be = registry.get_backend("torch")
    toy = Backend("toy", "the torch backend re-declared without alternative bases", torch_be.emit,
                  torch_be.make_callable, devices=("cpu",), dtypes=("float64",), options=torch_be.options,
                  schedules=("materialized",))
    monkeypatch.setitem(registry._REGISTRY, "toy", toy)
    backends.available.cache_clear()
    try:
        plans = candidates(_problem(4096, 4096, 4096), SMALL)
        assert {p.backend for p in plans if p.is_alt_basis} == {"torch"}
        assert any(p.backend == "toy" for p in plans if not p.is_alt_basis)
        with pytest.raises(ValueError, match="compiles alternative bases"):
            candidates(_problem(64, 64, 64), ALT, algorithm="winograd", backend="toy")
        with pytest.raises(ValueError, match="does not compile alternative bases"):
            f = library_algorithm("winograd")
            backends.build(f, 1, "toy", "materialized", False, None, backends.stored_basis(f).digest)
    finally:
        backends.available.cache_clear()
