"""Operand preparation shared by the GPU launchers: torch.matmul's batch broadcasting, flattened."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Batched(NamedTuple):
    """``a3`` (B, M, K) and ``b3`` (B, K, N) over the broadcast ``batch``; ``done`` is the whole
    result when the problem is empty (a zero size, or K = 0), else None."""

    batch: torch.Size
    a3: torch.Tensor | None
    b3: torch.Tensor | None
    done: torch.Tensor | None


def batched_operands(a: torch.Tensor, b: torch.Tensor) -> Batched:
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    if min(M, N) == 0 or math.prod(batch) == 0:
        return Batched(batch, None, None, torch.empty((*batch, M, N), dtype=a.dtype, device=a.device))
    if K == 0:
        return Batched(batch, None, None, torch.zeros((*batch, M, N), dtype=a.dtype, device=a.device))
    a3 = a.expand(*batch, M, K).reshape(-1, M, K)  # a view when a is already 3-D or 2-D
    b3 = b.expand(*batch, K, N).reshape(-1, K, N)
    return Batched(batch, a3, b3, None)
