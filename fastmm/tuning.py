"""Tuning by use: the first calls of an undecided product measure the best candidates for free.

For a product whose shapes, dtype, strides and device have no decision in the tuning cache yet,
``fastmm.matmul`` does not trust the cost model alone: its first calls alternate torch.matmul and
the best fast candidates by the model. Every one of these calls computes the real result (it is
returned), so the only price is that some calls run the slower candidate. Once the difference is
clear the winner is stored in the tuning cache and used from then on; a candidate measured slower
than torch.matmul is stored as such and never chosen again.

The rule (``TuneRule``, defaults in brackets), chosen to hold under the ±8 % run-to-run noise of
a shared 2-core CPU:

1. Arms: torch.matmul and the ``candidates`` [2] best fast plans by the cost model among those
   predicted no more than ``slack`` [15 %] slower than torch.matmul (the model is a prior, not a
   verdict) and not already measured slower; at most one per (block shape, rank, levels,
   backend, schedule), so that the slots go to different depths or algorithms.
2. Each call runs the live arm with the fewest timings (ties: torch.matmul first, then the model's
   order), so the arms interleave A-B-C-A-B-C and slow drift of the machine's speed hits all alike.
3. The first ``warmup`` [1] timing of each arm is discarded (first touch of workspaces, BLAS
   thread wake-up). Compilation happens before the timed region.
4. Once every live arm has ``min_samples`` [3] timings, and as many as it takes for torch.matmul's
   kept timings to add up to ``min_seconds`` [1 s] (at most ``max_samples``: a 0.1 s product
   takes 8 timings per arm, an 8 s one 3), with T = the median of torch.matmul's:
   - a candidate whose median is ≥ T is dropped, and recorded as slower than torch.matmul;
   - a candidate *wins* if its median is ≤ T·(1 − ``margin``) [3 %] and its slowest timing is
     below T (every one of its timings beat the typical torch call), and no live candidate has
     a lower median;
   - in between (a tie within the margin) sampling goes on.
5. When no candidate is left, or torch.matmul has ``max_samples`` [8] timings with no winner
   (the budget: at most (1 + candidates)·(warmup + max_samples) calls), torch.matmul is kept.
   Ties therefore go to torch.matmul.

Nothing is timed while torch.compile traces (the runtime never starts a trial there), and the
timed call is the same custom-op call a decided plan makes, NaN/Inf rule included: a call whose
operands hold NaN/Inf is run but not timed (the op would route it to torch.matmul). A fast plan
whose result overflowed falls back to torch.matmul inside the op and is timed with that extra
work, which only biases the rule against the fast plan: the safe direction.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from fastmm.plans import Plan

#: ``timer(plan, run) -> (result, seconds)``: runs ``run()`` once and says how long it took
Timer = Callable[[Plan, Callable[[], Any]], tuple[Any, float]]


def wall_timer(plan: Plan, run: Callable[[], Any]) -> tuple[Any, float]:
    """Wall-clock seconds of one call, synchronised on CUDA (both ends) so the kernel time counts."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = run()
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


@dataclass(frozen=True)
class TuneRule:
    """The statistical rule of tuning by use (see the module docstring); part of PlannerConfig."""

    candidates: int = 2          # fast plans measured against torch.matmul
    slack: float = 0.15          # candidates predicted up to this much slower than torch are tried
    warmup: int = 1              # first timings of each arm discarded
    min_samples: int = 3         # timings per live arm before any verdict
    margin: float = 0.03         # a winner's median must beat torch's by this fraction
    min_seconds: float = 1.0     # kept torch.matmul time before a verdict (short products: more timings)
    max_samples: int = 8         # torch.matmul timings after which torch is kept (the call budget)
    timer: Timer = field(default=wall_timer, compare=False)   # tests pass a fake clock


@dataclass
class Verdict:
    winner: Plan                  # the plan kept (torch.matmul when no candidate won)
    slower: tuple[Plan, ...]      # candidates measured slower than torch.matmul
    medians: dict[str, float]     # plan key -> median seconds of its kept timings
    reason: str


class Trial:
    """The state of one undecided product: the arms, their timings, and the verdict once reached."""

    def __init__(self, vendor: Plan, candidates: list[Plan], rule: TuneRule):
        self.rule = rule
        self.arms: list[Plan] = [vendor] + list(candidates)
        self.vendor = vendor
        self.live: list[Plan] = list(self.arms)
        self.seen: dict[str, int] = {p.key: 0 for p in self.arms}
        self.samples: dict[str, list[float]] = {p.key: [] for p in self.arms}
        self.dropped: list[Plan] = []
        self.verdict: Verdict | None = None
        self.context: object = None       # the runtime's (problem, cache) for storing the verdict
        self._lock = threading.Lock()

    def next_arm(self) -> Plan:
        """The plan the next call runs: the live arm with the fewest timings (first in order on ties)."""
        with self._lock:
            if self.verdict is not None:
                return self.verdict.winner
            return min(self.live, key=lambda p: self.seen[p.key])

    def record(self, plan: Plan, seconds: float) -> Verdict | None:
        """Add one timing of ``plan``; returns the verdict when this timing settles the trial."""
        with self._lock:
            if self.verdict is not None or plan not in self.live:
                return None
            self.seen[plan.key] += 1
            if self.seen[plan.key] > self.rule.warmup:
                self.samples[plan.key].append(seconds)
            self.verdict = self._judge()
            return self.verdict

    def fail(self, plan: Plan, why: str) -> Verdict | None:
        """``plan`` could not run: it is out (scored as infinitely slow, recorded as slower)."""
        with self._lock:
            if self.verdict is not None or plan not in self.live or plan.is_vendor:
                return None
            self.live.remove(plan)
            self.dropped.append(plan)
            self.verdict = self._judge() if len(self.live) > 1 else self._done(self.vendor, f"{plan.key} failed ({why})")
            return self.verdict

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.samples.items() if v}

    def _judge(self) -> Verdict | None:
        r = self.rule
        if any(len(self.samples[p.key]) < r.min_samples for p in self.live):
            return None
        t = statistics.median(self.samples[self.vendor.key])
        # short products are noisier per call: sample until torch.matmul's timings add up to min_seconds
        needed = max(r.min_samples, min(r.max_samples, math.ceil(r.min_seconds / max(t, 1e-9))))
        if any(len(self.samples[p.key]) < needed for p in self.live):
            return None
        for p in [p for p in self.live if p is not self.vendor]:
            if statistics.median(self.samples[p.key]) >= t:
                self.live.remove(p)
                self.dropped.append(p)
        fast = [p for p in self.live if p is not self.vendor]
        if not fast:
            return self._done(self.vendor, "no candidate beat torch.matmul's median")
        best = min(fast, key=lambda p: statistics.median(self.samples[p.key]))
        times = self.samples[best.key]
        if statistics.median(times) <= t * (1 - r.margin) and max(times) < t:
            return self._done(best, f"median {statistics.median(times) * 1e3:.3f} ms ≤ {1 - r.margin:.2f} × "
                                    f"torch.matmul's {t * 1e3:.3f} ms, slowest {max(times) * 1e3:.3f} ms below it")
        if len(self.samples[self.vendor.key]) >= r.max_samples:
            return self._done(self.vendor, f"no clear winner after {r.max_samples} timings each (a tie goes "
                                           "to torch.matmul)")
        return None

    def _done(self, winner: Plan, reason: str) -> Verdict:
        n = "/".join(str(len(self.samples[p.key])) for p in self.arms)
        return Verdict(winner, tuple(self.dropped), self.medians(), f"tuning by use ({n} timings kept): {reason}")


__all__ = ["Timer", "Trial", "TuneRule", "Verdict", "wall_timer"]
