"""The planner: a flat list of candidates, the vendor plan always among them, ranked by cost.

For one problem (device, dtype, precision mode, shapes) the planner

1. lists candidates: ``TORCH_MATMUL`` plus every (factorization × levels × schedule × backend ×
   tile) that a backend declares for the device and dtype (``fastmm.backends.available``,
   ``Backend.schedules``, ``Backend.tiles``): only plans a backend accepts are ever built; and,
   for a factorization with a stored alternative basis (``factors/altbasis.json``), the same
   plans in that basis on every backend that declares it compiles them (``Backend.make_altbasis``);
2. refuses candidates whose predicted error growth exceeds the dtype's bound
   (``fastmm.accuracy``), whose leaf GEMMs would be smaller than ``min_leaf``, or that the tuning
   cache records as measured slower than torch.matmul for this problem;
3. ranks the rest with the cost model (``fastmm.cost``, with the backend's declared combination
   traffic for the schedule, and constants measured on this machine: ``fastmm.calibrate``), or
   takes the measured winner from the tuning cache when there is one (tuning by use,
   ``fastmm.tuning``; or ``fastmm.tune``).

A fast plan is chosen on the model alone only when it is predicted to beat torch.matmul by
``margin``: the model is calibrated, not exact, and a user must never regret calling
fastmm.matmul. By default (``FASTMM_AUTOTUNE`` unset) the runtime does not even trust that: it
measures the best candidates against torch.matmul on the user's first calls.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import torch

from compiler.algebra.factors import Factorization
from compiler.algebra.formats import load
from compiler.algebra.library import library_algorithm
from fastmm import accuracy, backends
from fastmm.cost import DeviceCost, default_cost, plan_time
from fastmm.plans import STANDARD, TORCH_MATMUL, Plan
from fastmm.tuning import TuneRule

FAST_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
STANDARD_BASIS, ALT_BASIS = "standard", "alt"   # the words of PlannerConfig.bases
# the reason of a decision taken from the tuning cache (the runtime starts no trial for those)
FROM_CACHE = "measured winner from the tuning cache"


@dataclass(frozen=True)
class PlannerConfig:
    """Everything the planner decides with; pass a modified copy instead of patching globals."""

    # Library algorithms tried by default (names for compiler.algebra.library.library_algorithm).
    # "4x4x4" is Winograd², "strassen2" Strassen² as one <4,4,4;49> level: its fused schedule does
    # one pass for what two Strassen levels do in two (fp64 8192³ on a 2-core AVX2 VM: combinations
    # 0.30-0.33 s against 0.40-0.46 s, docs/cpu.md); tuning by use measures it beside the others.
    algorithms: tuple[str, ...] = ("strassen", "winograd", "laderman", "4x4x4", "strassen2")
    max_levels: int = 3
    # Schedules to consider, per backend among those it declares (``Backend.schedules``); a
    # backend that offers none of them runs its default. Empty: every schedule each backend
    # declares, except one whose declared combination traffic (``Backend.traffic``) equals an
    # earlier one's: the model could not tell them apart (torch's "streaming" = "materialized").
    schedules: tuple[str, ...] = ()
    # True: one candidate per tile configuration the backend declares (``Backend.tiles``; for
    # fastmm.tune on a GPU). False: plans carry no tile and the backend uses its default/autotuner.
    tiles: bool = False
    # Bases to consider: STANDARD_BASIS (the algorithm as written) and/or ALT_BASIS (its stored
    # alternative basis, factors/altbasis.json, where it has one, on backends that declare
    # Backend.make_altbasis). ("alt",) with a forced algorithm forces the alternative basis.
    bases: tuple[str, ...] = (STANDARD_BASIS, ALT_BASIS)
    # Backends to consider; None: every backend that runs natively on the device. Naming one
    # also admits it where it only runs interpreted (Triton on a CPU under TRITON_INTERPRET=1).
    backends: tuple[str, ...] | None = None
    # Leaf GEMMs below this dimension lose more to BLAS inefficiency and per-op overhead than
    # they save (cost model: on the development CPU a 256³ GEMM runs at ~50 % of peak).
    min_leaf: int = 256
    # Fast reject before any planning: if any core dimension of the product is below this, the
    # call goes to torch.matmul directly. Chosen from the cost model's crossover on the
    # development CPU (no plan is predicted to win below N ≈ 2900 in fp32; see
    # ``crossover()``), with a factor-2 safety margin, and low enough for GPUs.
    reject_below: int = 1024
    # A fast plan must be predicted this much faster than torch.matmul to be chosen.
    margin: float = 0.05
    # None: follow the environment variable FASTMM_AUTOTUNE: unset or "1": tune by use (the first
    # calls of an undecided product measure the candidates, fastmm.tuning); "eager": measure every
    # candidate on the first call (what fastmm.tune does); "0": the cost model alone.
    # True = "use", False = "0".
    autotune: bool | str | None = None
    tuning: TuneRule = TuneRule()         # the statistical rule of tuning by use
    cost: DeviceCost | None = None        # None: measured on this machine (fastmm.calibrate), else defaults

    def autotune_mode(self) -> str:
        """"use", "eager" or "off"."""
        value = self.autotune
        if value is None:
            value = os.environ.get("FASTMM_AUTOTUNE", "1")
        if value is True:
            return "use"
        if value is False or str(value).lower() in ("0", "false", "off", "no"):
            return "off"
        return "eager" if str(value).lower() == "eager" else "use"

    def autotune_enabled(self) -> bool:
        return self.autotune_mode() != "off"


DEFAULT_CONFIG = PlannerConfig()


def precision_mode(device: torch.device) -> str:
    """The fp32 matmul precision torch is using now (part of every cache key)."""
    mode = torch.get_float32_matmul_precision()
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        mode = "tf32"
    return mode


@dataclass(frozen=True)
class Problem:
    """One product after lowering: ``batch`` × (n, k) @ (k, p)."""

    n: int
    k: int
    p: int
    batch: int
    dtype: torch.dtype
    device: torch.device
    precision: str
    strides_a: tuple[int, ...] = ()
    strides_b: tuple[int, ...] = ()

    @classmethod
    def of(cls, a: torch.Tensor, b: torch.Tensor) -> "Problem":
        """From canonical operands (2-D, or 3-D with equal batch; see fastmm.semantics)."""
        batch = a.shape[0] if a.dim() == 3 else 1
        return cls(a.shape[-2], a.shape[-1], b.shape[-1], batch, a.dtype, a.device,
                   precision_mode(a.device), tuple(a.stride()), tuple(b.stride()))

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.n * self.k * self.p


@dataclass(frozen=True)
class Scored:
    plan: Plan
    predicted_s: float            # cost-model seconds (inf when refused)
    refused: str | None = None    # why the plan may not run here
    measured_s: float | None = None


@dataclass(frozen=True)
class Decision:
    plan: Plan
    reason: str
    candidates: tuple[Scored, ...] = field(default=())
    cost: DeviceCost | None = None                  # the constants the candidates were scored with
    trial: object = field(default=None, compare=False)   # a fastmm.tuning.Trial while tuning by use


@functools.lru_cache(maxsize=64)
def _library(name: str) -> Factorization:
    return library_algorithm(name)


def resolve_algorithm(algorithm) -> Factorization:
    """A Factorization from a Factorization, a factor-file path, or a library name."""
    if isinstance(algorithm, Factorization):
        return algorithm.require_real()
    text = os.fspath(algorithm)
    if os.path.exists(text):
        found = load(text)
        if not found:
            raise ValueError(f"{text}: no factorization in file")
        return min(found, key=lambda f: f.rank).require_real()
    return _library(text).require_real()


def _schedules(backend: str, config: PlannerConfig) -> tuple[str, ...]:
    """The schedules the planner tries on ``backend``: ``config.schedules`` among those it offers
    (its default if none), or, with none configured, each declared one whose combination traffic
    differs from every earlier one's."""
    offered = backends.schedules(backend)
    if config.schedules:
        chosen = tuple(s for s in config.schedules if s in offered)
        return chosen or offered[:1]
    distinct: dict = {}
    for s in offered:
        distinct.setdefault(backends.traffic(backend, s), s)
    return tuple(distinct.values())


def candidates(problem: Problem, config: PlannerConfig = DEFAULT_CONFIG, algorithm=None,
               levels: int | None = None, backend: str | None = None) -> list[Plan]:
    """The flat candidate list; the vendor plan first (unless a specific plan was asked for)."""
    out: list[Plan] = []
    if algorithm is None and levels is None and backend is None:
        out.append(TORCH_MATMUL)
    if problem.dtype not in FAST_DTYPES:
        return out or [TORCH_MATMUL]
    algos = [resolve_algorithm(algorithm)] if algorithm is not None else [
        _library(name) for name in config.algorithms]
    wanted = (backend,) if backend is not None else config.backends
    names = backends.available(problem.device.type, problem.dtype, interpreted=wanted is not None)
    if wanted is not None:
        names = tuple(x for x in names if x in wanted)
    level_range = [levels] if levels is not None else range(1, config.max_levels + 1)
    unknown = set(config.bases) - {STANDARD_BASIS, ALT_BASIS}
    if unknown:
        raise ValueError(f"PlannerConfig.bases: unknown {', '.join(sorted(unknown))}; use "
                         f"{STANDARD_BASIS!r} and/or {ALT_BASIS!r}")
    for f in algos:
        bases = [STANDARD] if STANDARD_BASIS in config.bases else []
        if ALT_BASIS in config.bases:
            alt = backends.stored_basis(f)
            if alt is not None:
                bases.append(alt.digest)
            elif algorithm is not None and not bases:
                raise ValueError(_no_stored_basis(f))
        for name in names:
            tiles = (backends.tiles(name) if config.tiles else ()) or (None,)
            for basis in bases:
                if basis != STANDARD and not backends.alt_bases(name):
                    continue
                for lv in level_range:
                    for schedule in _schedules(name, config):
                        for tile in tiles:
                            out.append(Plan(f.name or f.label(), f.digest, lv, schedule, name, tile, f, basis))
    if algorithm is not None and not out and STANDARD_BASIS not in config.bases and names:
        raise ValueError(f"an alternative-basis plan was asked for, but none of the backends "
                         f"{', '.join(names)} compiles alternative bases (Backend.make_altbasis)")
    return out


def _no_stored_basis(f: Factorization) -> str:
    return (f"an alternative-basis plan was asked for (PlannerConfig.bases=({ALT_BASIS!r},)), but "
            f"{f.name or f.label()} has no stored alternative basis (factors/altbasis.json; "
            "python -m compiler.algebra.altbasis adds one)")


def score(plan: Plan, problem: Problem, config: PlannerConfig, cost: DeviceCost, forced: bool = False,
          slower: frozenset[str] = frozenset()) -> Scored:
    itemsize = torch.empty((), dtype=problem.dtype).element_size()
    traffic = None if plan.is_vendor else backends.traffic(plan.backend, plan.schedule)
    alt = backends.altbasis(plan.factorization, plan.basis) if plan.is_alt_basis else None
    t = plan_time(plan, problem.n, problem.k, problem.p, cost, itemsize, problem.batch,
                  *(() if traffic is None else (traffic,)), alt=alt)
    if plan.is_vendor:
        return Scored(plan, t)
    if plan.key in slower and not forced:
        return Scored(plan, float("inf"), "measured slower than torch.matmul here (tuning cache)")
    f = plan.factorization
    growth = accuracy.error_growth(f, plan.levels)
    bound = accuracy.MAX_ERROR_GROWTH.get(problem.dtype, 1.0)
    if growth > bound:
        return Scored(plan, float("inf"), f"predicted error growth {growth:.3g} > bound {bound:.3g} for "
                                          f"{str(problem.dtype).replace('torch.', '')}")
    n0, m0, p0 = f.shape
    leaf = min(problem.n / n0 ** plan.levels, problem.k / m0 ** plan.levels, problem.p / p0 ** plan.levels)
    if leaf < config.min_leaf and not forced:
        return Scored(plan, float("inf"), f"leaf dimension {leaf:.0f} < min_leaf {config.min_leaf}")
    return Scored(plan, t)


def cost_of(problem: Problem, config: PlannerConfig) -> DeviceCost:
    return config.cost or default_cost(problem.device.type, problem.dtype)


def rank(problem: Problem, config: PlannerConfig = DEFAULT_CONFIG, algorithm=None, levels=None,
         backend=None, slower: frozenset[str] = frozenset()) -> list[Scored]:
    """All candidates scored, best predicted first; refused ones last (``slower``: keys of plans
    measured slower than torch.matmul for this problem)."""
    cost = cost_of(problem, config)
    forced = algorithm is not None or levels is not None or backend is not None
    scored = [score(p, problem, config, cost, forced, slower) for p in
              candidates(problem, config, algorithm, levels, backend)]
    return sorted(scored, key=lambda s: (s.refused is not None, s.predicted_s))


def decide(problem: Problem, config: PlannerConfig = DEFAULT_CONFIG, algorithm=None, levels=None,
           backend=None, cache=None) -> Decision:
    """The plan to run for ``problem`` and why."""
    forced = algorithm is not None or levels is not None or backend is not None
    if problem.dtype not in FAST_DTYPES:
        return Decision(TORCH_MATMUL, f"dtype {problem.dtype} has no fast plans; torch.matmul")
    if not forced and min(problem.n, problem.k, problem.p) < config.reject_below:
        return Decision(TORCH_MATMUL, f"smallest dimension {min(problem.n, problem.k, problem.p)} < "
                                      f"reject_below {config.reject_below}; torch.matmul")
    missing = backends.unavailable_reason()
    if missing:
        if forced:
            raise RuntimeError(f"cannot run a fast plan: {missing}")
        return Decision(TORCH_MATMUL, f"{missing}; torch.matmul")
    slower = cache.slower_for(problem) if cache is not None and not forced else frozenset()
    scored = rank(problem, config, algorithm, levels, backend, slower)
    cost = cost_of(problem, config)
    usable = [s for s in scored if s.refused is None]
    if forced:
        if not usable:
            why = "; ".join(f"{s.plan.key}: {s.refused}" for s in scored) or "no backend supports this device"
            raise ValueError(f"no allowed plan for the requested algorithm/levels/backend: {why}")
        return Decision(usable[0].plan, "requested explicitly", tuple(scored), cost)
    if cache is not None:
        hit = cache.lookup(problem)
        if hit is not None:
            return Decision(hit, FROM_CACHE, tuple(scored), cost)
    vendor = next(s for s in scored if s.plan.is_vendor)
    best = usable[0]
    if best.plan.is_vendor or best.predicted_s > vendor.predicted_s * (1 - config.margin):
        return Decision(TORCH_MATMUL, f"no plan predicted ≥{config.margin:.0%} faster than torch.matmul",
                        tuple(scored), cost)
    return Decision(best.plan, f"cost model: {vendor.predicted_s / best.predicted_s:.3f}× torch.matmul predicted",
                    tuple(scored), cost)


def trial_candidates(decision: Decision, config: PlannerConfig) -> list[Plan]:
    """The fast plans tuning by use measures: the ``config.tuning.candidates`` best by the model
    among those not refused and predicted at most ``slack`` slower than torch.matmul, at most one
    per (block shape, rank, levels, backend, schedule): Strassen and Winograd at the same levels
    differ by a few additions the model already prices, so measuring both would waste a slot that
    a different depth or algorithm can use. The basis is not part of that kind: an algorithm in
    its alternative basis runs the same leaf GEMMs and differs only in its additions (a sparser
    core, plus O(N²) transforms per level), which the model prices too, so the better-predicted
    of the two takes the slot (``fastmm.tune`` still measures both)."""
    vendor = next((s for s in decision.candidates if s.plan.is_vendor), None)
    if vendor is None:
        return []
    limit = vendor.predicted_s * (1 + config.tuning.slack)
    chosen: dict[tuple, Plan] = {}
    for s in decision.candidates:
        if s.refused is not None or s.plan.is_vendor or s.predicted_s > limit:
            continue
        f = s.plan.factorization
        kind = (f.shape, f.rank, s.plan.levels, s.plan.backend, s.plan.schedule) if f is not None else s.plan.key
        chosen.setdefault(kind, s.plan)
        if len(chosen) == config.tuning.candidates:
            break
    return list(chosen.values())


def crossover(dtype: torch.dtype = torch.float32, device: str = "cpu", config: PlannerConfig = DEFAULT_CONFIG,
              sizes=tuple(range(256, 16385, 128))) -> int | None:
    """The smallest square size at which the cost model prefers a fast plan (None: never)."""
    dev = torch.device(device)
    relaxed = PlannerConfig(**{**config.__dict__, "reject_below": 0, "autotune": False})
    for size in sizes:
        prob = Problem(size, size, size, 1, dtype, dev, "highest")
        if not decide(prob, relaxed).plan.is_vendor:
            return size
    return None
