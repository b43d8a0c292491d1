"""From the planner to a Triton kernel: ``fastmm.matmul(..., backend="triton")`` and the planner's
own choice among Triton candidates, bit-exact on small integers (interpreter on CPU, or a GPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import fastmm
from fastmm import backends
from fastmm.cost import DeviceCost
from fastmm.planner import DEFAULT_CONFIG, Problem, candidates
from kernels.triton_backend import SCHEDULES


def ints(shape, seed, device):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, shape, generator=g).float().to(device)


def test_triton_declares_its_schedules():
    assert backends.schedules("triton") == SCHEDULES
    assert backends.schedules("torch") == ("materialized", "streaming", "fused")
    assert backends.schedules("cuda") == (backends.DEFAULT_SCHEDULE,)  # CUDA takes no schedule option


def test_candidates_are_plans_the_backend_accepts(device):
    a = torch.zeros(64, 64, device=device)
    problem = Problem.of(a, a) if hasattr(Problem, "of") else None
    if problem is None:
        pytest.skip("Problem has no constructor from tensors")
    cfg = dataclasses.replace(DEFAULT_CONFIG, backends=("triton", "torch"), schedules=())
    plans = [p for p in candidates(problem, cfg) if not p.is_vendor]
    assert {p.backend for p in plans} == {"triton", "torch"}
    for p in plans:
        assert p.schedule in backends.schedules(p.backend), p


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_forced_triton_plan_is_bit_exact(schedule, device):
    a, b = ints((45, 37), 1, device), ints((37, 41), 2, device)
    cfg = dataclasses.replace(DEFAULT_CONFIG, schedules=(schedule,))
    out = fastmm.matmul(a, b, algorithm="strassen", levels=1, backend="triton", config=cfg)
    assert torch.equal(out, a @ b)
    assert fastmm.explain(a, b, algorithm="strassen", levels=1, backend="triton", config=cfg).decision.plan.backend == "triton"


def test_planner_choice_among_triton_candidates_is_bit_exact(device):
    """No plan forced: the planner picks among torch.matmul and Triton plans. At a size the
    interpreter runs no fast plan wins on real speed numbers, so the test gives the planner a device
    whose GEMMs are slow and whose additions are free: the model must then pick a fused Triton
    plan (it pays for no materialized additions), and that plan must run and be exact."""
    a, b = ints((64, 64), 3, device), ints((64, 64), 4, device)
    slow_gemm = DeviceCost(peak_flops=1e6, half_size=1, bandwidth=1e15, op_overhead=0.0)
    cfg = dataclasses.replace(DEFAULT_CONFIG, backends=("triton",), algorithms=("strassen",), max_levels=1,
                              schedules=(), reject_below=1, min_leaf=1, autotune=False, cost=slow_gemm)
    decision = fastmm.explain(a, b, config=cfg).decision
    assert decision.plan.backend == "triton" and decision.plan.levels == 1
    assert torch.equal(fastmm.matmul(a, b, config=cfg), a @ b)
