"""``fastmm.matmul``, ``fastmm.explain`` and ``fastmm.tune``.

``matmul`` is torch.matmul with a planner in front. The order of work is chosen so that the
common case costs nothing: products too small for any fast plan (or of a dtype without fast
plans) are handed to torch.matmul after a few integer comparisons, before any validation,
planning or custom-op dispatch. Only large products are lowered to canonical form
(``fastmm.semantics``), planned (``fastmm.planner``), and, when a fast plan wins, run through the
``fastmm::mm`` custom op (``fastmm.ops``), which carries autograd and the NaN/Inf rule.

The first large call on a device and dtype calibrates the cost model (``fastmm.calibrate``;
``FASTMM_CALIBRATE=0`` turns it off). The first calls of a product with no decision in the tuning
cache are tuning by use (``fastmm.tuning``; ``FASTMM_AUTOTUNE=0`` turns it off): they alternate
torch.matmul and the best candidates, each returning its real result, until the rule settles;
the verdict is stored in the tuning cache.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass

import torch

from fastmm import backends, calibrate
from fastmm import cache as cache_mod
from fastmm.ops import all_finite, auto_key, execute, register_plan, set_auto_planner
from fastmm.planner import (DEFAULT_CONFIG, FAST_DTYPES, FROM_CACHE, Decision, PlannerConfig, Problem, Scored,
                            decide, precision_mode, rank, trial_candidates)
from fastmm.plans import TORCH_MATMUL, Plan
from fastmm.semantics import core_dims, lower
from fastmm.tuning import Trial, Verdict

log = logging.getLogger("fastmm")

_REJECT = DEFAULT_CONFIG.reject_below
_REJECT_ELEMENTS = _REJECT * _REJECT
#: default-config problems (shapes, strides, dtypes, device, precision, autocast, cache and
#: autotune environment) planned to torch.matmul; cleared with ``_decide_cached`` when tuning
#: records a winner
_VENDOR_PLANNED: set = set()


def _autocast(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply autocast's rule for matmul (cast to the autocast dtype) when autocast is on."""
    dev = a.device.type
    if dev in ("cpu", "cuda") and torch.is_autocast_enabled(dev):
        dtype = torch.get_autocast_dtype(dev)
        if a.is_floating_point() and b.is_floating_point():
            return a.to(dtype), b.to(dtype)
    return a, b


def matmul(a: torch.Tensor, b: torch.Tensor, *, algorithm=None, levels: int | None = None,
           backend: str | None = None, config: PlannerConfig | None = None) -> torch.Tensor:
    """Drop-in for ``torch.matmul(a, b)`` that runs the fastest correct plan.

    ``algorithm`` (a Factorization, a factor-file path or a library name), ``levels`` and
    ``backend`` force a plan instead of letting the planner choose; ``config`` replaces the
    planner's defaults.
    """
    # Fast reject, ordered by cost. ``numel`` is the cheapest size query a tensor has (about
    # 60 ns; ``a.shape[-1]`` builds a torch.Size, about 200 ns): a with fewer than reject_below²
    # elements has a core dimension (n or k; n = 1 for a 1-D a) below reject_below, so no fast
    # plan applies. A non-tensor or 0-D ``a`` goes the same way and gets torch.matmul's own error.
    try:
        small = a.numel() < _REJECT_ELEMENTS
    except AttributeError:
        return torch.matmul(a, b)
    planner_default = algorithm is None and levels is None and backend is None and config is None
    if small and planner_default:
        return torch.matmul(a, b)
    vendor_key = None
    if planner_default:
        if not isinstance(b, torch.Tensor) or a.dim() < 2 or b.dim() < 2 or min(core_dims(a, b)) < _REJECT or a.dtype not in FAST_DTYPES:
            return torch.matmul(a, b)
        # Problems already planned to torch.matmul skip lowering and planning (~0.15 ms at
        # N = 1024: long enough for BLAS worker threads to go idle, measured 2-5 % slower calls).
        vendor_key = (a.shape, b.shape, a.stride(), b.stride(), a.dtype, b.dtype, a.device,
                      precision_mode(a.device), torch.is_autocast_enabled(a.device.type),
                      os.environ.get("FASTMM_CACHE_DIR"), os.environ.get("FASTMM_AUTOTUNE"))
        if vendor_key in _VENDOR_PLANNED:
            return torch.matmul(a, b)
    forced = algorithm is not None or levels is not None or backend is not None
    cfg = config or DEFAULT_CONFIG
    if not forced and (a.dtype not in FAST_DTYPES or min(core_dims(a, b)) < cfg.reject_below):
        return torch.matmul(a, b)
    if (a.dtype not in FAST_DTYPES or a.dtype != b.dtype) and not torch.is_autocast_enabled(a.device.type):
        return torch.matmul(a, b)          # other dtypes, and torch's own dtype-mismatch error
    a, b = _autocast(a, b)
    low = lower(a, b)                      # torch.matmul's errors for bad shapes
    if torch.compiler.is_compiling():
        # The planner cannot run while tracing; the op plans on the real tensors at run time
        # (with the default config; a forced algorithm must be given by name or path here).
        if algorithm is not None and not isinstance(algorithm, (str, os.PathLike)):
            raise TypeError("under torch.compile, pass algorithm= as a library name or factor-file path")
        return low.finish(torch.ops.fastmm.mm(low.a, low.b, auto_key(
            None if algorithm is None else os.fspath(algorithm), levels, backend)))
    decision = decide_for(low.a, low.b, cfg, algorithm, levels, backend)
    if decision.trial is not None:
        return _trial_call(decision.trial, a, b, low)
    if decision.plan.is_vendor:
        if vendor_key is not None:
            if len(_VENDOR_PLANNED) >= 4096:
                _VENDOR_PLANNED.clear()
            _VENDOR_PLANNED.add(vendor_key)
        return torch.matmul(a, b)
    return low.finish(torch.ops.fastmm.mm(low.a, low.b, register_plan(decision.plan)))


_matmul_py = matmul   # the implementation; ``matmul`` below may be its C front


def _register_polyfill(front) -> None:
    """Let dynamo trace the Python implementation where user code calls the C ``front``."""
    try:
        torch.compiler.substitute_in_graph(front)(_matmul_py)
    except Exception as exc:                  # never break the user's import of torch._dynamo
        warnings.warn(f"fastmm: could not register matmul with torch.compile ({exc}); "
                      "set FASTMM_PURE_PYTHON=1 to use the Python entry point", RuntimeWarning, stacklevel=2)


def _c_front():
    """``matmul`` with its small-problem fast path in C (``fastmm/_fastpath.c``), or None.

    The C function hands ``a.numel() < reject_below²`` without keywords to torch.matmul and
    everything else to ``_matmul_py``. It saves 0.4-0.6 µs per call, ~5 % of a 64×64 fp32 product.
    dynamo cannot trace a C function, so the Python implementation is registered as its polyfill
    (``torch.compiler.substitute_in_graph``) when torch._dynamo is first imported (wrapt's
    post-import hook): importing dynamo here would add 1-2 s to ``import fastmm``. Without the
    extension (no C compiler at install), without wrapt, or with FASTMM_PURE_PYTHON=1, there is
    no C front and ``matmul`` is ``_matmul_py``.
    """
    if os.environ.get("FASTMM_PURE_PYTHON") == "1" or not hasattr(torch.compiler, "substitute_in_graph"):
        return None
    try:
        import wrapt

        from fastmm import _fastpath
    except ImportError:
        return None
    params = [p.replace(annotation=inspect.Parameter.empty)
              for p in inspect.signature(_matmul_py).parameters.values()]
    doc = f"matmul{inspect.Signature(params)}\n--\n\n{inspect.getdoc(_matmul_py)}"
    front = _fastpath.make(torch.matmul, _matmul_py, _REJECT_ELEMENTS, doc)
    wrapt.register_post_import_hook(lambda _dynamo: _register_polyfill(front), "torch._dynamo")
    return front


matmul = _c_front() or _matmul_py


@functools.lru_cache(maxsize=1024)
def _decide_cached(problem: Problem, config: PlannerConfig, cache_dir: str, measure: bool = True) -> Decision:
    """The default-config decision. ``measure``: a real call, which may calibrate the machine and
    start tuning by use; False (``explain``): only what was measured before."""
    tuning = cache_mod.default_cache() if str(cache_mod.default_dir()) == cache_dir else None
    above = problem.dtype in FAST_DTYPES and min(problem.n, problem.k, problem.p) >= config.reject_below
    if config.cost is None and above:
        config = dataclasses.replace(config, cost=calibrate.device_cost(problem.device, problem.dtype, tuning,
                                                                        measure_now=measure))
    mode = config.autotune_mode()
    if measure and tuning is not None and mode == "eager" and above and tuning.lookup(problem) is None:
        _tune_problem(problem, config, tuning, reps=3, progress=True)
    decision = decide(problem, config, cache=tuning)
    if (mode == "use" and tuning is not None and decision.candidates
            and decision.reason != FROM_CACHE):
        fast = trial_candidates(decision, config)
        if fast:
            trial = Trial(TORCH_MATMUL, fast, config.tuning)
            trial.context = (problem, tuning)
            names = ", ".join(p.key for p in fast)
            return dataclasses.replace(decision, plan=TORCH_MATMUL, trial=trial, reason=(
                f"tuning by use: the next calls alternate torch.matmul and {names} (each call returns its "
                f"real result) until one is clearly faster (fastmm.tuning; FASTMM_AUTOTUNE=0 turns this off); "
                f"the cost model alone would say: {decision.reason}"))
    return decision


def _trial_call(trial: Trial, a: torch.Tensor, b: torch.Tensor, low) -> torch.Tensor:
    """One call of a product being tuned by use: run the next arm, time it, return its result."""
    plan = trial.next_arm()
    if plan.is_vendor:
        def run():
            return torch.matmul(a, b)
    else:
        if not (all_finite(low.a) and all_finite(low.b)):
            # the op would hand this call to torch.matmul (NaN/Inf rule): its time says nothing
            return low.finish(torch.ops.fastmm.mm(low.a, low.b, register_plan(plan)))
        key = register_plan(plan)
        try:   # compile before the timed region (memoised: the op's own build is then a lookup)
            backends.build(plan.factorization, plan.levels, plan.backend, plan.schedule,
                           backends.uses_tf32(low.a), plan.tile, plan.basis)
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot be built loses, it does not fail the call
            _settle(trial, trial.fail(plan, f"{type(exc).__name__}: {exc}"))
            return torch.matmul(a, b)

        def run():
            return low.finish(torch.ops.fastmm.mm(low.a, low.b, key))
    try:
        out, seconds = trial.rule.timer(plan, run)
    except Exception as exc:  # noqa: BLE001
        if plan.is_vendor:
            raise                                   # torch.matmul's own error is the user's error
        _settle(trial, trial.fail(plan, f"{type(exc).__name__}: {exc}"))
        return torch.matmul(a, b)
    _settle(trial, trial.record(plan, seconds))
    return out


def _settle(trial: Trial, verdict: Verdict | None) -> None:
    """Store a trial's verdict (winner, and the plans measured slower than torch.matmul)."""
    if verdict is None:
        return
    problem, tuning = trial.context
    key = cache_mod.CacheKey.of(problem)
    slower = tuple(p.key for p in verdict.slower)
    try:
        tuning.put(key, verdict.winner, verdict.medians, slower=slower)
    except OSError as exc:          # a read-only cache: keep the verdict for this process
        warnings.warn(f"fastmm: could not store a tuning verdict in {tuning.directory} ({exc})", stacklevel=3)
        tuning.remember(key, verdict.winner, slower)
    log.info("fastmm: %s: %s -> %s", key.shape_a, verdict.reason, verdict.winner.key)
    _decide_cached.cache_clear()
    _VENDOR_PLANNED.clear()


def forget_decisions() -> None:
    """Drop this process's memoised decisions, trials and calibrations (the files stay): the next
    call plans again from the tuning cache, e.g. after ``FASTMM_CACHE_DIR`` changed."""
    _decide_cached.cache_clear()
    _decide_forced.cache_clear()
    _VENDOR_PLANNED.clear()
    calibrate.forget()
    cache_mod.default_cache().clear_memory()


def decide_for(a: torch.Tensor, b: torch.Tensor, config: PlannerConfig = DEFAULT_CONFIG, algorithm=None,
               levels=None, backend=None, measure: bool = True) -> Decision:
    """The decision for canonical operands (memoised per problem when nothing is forced)."""
    problem = Problem.of(a, b)
    if algorithm is None and levels is None and backend is None:
        return _decide_cached(problem, config, str(cache_mod.default_dir()), measure)
    if isinstance(algorithm, os.PathLike):
        algorithm = os.fspath(algorithm)
    return _decide_forced(problem, config, algorithm, levels, backend)


set_auto_planner(decide_for)


@functools.lru_cache(maxsize=1024)
def _decide_forced(problem: Problem, config: PlannerConfig, algorithm, levels, backend) -> Decision:
    return decide(problem, config, algorithm, levels, backend)


@dataclass(frozen=True)
class Explanation:
    problem: Problem | None
    decision: Decision

    def __str__(self) -> str:
        lines = []
        if self.problem is not None:
            p = self.problem
            lines.append(f"product: {p.batch} × ({p.n}×{p.k}) @ ({p.k}×{p.p}), {p.dtype}, {p.device}, "
                         f"fp32 precision {p.precision!r}")
        lines.append(f"runs: {self.decision.plan.describe()}")
        lines.append(f"why: {self.decision.reason}")
        if self.decision.cost is not None:
            lines.append(f"cost constants: {self.decision.cost.describe()}")
        if self.decision.candidates:
            lines.append("candidates (predicted by the cost model):")
            vendor = next((s.predicted_s for s in self.decision.candidates if s.plan.is_vendor), None)
            for s in self.decision.candidates:
                if s.refused:
                    lines.append(f"  refused  {s.plan.key}: {s.refused}")
                else:
                    speed = f"{vendor / s.predicted_s:.3f}× torch.matmul" if vendor else ""
                    lines.append(f"  {s.predicted_s * 1e3:10.3f} ms  {speed:>22}  {s.plan.key}")
        return "\n".join(lines)

    @property
    def plan(self) -> Plan:
        return self.decision.plan


def explain(a: torch.Tensor, b: torch.Tensor, *, algorithm=None, levels=None, backend=None,
            config: PlannerConfig | None = None) -> Explanation:
    """Which plan ``fastmm.matmul(a, b, ...)`` would run, and why (runs nothing: constants not yet
    measured on this machine show as defaults, and a product being tuned by use says so)."""
    cfg = config or DEFAULT_CONFIG
    forced = algorithm is not None or levels is not None or backend is not None
    if a.dtype not in FAST_DTYPES or a.dtype != b.dtype:
        return Explanation(None, Decision(TORCH_MATMUL, f"dtype {a.dtype}/{b.dtype}: no fast plans"))
    if not forced and min(core_dims(a, b)) < cfg.reject_below:
        return Explanation(None, Decision(TORCH_MATMUL, f"fast reject: a core dimension of "
                                          f"{core_dims(a, b)} is below reject_below={cfg.reject_below}"))
    a, b = _autocast(a, b)
    low = lower(a, b)
    problem = Problem.of(low.a, low.b)
    return Explanation(problem, decide_for(low.a, low.b, cfg, algorithm, levels, backend, measure=False))


@dataclass(frozen=True)
class TuneResult:
    problem: Problem
    winner: Plan
    timings: tuple[Scored, ...]

    def __str__(self) -> str:
        rows = [f"tuned {self.problem.batch} × ({self.problem.n}×{self.problem.k}) @ "
                f"({self.problem.k}×{self.problem.p}) {self.problem.dtype}: winner {self.winner.key}"]
        for s in self.timings:
            t = "refused" if s.refused else ("failed" if s.measured_s == math.inf else f"{s.measured_s * 1e3:.3f} ms")
            rows.append(f"  {t:>14}  {s.plan.key}")
        return "\n".join(rows)


def _progress(total: int, enabled: bool):
    """A rich progress bar when rich is installed, else tqdm, else nothing."""
    if not enabled:
        return None
    try:
        from rich.progress import Progress
        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("fastmm tune", total=total)
        return (lambda desc: bar.update(task, advance=1, description=desc)), bar.stop
    except ImportError:
        pass
    try:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="fastmm tune", leave=False)

        def step(desc: str) -> None:
            bar.set_description(desc)
            bar.update(1)
        return step, bar.close
    except ImportError:
        return None


def _measure(plan: Plan, a: torch.Tensor, b: torch.Tensor, reps: int) -> float:
    """Median seconds of ``plan`` on (a, b), synchronised; any failure scores as infinitely slow."""
    sync = torch.cuda.synchronize if a.device.type == "cuda" else (lambda: None)
    try:
        execute(plan, a, b)               # warm-up (and compilation)
        sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            execute(plan, a, b)
            sync()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]
    except Exception:  # noqa: BLE001 - a failing candidate loses, it does not stop tuning
        return math.inf


def _tune_problem(problem: Problem, config: PlannerConfig, tuning: cache_mod.TuningCache, reps: int,
                  progress: bool) -> TuneResult:
    def operand(rows: int, cols: int, strides: tuple[int, ...]) -> torch.Tensor:
        shape = (problem.batch, rows, cols) if problem.batch > 1 else (rows, cols)
        t = torch.empty_strided(shape, strides, dtype=problem.dtype, device=problem.device)
        return t.normal_() if t.numel() else t

    a = operand(problem.n, problem.k, problem.strides_a)
    b = operand(problem.k, problem.p, problem.strides_b)
    scored = rank(problem, config)
    bar = _progress(len(scored), progress)
    timings = []
    try:
        for s in scored:
            if bar:
                bar[0](s.plan.key)
            if s.refused:
                timings.append(s)
                continue
            t = _measure(s.plan, a, b, reps)
            timings.append(Scored(s.plan, s.predicted_s, None, t))
    finally:
        if bar:
            bar[1]()
    measured = [s for s in timings if s.measured_s is not None]
    winner = min(measured, key=lambda s: s.measured_s).plan
    vendor_s = next(s.measured_s for s in measured if s.plan.is_vendor)
    slower = tuple(s.plan.key for s in measured if not s.plan.is_vendor and s.measured_s >= vendor_s)
    tuning.put(cache_mod.CacheKey.of(problem), winner,
               {s.plan.key: s.measured_s for s in measured if math.isfinite(s.measured_s)}, slower=slower)
    _decide_cached.cache_clear()
    _VENDOR_PLANNED.clear()
    return TuneResult(problem, winner, tuple(timings))


def tune(a: torch.Tensor, b: torch.Tensor, *, config: PlannerConfig | None = None, reps: int = 3,
         progress: bool = True, cache: cache_mod.TuningCache | None = None) -> TuneResult:
    """Measure every allowed candidate for ``a @ b``'s shapes, dtype and strides; cache the winner.

    The operands' values are not used (fresh random data of the same layout is measured), so
    this can run ahead of time. torch.matmul is always a candidate, so the winner is never
    slower than it was in this measurement.
    """
    cfg = config or DEFAULT_CONFIG
    a, b = _autocast(a, b)
    low = lower(a, b)
    problem = Problem.of(low.a, low.b)
    return _tune_problem(problem, cfg, cache or cache_mod.default_cache(), reps, progress)
