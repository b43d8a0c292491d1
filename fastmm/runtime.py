"""``fastmm.matmul``, ``fastmm.explain`` and ``fastmm.tune``.

``matmul`` is torch.matmul with a planner in front. The order of work is chosen so that the
common case costs nothing: products too small for any fast plan (or of a dtype without fast
plans) are handed to torch.matmul after a few integer comparisons, before any validation,
planning or custom-op dispatch. Only large products are lowered to canonical form
(``fastmm.semantics``), planned (``fastmm.planner``), and, when a fast plan wins, run through the
``fastmm::mm`` custom op (``fastmm.ops``), which carries autograd and the NaN/Inf rule.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import time
import warnings
from dataclasses import dataclass

import torch

from fastmm import cache as cache_mod
from fastmm.ops import auto_key, execute, register_plan, set_auto_planner
from fastmm.planner import (DEFAULT_CONFIG, FAST_DTYPES, Decision, PlannerConfig, Problem, Scored, decide,
                            precision_mode, rank)
from fastmm.plans import TORCH_MATMUL, Plan
from fastmm.semantics import core_dims, lower

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
def _decide_cached(problem: Problem, config: PlannerConfig, cache_dir: str) -> Decision:
    tuning = cache_mod.default_cache() if str(cache_mod.default_dir()) == cache_dir else None
    if tuning is not None and config.autotune_enabled() and tuning.lookup(problem) is None:
        _tune_problem(problem, config, tuning, reps=3, progress=True)
    return decide(problem, config, cache=tuning)


def decide_for(a: torch.Tensor, b: torch.Tensor, config: PlannerConfig = DEFAULT_CONFIG, algorithm=None,
               levels=None, backend=None) -> Decision:
    """The decision for canonical operands (memoised per problem when nothing is forced)."""
    problem = Problem.of(a, b)
    if algorithm is None and levels is None and backend is None:
        return _decide_cached(problem, config, str(cache_mod.default_dir()))
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
    """Which plan ``fastmm.matmul(a, b, ...)`` would run, and why (runs nothing)."""
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
    return Explanation(problem, decide_for(low.a, low.b, cfg, algorithm, levels, backend))


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
    tuning.put(cache_mod.CacheKey.of(problem), winner,
               {s.plan.key: s.measured_s for s in measured if math.isfinite(s.measured_s)})
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
