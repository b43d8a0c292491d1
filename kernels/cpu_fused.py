"""Fused block combinations: the ``Fused`` steps of the torch backend's "fused" schedule.

A ``Table`` is one fused step as data (``compiler.ir.schedule.Fused``, rendered by
``compiler.codegen.emit_torch``): ``entries[k] = Σ coef·src`` where ``src < len(srcs)`` names an
input buffer and a larger index the entry ``src - len(srcs)``; then, for each output
``(k, d, accumulate)``, ``dsts[d] (= | +=) entries[k]``. Everything is read before anything is
written, so a dst may also be a src (a c-block that holds a product and then its output).

``combine(table, srcs, dsts)`` runs it on equal-shaped (B, rows, cols) tensors:

- on the CPU, fp32/fp64, last dimension contiguous, with the extension ``kernels._cpu_fused``
  built (the package's optional build, OpenMP): one pass over the blocks, tile by tile
  (``kernels/_cpu_fused.c``), on ``torch.get_num_threads()`` threads; it allocates nothing;
- anywhere else (no extension, CUDA, fp16/bf16, a strided last dimension, or
  ``FASTMM_CPU_FUSED=0`` in the environment at import): the same table with torch operations
  (``combine_torch``), one temporary per entry: the torch-add passes of the other schedules.

``NATIVE`` says whether the extension was found (and not disabled) at import.

Public API: ``Table``, ``combine(table, srcs, dsts)``, ``combine_torch(table, srcs, dsts)``,
``NATIVE``, ``native_reason()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import torch

try:
    from kernels import _cpu_fused as _ext
    _IMPORT_ERROR = None
except ImportError as e:  # not built (no C compiler with OpenMP at install): torch operations
    _ext, _IMPORT_ERROR = None, e

NATIVE = _ext is not None and os.environ.get("FASTMM_CPU_FUSED", "1") != "0"
_DTYPES = {torch.float32: 0, torch.float64: 1}
#: tile width in elements per block; 0: the extension's default (512; see docs/cpu.md)
TILE = 0


def native_reason() -> str | None:
    """Why ``combine`` cannot use the extension here, or None when it can (CPU fp32/fp64)."""
    if _ext is None:
        return f"kernels._cpu_fused is not built ({_IMPORT_ERROR})"
    if not NATIVE:
        return "disabled by FASTMM_CPU_FUSED=0"
    return None


@dataclass(frozen=True)
class Table:
    srcs: tuple[str, ...]
    dsts: tuple[str, ...]
    entries: tuple[tuple[tuple[int, float], ...], ...]
    outputs: tuple[tuple[int, int, bool], ...]
    _program: list = field(default_factory=list, compare=False, repr=False)  # the native table, built once

    def __post_init__(self) -> None:
        ns = len(self.srcs)
        for k, terms in enumerate(self.entries):
            if not terms or any(not 0 <= s < ns + k for s, _ in terms):
                raise ValueError(f"Table: entry {k} reads a source that is neither an input nor an earlier entry")
        for k, d, _ in self.outputs:
            if not (0 <= k < len(self.entries) and 0 <= d < len(self.dsts)):
                raise ValueError(f"Table: output ({k}, {d}) is out of range")

    def direct(self) -> tuple[int, ...]:
        """Per entry, the dst it may be computed straight into (its only output, overwriting a
        buffer that is no src and no other output's dst), else -1."""
        outs: dict[int, list] = {}
        writers: dict[int, int] = {}
        for k, d, acc in self.outputs:
            outs.setdefault(k, []).append((d, acc))
            writers[d] = writers.get(d, 0) + 1
        srcs = set(self.srcs)
        out = []
        for k in range(len(self.entries)):
            o = outs.get(k, [])
            ok = len(o) == 1 and not o[0][1] and writers[o[0][0]] == 1 and self.dsts[o[0][0]] not in srcs
            out.append(o[0][0] if ok else -1)
        return tuple(out)

    def program(self):
        if not self._program:
            starts, tsrc, tcoef = [0], [], []
            for terms in self.entries:
                for s, c in terms:
                    tsrc.append(int(s))
                    tcoef.append(float(c))
                starts.append(len(tsrc))
            self._program.append(_ext.program(
                len(self.srcs), len(self.dsts), tuple(starts), tuple(tsrc), tuple(tcoef),
                tuple(k for k, _, _ in self.outputs), tuple(d for _, d, _ in self.outputs),
                tuple(int(a) for _, _, a in self.outputs), self.direct()))
        return self._program[0]


def _native_ok(table: Table, tensors: Sequence[torch.Tensor]) -> bool:
    t0 = tensors[0]
    if not NATIVE or t0.device.type != "cpu" or t0.dtype not in _DTYPES or t0.dim() != 3:
        return False
    return all(t.dtype == t0.dtype and t.device == t0.device and t.shape == t0.shape and
               (t.stride(2) == 1 or t.shape[2] <= 1) for t in tensors)


def combine(table: Table, srcs: Sequence[torch.Tensor], dsts: Sequence[torch.Tensor]) -> None:
    """Run ``table`` on the blocks ``srcs`` → ``dsts`` (see module docstring)."""
    if len(srcs) != len(table.srcs) or len(dsts) != len(table.dsts):
        raise ValueError(f"combine: the table takes {len(table.srcs)} srcs and {len(table.dsts)} dsts, "
                         f"got {len(srcs)} and {len(dsts)}")
    tensors = list(srcs) + list(dsts)
    if not _native_ok(table, tensors):
        combine_torch(table, srcs, dsts)
        return
    B, rows, cols = tensors[0].shape
    if B * rows * cols == 0:
        return
    flat_s, flat_d = [], []
    for t in srcs:
        flat_s += (t.data_ptr(), t.stride(0), t.stride(1))
    for t in dsts:
        flat_d += (t.data_ptr(), t.stride(0), t.stride(1))
    _ext.run(table.program(), _DTYPES[tensors[0].dtype], B, rows, cols, tuple(flat_s), tuple(flat_d),
             torch.get_num_threads(), TILE)


def combine_torch(table: Table, srcs: Sequence[torch.Tensor], dsts: Sequence[torch.Tensor]) -> None:
    """The same table with torch operations (any device and dtype): one temporary per entry."""
    vals: list[torch.Tensor] = []
    for terms in table.entries:
        acc = None
        for s, c in terms:
            x = srcs[s] if s < len(srcs) else vals[s - len(srcs)]
            if acc is None:
                acc = x.clone() if c == 1 else x * c
            else:
                acc.add_(x, alpha=c)
        vals.append(acc)
    for k, d, accumulate in table.outputs:
        if accumulate:
            dsts[d].add_(vals[k])
        else:
            dsts[d].copy_(vals[k])
