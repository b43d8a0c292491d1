"""kernels.cpu_fused: the fused schedule's combination tables, C extension against torch operations.

The C kernel (kernels/_cpu_fused.c) and the torch fallback must give the same values for any
table: entries reading inputs and earlier entries, outputs overwriting or accumulating, a dst that
is also a src (read before written), strided (non-contiguous rows) and batched blocks, fp32 and
fp64, sizes that are no multiple of the tile. Small integers make every result exact in both, so
they are compared bit for bit.
"""

from __future__ import annotations

import pytest
import torch

import compiler
from compiler.algebra.library import library_algorithm
from compiler.ir.schedule import make_schedule, workspace_elements
from compiler.codegen import emit_torch
from kernels import cpu_fused

needs_ext = pytest.mark.skipif(cpu_fused.native_reason() is not None,
                               reason=f"native fused kernel unavailable: {cpu_fused.native_reason()}")

# src 0..2 inputs; e0 = x0 - x1; e1 = 2·e0 + x2 (a temporary no output names); e2 = e1 - x0 + x1 + x2
TABLE = cpu_fused.Table(
    srcs=("x0", "x1", "x2"), dsts=("d0", "d1", "x2"),
    entries=(((0, 1), (1, -1)), ((3, 2), (2, 1)), ((4, 1), (0, -1), (1, 1), (2, 1))),
    outputs=((0, 0, False), (2, 1, True), (2, 2, False), (0, 1, True)))


def _ints(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-4, 5, shape, generator=g).to(dtype)


def _run(fn, dtype, B, rows, cols, strided):
    big = [_ints((B, rows, cols + (7 if strided else 0)), dtype, s) for s in range(5)]
    blocks = [t[:, :, 3:3 + cols] if strided else t for t in big]
    x0, x1, x2, d0, d1 = blocks
    fn(TABLE, (x0, x1, x2), (d0, d1, x2))
    return big


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,rows,cols,strided", [(1, 1, 1, False), (1, 37, 1029, True), (3, 5, 600, False),
                                                 (2, 17, 64, True), (1, 0, 5, False)])
def test_native_equals_torch_operations(dtype, B, rows, cols, strided):
    want = _run(cpu_fused.combine_torch, dtype, B, rows, cols, strided)
    got = _run(cpu_fused.combine, dtype, B, rows, cols, strided)
    for w, g in zip(want, got):
        assert torch.equal(w, g)


def test_torch_operations_compute_the_table():
    x0, x1, x2, d0, d1 = (_ints((1, 4, 6), torch.float64, s) for s in range(5))
    X2, D1 = x2.clone(), d1.clone()
    cpu_fused.combine_torch(TABLE, (x0, x1, x2), (d0, d1, x2))
    e0 = x0 - x1
    e2 = 2 * e0 + X2 - x0 + x1 + X2
    assert torch.equal(d0, e0) and torch.equal(x2, e2) and torch.equal(d1, D1 + e2 + e0)


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="entry 0"):
        cpu_fused.Table(("x",), ("d",), (((1, 1.0),),), ((0, 0, False),))
    with pytest.raises(ValueError, match="out of range"):
        cpu_fused.Table(("x",), ("d",), (((0, 1.0),),), ((0, 1, False),))


@needs_ext
def test_native_refuses_an_inconsistent_program():
    from kernels import _cpu_fused
    with pytest.raises(ValueError):
        _cpu_fused.program(1, 1, (0, 1), (5,), (1.0,), (0,), (0,), (0,), (-1,))


def test_other_dtypes_use_torch_operations():
    """fp16 has no native kernel: the same table runs with torch operations (exact on small ints)."""
    got = _run(cpu_fused.combine, torch.float16, 1, 3, 9, False)
    want = _run(cpu_fused.combine_torch, torch.float16, 1, 3, 9, False)
    assert all(torch.equal(w, g) for w, g in zip(want, got))


@pytest.mark.parametrize("algorithm", ["strassen", "winograd", "laderman", "4x4x4"])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_workspace_elements_match_the_module(algorithm, levels):
    """The stated peak extra memory is what the rendered module's ``_workspace`` allocates: dense
    blocks where no row is a multiple of 4 KiB long, and with the padded rows of the CPU layout
    (``row_stride``) where some are (fp32 K = 1024·m^levels, fp64 N = 512·p^levels)."""
    f = library_algorithm(algorithm)
    n, m, p = f.shape
    cases = [(torch.float32, n ** levels * 3 + 1, m ** levels * 2 + 1, p ** levels * 3),
             (torch.float32, n ** levels, m ** levels * 1024, p ** levels * 3),
             (torch.float64, n ** levels, m ** levels, p ** levels * 512)]
    for kind in ("materialized", "streaming", "fused"):
        mm = compiler.compile(f, levels=levels, cutoff=1, schedule=kind)
        _, _, sched = emit_torch.prepare(f, emit_torch.TorchConfig(schedule=kind))
        for dtype, M, K, N in cases:
            ws = mm.module._workspace(1, M, K, N, levels, 1, dtype, "cpu")
            allocated = sum(t.untyped_storage().nbytes() // dtype.itemsize for level in ws for t in level)
            assert workspace_elements(sched, M, K, N, levels, 1, itemsize=dtype.itemsize) == allocated, (
                algorithm, levels, kind, dtype)
            dense = sum(t.numel() for level in ws for t in level)
            assert workspace_elements(sched, M, K, N, levels, 1) == dense, (algorithm, levels, kind, dtype)


def test_fused_workspace_is_bounded_by_the_operands():
    """Fused: per level at most one slot per distinct non-input operand and R − n·p c-slots."""
    for name in ("strassen", "winograd", "laderman", "4x4x4"):
        f = library_algorithm(name)
        _, prog, sched = emit_torch.prepare(f, emit_torch.TorchConfig(schedule="fused"))
        n, m, p = f.shape
        assert sched.plan.wa <= f.rank and sched.plan.wb <= f.rank
        assert sched.plan.wc == max(0, f.rank - n * p) and sched.plan.scratch == 0
        assert make_schedule(prog, "fused").plan == sched.plan
