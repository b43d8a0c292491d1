"""PyTorch integration: the fastmm::mm custom op, autograd, opcheck, torch.compile, autocast, precision."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fastmm
from fastmm import backends
from fastmm.ops import register_plan
from fastmm.planner import Problem, decide

needs_compiler = pytest.mark.skipif(backends.unavailable_reason() is not None,
                                    reason=str(backends.unavailable_reason()))


def _strassen_key(a, b, levels=1) -> str:
    plan = decide(Problem.of(a, b), algorithm="strassen", levels=levels).plan
    return register_plan(plan)


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@needs_compiler
@pytest.mark.parametrize("dims", [(9, 10, 11), (2, 16, 17, 18)], ids=["2d", "batched"])
def test_opcheck(dims):
    g = torch.Generator().manual_seed(0)
    if len(dims) == 3:
        a = torch.randn(dims[0], dims[1], generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(dims[1], dims[2], generator=g, dtype=torch.float64, requires_grad=True)
    else:
        a = torch.randn(dims[0], dims[1], dims[2], generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(dims[0], dims[2], dims[3], generator=g, dtype=torch.float64, requires_grad=True)
    for key in (_strassen_key(a.detach(), b.detach()), "auto", "auto:laderman:1:"):
        torch.library.opcheck(torch.ops.fastmm.mm.default, (a, b, key))


@needs_compiler
def test_gradients_are_correct_and_go_through_fastmm():
    # fp64 and a forced fast plan: gradcheck's finite differences (eps 1e-6) need fp64.
    g = torch.Generator().manual_seed(1)
    a = torch.randn(7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: fastmm.matmul(x, y, algorithm="strassen"), (a, b))
    out = fastmm.matmul(a, b, algorithm="strassen")
    rec = _OpRecorder()
    with rec:
        ga, gb = torch.autograd.grad(out.sum(), (a, b))
    assert sum("fastmm.mm" in op for op in rec.ops) == 2, rec.ops   # grad_a and grad_b both via fastmm
    ones = torch.ones(7, 5, dtype=torch.float64)
    assert torch.allclose(ga, ones @ b.detach().T) and torch.allclose(gb, a.detach().T @ ones)


@needs_compiler
def test_gradients_batched_broadcast():
    a = torch.randn(2, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, y: fastmm.matmul(x, y, algorithm="strassen"), (a, b))


@needs_compiler
@pytest.mark.parametrize("forced", [False, True])
def test_torch_compile_fullgraph(forced):
    kwargs = {"algorithm": "strassen", "levels": 2} if forced else {}

    def f(x, y):
        return torch.relu(fastmm.matmul(x, y, **kwargs)) + 1

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    # Small-integer data: exact in fp32 whatever the plan, so compiled == eager bit for bit.
    a = torch.randint(-3, 4, (33, 34)).float()
    b = torch.randint(-3, 4, (34, 35)).float()
    assert torch.equal(compiled(a, b), torch.relu(a @ b) + 1)


@needs_compiler
def test_torch_compile_with_grad():
    def f(x, y):
        return fastmm.matmul(x, y, algorithm="strassen").square().sum()

    # aot_eager runs dynamo (fullgraph), the fake impl and AOT autograd like inductor does, without
    # inductor's C++ compile (40 s on this shared 2-core machine; passes too, run by hand).
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    a = torch.randn(20, 21, dtype=torch.float64, requires_grad=True)
    b = torch.randn(21, 22, dtype=torch.float64, requires_grad=True)
    compiled(a, b).backward()
    ga, gb = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    (a @ b).square().sum().backward()
    # fp64, K = 21, one Strassen level: differences are a few ulps of |grad| (≈ 1e2); 1e-10 is
    # ~1e5 ulps of slack yet far below any real error.
    assert torch.allclose(ga, a.grad, rtol=1e-10, atol=1e-10) and torch.allclose(gb, b.grad, rtol=1e-10, atol=1e-10)


@needs_compiler
def test_autocast_cpu_bf16():
    a, b = torch.randn(40, 41), torch.randn(41, 42)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = torch.matmul(a, b)
        small = fastmm.matmul(a, b)                       # fast reject: torch.matmul under autocast
        forced = fastmm.matmul(a, b, algorithm="strassen")
    assert ref.dtype == small.dtype == forced.dtype == torch.bfloat16
    assert torch.equal(small, ref)
    # bf16 (u = 2**-8) through one Strassen level (growth ≤ 6) on K = 41: 0.05 normwise is ~13 u.
    exact = a.double() @ b.double()
    assert ((forced.double() - exact).norm() / exact.norm()) < 0.05


def test_precision_mode_is_part_of_the_problem():
    a = torch.randn(4, 4)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        p1 = Problem.of(a, a)
        torch.set_float32_matmul_precision("high")
        p2 = Problem.of(a, a)
    finally:
        torch.set_float32_matmul_precision(before)
    assert p1.precision == "highest" and p2.precision == "high" and p1 != p2


def test_fast_reject_does_not_touch_the_op():
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    rec = _OpRecorder()
    with rec:
        fastmm.matmul(a, b)
    assert not any("fastmm" in op for op in rec.ops), rec.ops
