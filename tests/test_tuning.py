"""Tuning by use (fastmm.tuning) and self-calibration (fastmm.calibrate), with fake clocks.

Timings are never real here: ``TuneRule.timer`` is replaced by a fake that runs the call (the
result must still be right) and reports a duration chosen per plan, with a fixed ±5 % jitter
pattern so the rule sees noise.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing as mp
import warnings

import pytest
import torch

import fastmm
from fastmm import backends, calibrate, runtime
from fastmm.cache import FORMAT, CacheKey, CalibrationKey, TuningCache
from fastmm.cost import DeviceCost
from fastmm.planner import PlannerConfig, Problem
from fastmm.plans import TORCH_MATMUL
from fastmm.tuning import Trial, TuneRule

needs_compiler = pytest.mark.skipif(backends.unavailable_reason() is not None,
                                    reason=str(backends.unavailable_reason()))
JITTER = (1.0, 1.05, 0.97, 1.02, 0.95, 1.03)
# A device whose GEMMs are slow and whose additions are free: the model then ranks fast plans
# first at the small sizes these tests use (the measurement, faked, decides).
SLOW_GEMM = DeviceCost(peak_flops=1e6, half_size=1, bandwidth=1e15, op_overhead=0.0)


class FakeClock:
    """``timer(plan, run)``: runs ``run`` and reports ``seconds[plan kind] × jitter``."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds
        self.calls: list[str] = []
        self._jitter = itertools.cycle(JITTER)

    def kind(self, plan) -> str:
        return "torch" if plan.is_vendor else f"{plan.algorithm.split('-')[0]}-L{plan.levels}"

    def __call__(self, plan, run):
        self.calls.append(self.kind(plan))
        return run(), self.seconds[self.kind(plan)] * next(self._jitter)


def _config(clock, **rule) -> PlannerConfig:
    # one schedule and the standard basis, so the two candidates are Strassen at 1 and 2 levels (the
    # faked kinds; the alternative-basis Strassen plans would otherwise stay unmeasured candidates)
    return PlannerConfig(algorithms=("strassen",), max_levels=2, schedules=("materialized",), bases=("standard",),
                         reject_below=0,
                         min_leaf=16, autotune=True,
                         cost=SLOW_GEMM, tuning=TuneRule(timer=clock, **rule))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMM_CACHE_DIR", str(tmp_path))
    runtime._decide_cached.cache_clear()
    runtime._VENDOR_PLANNED.clear()
    yield tmp_path
    runtime._decide_cached.cache_clear()


def _call_until_settled(a, b, cfg, limit=60):
    for i in range(limit):
        out = fastmm.matmul(a, b, config=cfg)
        assert torch.allclose(out, a @ b, rtol=1e-4, atol=1e-3), i      # fp32, K = 96: every call is real
        if fastmm.explain(a, b, config=cfg).decision.trial is None:
            return i + 1
    raise AssertionError("tuning by use did not settle")


def _tune_96(seconds):
    """Two random 96×96 operands tuned by use under a fake clock with these per-kind ``seconds``
    until the rule settles; returns (a, b, clock, cfg, the number of calls it took)."""
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    clock = FakeClock(seconds)
    cfg = _config(clock)
    return a, b, clock, cfg, _call_until_settled(a, b, cfg)


# ---- the rule itself -------------------------------------------------------------------------

def _plans():
    from compiler.algebra.library import library_algorithm
    from fastmm.plans import Plan
    f = library_algorithm("strassen")
    return [Plan(f.name, f.digest, lv, "materialized", "torch", factorization=f) for lv in (1, 2)]


def _run_trial(times: dict[int, float], rule=TuneRule(), limit=100):
    p1, p2 = _plans()
    trial = Trial(TORCH_MATMUL, [p1, p2], rule)
    by_arm = {TORCH_MATMUL.key: times[0], p1.key: times[1], p2.key: times[2]}
    jitter = itertools.cycle(JITTER)
    for n in range(limit):
        plan = trial.next_arm()
        v = trial.record(plan, by_arm[plan.key] * next(jitter))
        if v is not None:
            return v, n + 1, (p1, p2)
    raise AssertionError("no verdict")


def test_rule_converges_to_the_faster_plan():
    v, calls, (p1, p2) = _run_trial({0: 1.0, 1: 0.80, 2: 0.70})
    assert v.winner == p2 and calls <= 3 * (1 + 3) + 3


def test_rule_drops_a_plan_slower_than_torch_and_keeps_torch():
    v, _, (p1, p2) = _run_trial({0: 1.0, 1: 1.10, 2: 1.30})
    assert v.winner.is_vendor and set(v.slower) == {p1, p2}


def test_rule_tie_goes_to_torch_within_the_budget():
    rule = TuneRule()
    v, calls, _ = _run_trial({0: 1.0, 1: 0.99, 2: 0.995}, rule)
    assert v.winner.is_vendor          # dropped (median ≥ torch's under jitter) or out of budget
    assert calls <= (1 + rule.candidates) * (rule.warmup + rule.max_samples)


def test_rule_needs_every_timing_below_torch_median():
    # median 10 % faster but one timing in three far slower (a noisy plan): no win, torch kept
    p1, p2 = _plans()
    trial = Trial(TORCH_MATMUL, [p1], TuneRule(max_samples=6))
    pattern = {TORCH_MATMUL.key: itertools.cycle([1.0]), p1.key: itertools.cycle([0.9, 0.9, 1.5])}
    v = None
    while v is None:
        plan = trial.next_arm()
        v = trial.record(plan, next(pattern[plan.key]))
    assert v.winner.is_vendor


def test_rule_alternates_arms_and_discards_warmup():
    p1, p2 = _plans()
    trial = Trial(TORCH_MATMUL, [p1, p2], TuneRule())
    order = []
    for _ in range(6):
        plan = trial.next_arm()
        order.append(plan.key)
        trial.record(plan, 1.0)
    assert order == [TORCH_MATMUL.key, p1.key, p2.key] * 2
    assert all(len(v) == 1 for v in trial.samples.values())          # first timing of each discarded


# ---- through fastmm.matmul --------------------------------------------------------------------

@needs_compiler
def test_matmul_converges_to_the_faster_plan_and_stores_it(cache_dir):
    a, b, clock, cfg, calls = _tune_96({"torch": 1.0, "strassen-L1": 0.8, "strassen-L2": 0.6})
    assert set(clock.calls) == {"torch", "strassen-L1", "strassen-L2"} and calls == len(clock.calls)
    d = fastmm.explain(a, b, config=cfg).decision
    assert not d.plan.is_vendor and d.plan.levels == 2 and "tuning cache" in d.reason
    entry = json.loads(next(cache_dir.glob("*.json")).read_text())
    assert entry["plan"]["levels"] == 2
    n = len(clock.calls)
    fastmm.matmul(a, b, config=cfg)                       # decided: no more timing
    assert len(clock.calls) == n


@needs_compiler
def test_plan_slower_than_torch_is_never_chosen_again(cache_dir):
    a, b, _clock, cfg, _calls = _tune_96({"torch": 1.0, "strassen-L1": 1.2, "strassen-L2": 1.1})
    key = CacheKey.of(Problem.of(a, b))
    assert TuningCache(cache_dir).get(key) == TORCH_MATMUL
    assert len(TuningCache(cache_dir).slower(key)) == 2
    # a later process, tuning off, with a model that prefers the fast plans: still torch.matmul
    runtime._decide_cached.cache_clear()
    TuningCache(cache_dir).path(key).write_text(json.dumps(
        {**json.loads(TuningCache(cache_dir).path(key).read_text()), "plan": None}))   # winner forgotten
    import fastmm.cache as cache_mod
    cache_mod._cache_for.cache_clear()
    off = dataclasses.replace(cfg, autotune=False)
    d = fastmm.explain(a, b, config=off).decision
    assert d.plan.is_vendor
    assert all("measured slower" in s.refused for s in d.candidates if not s.plan.is_vendor and s.refused
               and "slower" in s.refused) and sum("measured slower" in (s.refused or "") for s in d.candidates) == 2


@needs_compiler
def test_ties_go_to_torch(cache_dir):
    a, b, _clock, cfg, calls = _tune_96({"torch": 1.0, "strassen-L1": 0.995, "strassen-L2": 0.99})
    rule = cfg.tuning
    assert calls <= (1 + rule.candidates) * (rule.warmup + rule.max_samples)
    assert fastmm.explain(a, b, config=cfg).decision.plan.is_vendor


@needs_compiler
def test_autotune_env_zero_turns_it_off(cache_dir, monkeypatch):
    monkeypatch.setenv("FASTMM_AUTOTUNE", "0")
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    clock = FakeClock({"torch": 1.0, "strassen-L1": 0.5, "strassen-L2": 0.5})
    cfg = dataclasses.replace(_config(clock), autotune=None)
    for _ in range(5):
        fastmm.matmul(a, b, config=cfg)
    assert clock.calls == [] and not list(cache_dir.glob("*.json"))
    assert fastmm.explain(a, b, config=cfg).decision.trial is None


@needs_compiler
def test_corrupted_cache_entry_is_retuned_and_overwritten(cache_dir):
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    key = CacheKey.of(Problem.of(a, b))
    TuningCache(cache_dir).path(key).write_bytes(b"{\x00 torn")
    clock = FakeClock({"torch": 1.0, "strassen-L1": 0.8, "strassen-L2": 0.6})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # the corrupted file is reported, then replaced
        _call_until_settled(a, b, _config(clock))
    assert TuningCache(cache_dir).get(key).levels == 2


def _put_slower(directory: str, worker: int) -> None:
    cache = TuningCache(directory)
    key = CacheKey.of(Problem(2048, 2048, 2048, 1, torch.float32, torch.device("cpu"), "highest",
                              (2048, 1), (2048, 1)))
    for i in range(20):
        cache.put(key, TORCH_MATMUL, slower=(f"plan-{worker}-{i}",))


def test_concurrent_verdicts_merge_their_slower_lists(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_put_slower, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    key = CacheKey.of(Problem(2048, 2048, 2048, 1, torch.float32, torch.device("cpu"), "highest",
                              (2048, 1), (2048, 1)))
    assert TuningCache(tmp_path).slower(key) == {f"plan-{w}-{i}" for w in range(3) for i in range(20)}
    assert not list(tmp_path.glob("*.tmp"))


@needs_compiler
def test_nothing_is_timed_under_torch_compile(cache_dir):
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    clock = FakeClock({"torch": 1.0, "strassen-L1": 0.8, "strassen-L2": 0.6})
    cfg = _config(clock)
    fastmm.explain(a, b, config=cfg)          # a trial exists for this problem (default-config path below)
    compiled = torch.compile(lambda x, y: fastmm.matmul(x, y), backend="eager", fullgraph=True)
    out = compiled(a, b)
    assert torch.allclose(out, a @ b, rtol=1e-4, atol=1e-3) and clock.calls == []


@needs_compiler
def test_nan_operands_are_run_but_not_timed(cache_dir):
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    a[3, 5] = float("nan")
    clock = FakeClock({"torch": 1.0, "strassen-L1": 0.8, "strassen-L2": 0.6})
    cfg = _config(clock)
    for _ in range(4):
        out = fastmm.matmul(a, b, config=cfg)
        torch.testing.assert_close(out, a @ b, equal_nan=True)
    assert "strassen-L1" not in clock.calls and "strassen-L2" not in clock.calls


# ---- calibration ------------------------------------------------------------------------------

FAKE = {"peak_flops": 1.5e11, "half_size": 300.0, "bandwidth": 2e10, "op_overhead": 3e-6}


@pytest.fixture
def fake_measure(monkeypatch, cache_dir):
    monkeypatch.setenv("FASTMM_CALIBRATE", "1")
    calls = []

    def measure(device, dtype, *args, **kwargs):
        calls.append(dtype)
        return dict(FAKE), {"seconds": 0.01}
    monkeypatch.setattr(calibrate, "measure", measure)
    monkeypatch.setattr(calibrate, "_ANNOUNCED", [])
    calibrate.forget()
    yield calls
    calibrate.forget()


def test_calibration_is_measured_once_stored_and_announced(fake_measure, cache_dir):
    tuning = TuningCache(cache_dir)
    with pytest.warns(calibrate.CalibrationWarning, match="FASTMM_CALIBRATE=0"):
        cost = calibrate.device_cost(torch.device("cpu"), torch.float32, tuning)
    assert cost.peak_flops == FAKE["peak_flops"] and set(cost.measured) == set(DeviceCost.FIELDS)
    calibrate.forget()                                   # a new process: read from the cache, not measured
    again = calibrate.device_cost(torch.device("cpu"), torch.float32, TuningCache(cache_dir))
    assert again.bandwidth == FAKE["bandwidth"] and fake_measure == [torch.float32]
    assert CalibrationKey.of(torch.device("cpu"), torch.float32).blas_version


def test_corrupted_calibration_is_remeasured(fake_measure, cache_dir):
    tuning = TuningCache(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibrate.device_cost(torch.device("cpu"), torch.float64, tuning)
        tuning.calibration_path(CalibrationKey.of(torch.device("cpu"), torch.float64)).write_text(
            json.dumps({"format": FORMAT, "key": CalibrationKey.of(torch.device("cpu"), torch.float64).to_json(),
                        "values": {"peak_flops": -1}}))
        calibrate.forget()
        cost = calibrate.device_cost(torch.device("cpu"), torch.float64, tuning)
    assert cost.peak_flops == FAKE["peak_flops"] and fake_measure == [torch.float64, torch.float64]


def test_calibration_off_uses_defaults(fake_measure, monkeypatch):
    monkeypatch.setenv("FASTMM_CALIBRATE", "0")
    cost = calibrate.device_cost(torch.device("cpu"), torch.float32, TuningCache())
    assert cost.measured == () and fake_measure == []


@needs_compiler
def test_small_calls_never_calibrate_and_explain_shows_the_constants(fake_measure):
    fastmm.matmul(torch.randn(64, 64), torch.randn(64, 64))
    fastmm.matmul(torch.randn(1000, 8), torch.randn(8, 1000))
    assert fake_measure == []
    a = torch.randn(1024, 1024)
    assert "(default)" in str(fastmm.explain(a, a))          # explain measures nothing
    assert fake_measure == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fastmm.matmul(a, a, config=PlannerConfig(autotune=False))
    assert fake_measure == [torch.float32]
    text = str(fastmm.explain(a, a, config=PlannerConfig(autotune=False)))
    assert "peak_flops=150 GFLOP/s (measured)" in text


def test_fit_rate_recovers_the_model():
    peak, half = 100e9, 300.0
    points = [(d, peak * d / (d + half)) for d in (512, 1024, 2048)]
    p, h = calibrate.fit_rate(points, 256.0)
    assert abs(p / peak - 1) < 1e-9 and abs(h / half - 1) < 1e-9
    p, h = calibrate.fit_rate([(512, 5e10), (1024, 4e10)], 256.0)   # falling rate: through the best point
    assert h == 256.0 and abs(p * 512 / (512 + 256) - 5e10) < 1


@needs_compiler
def test_batched_product_is_tuned_by_use(cache_dir):
    a, b = torch.randn(3, 64, 96, dtype=torch.float64), torch.randn(3, 96, 80, dtype=torch.float64)
    clock = FakeClock({"torch": 1.0, "strassen-L1": 0.7, "strassen-L2": 0.9})
    _call_until_settled(a, b, _config(clock))
    hit = TuningCache(cache_dir).get(CacheKey.of(Problem.of(a, b)))
    assert hit.levels == 1 and not hit.is_vendor
