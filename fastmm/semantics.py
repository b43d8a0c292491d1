"""torch.matmul's semantics, reduced to the 2-D (or same-batch 3-D) products a plan can run.

``torch.matmul`` accepts 1-D operands (a vector is a row on the left and a column on the
right, and that dimension is dropped from the result), and broadcasts batch dimensions. A plan
only multiplies matrices, so :func:`lower` rewrites a call into one of two canonical forms and
says how to put the result back:

* ``mm``: one (n, m) @ (m, p) product. Used for 2-D @ 2-D and whenever ``b`` has no batch of
  its own: the batch of ``a`` then folds into its rows (this is what torch itself does, and it
  turns many small products into one large one, which is where fast algorithms pay).
* ``bmm``: (B, n, m) @ (B, m, p) with the batch already broadcast.

Errors are torch's own: shapes are checked by running ``torch.matmul`` on meta tensors, and when
that fails the real ``torch.matmul`` is called to raise (it validates before computing), so a
mismatch raises exactly the exception and message ``torch.matmul`` raises on that device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Lowered:
    """A canonical product and the view that turns its result into torch.matmul's result."""

    a: torch.Tensor                 # (n, m) or (B, n, m)
    b: torch.Tensor                 # (m, p) or (B, m, p)
    out_shape: tuple[int, ...]      # torch.matmul's result shape

    @property
    def batched(self) -> bool:
        return self.a.dim() == 3

    def finish(self, c: torch.Tensor) -> torch.Tensor:
        return c.reshape(self.out_shape)


def result_shape(a: torch.Tensor, b: torch.Tensor) -> tuple[int, ...]:
    """torch.matmul's result shape, or torch.matmul's own exception for incompatible operands."""
    meta_a = torch.empty(a.shape, dtype=a.dtype, device="meta")
    meta_b = torch.empty(b.shape, dtype=b.dtype, device="meta")
    try:
        return tuple(torch.matmul(meta_a, meta_b).shape)
    except Exception:
        # Meta kernels word some errors differently from the device's: let the real
        # torch.matmul raise (it checks shapes before computing anything).
        torch.matmul(a, b)
        raise


def lower(a: torch.Tensor, b: torch.Tensor) -> Lowered:
    """Rewrite ``torch.matmul(a, b)`` as one 2-D product or one same-batch 3-D product."""
    out_shape = result_shape(a, b)            # raises torch's error on bad shapes / 0-D operands
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    n, m = a2.shape[-2:]
    p = b2.shape[-1]
    if b2.dim() == 2:
        # b has no batch: fold a's batch into its rows; reshape copies only if a's batch strides
        # do not allow a view (torch.matmul does the same).
        rows = math.prod(a2.shape[:-1])
        return Lowered(a2.reshape(rows, m), b2, out_shape)
    batch = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    nb = math.prod(batch)
    a3 = a2.expand(*batch, n, m).reshape(nb, n, m)
    b3 = b2.expand(*batch, m, p).reshape(nb, m, p)
    return Lowered(a3, b3, out_shape)


def core_dims(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int]:
    """(rows, inner, cols) of the matrix product inside ``torch.matmul(a, b)``, from shapes only.

    Cheap (no tensor is made) and used by the fast reject before any validation; for invalid
    shapes the numbers mean nothing and the caller lets torch.matmul raise.
    """
    da, db = a.dim(), b.dim()
    m = a.shape[-1] if da else 0
    n = a.shape[-2] if da >= 2 else 1
    if db == 2 and da > 2:
        n = a.numel() // max(m, 1)            # a's batch folds into rows
    p = b.shape[-1] if db >= 2 else 1
    return n, m, p
