"""``fastmm::mm``: the custom op that runs a plan, with a fake implementation and autograd.

The op multiplies canonical operands (2-D, or 3-D with equal batch; ``fastmm.semantics``). Its
string argument names the plan: a key registered by the runtime (``register_plan``), or
``"auto"``, which plans at run time on the real tensors (used under ``torch.compile``, where the
planner cannot run while tracing, and by the backward pass).

The NaN/Inf rule lives here, so it holds for every plan and for the gradients: a fast
algorithm's additions spread a NaN or Inf from one block into others (``a11 + a22`` feeds four
output blocks), so non-finite inputs go to torch.matmul, and so does a fast result that came out
non-finite from finite inputs (an intermediate sum overflowed). Either way the non-finite
values land exactly where torch.matmul puts them. The check is one sum per operand.
"""

from __future__ import annotations

from typing import Callable

import torch

from fastmm import backends
from fastmm.plans import TORCH_MATMUL, VENDOR, Plan

AUTO = "auto"
_PLANS: dict[str, Plan] = {VENDOR: TORCH_MATMUL}
# how "auto" plans: fastmm.runtime installs its decide_for at import (the runtime imports this
# module, so this module cannot import the runtime)
_AUTO_PLANNER: list[Callable[..., object]] = []


def set_auto_planner(decide_for: Callable[..., object]) -> None:
    """Install ``decide_for(a, b, algorithm=, levels=, backend=) -> Decision`` for ``"auto"`` keys."""
    _AUTO_PLANNER[:] = [decide_for]


def register_plan(plan: Plan) -> str:
    """Make ``plan`` runnable by key through the op; returns the key."""
    _PLANS.setdefault(plan.key, plan)
    return plan.key


def all_finite(x: torch.Tensor) -> bool:
    """True when ``x`` holds no NaN/Inf: one reduction, no temporary of x's size.

    A sum is finite only if every term is; it can also overflow on finite data, which only
    sends the product to torch.matmul (safe). Half-precision sums accumulate in fp32.
    """
    if x.numel() == 0:
        return True
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    return bool(torch.isfinite(x.sum(dtype=acc)))


def execute(plan: Plan, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Run ``plan`` on canonical operands, honouring the NaN/Inf rule."""
    if plan.is_vendor or a.numel() == 0 or b.numel() == 0:
        return torch.matmul(a, b)
    if not (all_finite(a) and all_finite(b)):
        return torch.matmul(a, b)
    run = backends.build(plan.factorization, plan.levels, plan.backend, plan.schedule, backends.uses_tf32(a),
                         plan.tile, plan.basis)
    c = run(a, b)                          # compiled callables take 2-D and same-batch 3-D
    if not all_finite(c):
        return torch.matmul(a, b)
    return c


def auto_key(algorithm: str | None = None, levels: int | None = None, backend: str | None = None) -> str:
    """The op argument that plans at run time, optionally with a forced algorithm/levels/backend."""
    if algorithm is None and levels is None and backend is None:
        return AUTO
    return f"{AUTO}:{algorithm or ''}:{'' if levels is None else levels}:{backend or ''}"


def _resolve(plan_key: str, a: torch.Tensor, b: torch.Tensor) -> Plan:
    if plan_key == AUTO or plan_key.startswith(AUTO + ":"):
        if not _AUTO_PLANNER:
            raise RuntimeError("fastmm::mm: 'auto' plans need the runtime; import fastmm")
        decide_for = _AUTO_PLANNER[0]
        rest = plan_key[len(AUTO) + 1:]
        algorithm, levels, backend = rest.rsplit(":", 2) if rest else ("", "", "")   # paths may hold ':'
        return decide_for(a, b, algorithm=algorithm or None, levels=int(levels) if levels else None,
                          backend=backend or None).plan
    try:
        return _PLANS[plan_key]
    except KeyError:
        raise ValueError(f"fastmm::mm: unknown plan {plan_key!r} (not registered in this process)") from None


@torch.library.custom_op("fastmm::mm", mutates_args=())
def mm(a: torch.Tensor, b: torch.Tensor, plan: str) -> torch.Tensor:
    """a @ b for canonical operands, computed by ``plan``."""
    out = execute(_resolve(plan, a, b), a, b)
    # A custom op must not return a view of (or the same tensor as) an input.
    return out if out.is_contiguous() else out.contiguous()


@mm.register_fake
def _mm_fake(a: torch.Tensor, b: torch.Tensor, plan: str) -> torch.Tensor:
    torch._check(a.shape[-1] == b.shape[-2], lambda: "fastmm::mm: inner dimensions differ")
    return a.new_empty((*a.shape[:-1], b.shape[-1]))


def _setup_context(ctx, inputs, output) -> None:
    a, b, _ = inputs
    ctx.save_for_backward(a, b)


def _backward(ctx, grad: torch.Tensor):
    a, b = ctx.saved_tensors
    grad_a = grad_b = None
    # The gradients are products too, and they go through fastmm (planned at run time).
    if ctx.needs_input_grad[0]:
        grad_a = torch.ops.fastmm.mm(grad, b.mT, AUTO)
    if ctx.needs_input_grad[1]:
        grad_b = torch.ops.fastmm.mm(a.mT, grad, AUTO)
    return grad_a, grad_b, None


mm.register_autograd(_backward, setup_context=_setup_context)
