"""GPU-only checks of the Triton backend: bf16 and TF32 (wrong or meaningless in the interpreter),
autotuning, the ``compiler.compile`` entry point, and sizes where the tiles are not whole blocks."""

from __future__ import annotations

import pytest
import torch

from compiler.algebra.library import library_algorithm
from kernels.triton_backend import SCHEDULES, TritonMatmul, TritonOptions

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _cuda_only():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: bf16/TF32 tl.dot and autotuning need a GPU")


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("alg,levels", [("winograd", 1), ("winograd", 2), ("strassen", 2), ("laderman", 1)])
def test_bf16_against_float64(alg, levels, schedule):
    g = torch.Generator().manual_seed(0)
    M, K, N = 509, 515, 521  # primes-ish: ragged blocks at every level, several tiles per block
    a = torch.randn(M, K, generator=g).to(torch.bfloat16).cuda()
    b = torch.randn(K, N, generator=g).to(torch.bfloat16).cuda()
    c = TritonMatmul(library_algorithm(alg), TritonOptions(schedule=schedule, levels=levels))(a, b)
    ref = a.double() @ b.double()
    # bf16 keeps 8 bits: each stored operand/product/output rounds by <= 2**-9 relative, and the
    # combinations grow values by at most the factor norms (<= 4 per level for these algorithms)
    # before that rounding; fp32 accumulation inside the GEMM is negligible next to it.
    scale = a.abs().max().item() * b.abs().max().item() * K ** 0.5
    assert (c.double() - ref).abs().max().item() <= (levels + 1) * 4 ** levels * 2.0 ** -9 * scale * 4


@pytest.mark.parametrize("tf32", [False, True], ids=["ieee", "tf32"])
def test_fp32_precision_modes(tf32):
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-3, 4, (777, 555), generator=g).float().cuda()
    b = torch.randint(-3, 4, (555, 333), generator=g).float().cuda()
    c = TritonMatmul(library_algorithm("winograd"), TritonOptions(schedule="fused", tf32=tf32))(a, b)
    # small integers (|x| <= 3, Winograd operand sums <= 12) are exact in TF32's 10-bit mantissa too
    assert torch.equal(c, (a.double() @ b.double()).float())


def test_autotuned_and_compile_entry_point():
    import compiler.codegen.pipeline as pipeline
    mm = pipeline.compile("winograd", backend="triton", levels=2, schedule="fused")
    a = torch.randint(-2, 3, (1030, 1020), dtype=torch.float32).cuda()
    b = torch.randint(-2, 3, (1020, 1010), dtype=torch.float32).cuda()
    assert torch.equal(mm(a, b), (a.double() @ b.double()).float())


def test_fp16_bit_exact_large_blocks():
    g = torch.Generator().manual_seed(2)
    a = torch.randint(-1, 2, (1001, 999), generator=g).half().cuda()
    b = torch.randint(-1, 2, (999, 1003), generator=g).half().cuda()
    # |entries| <= 1: Strassen products are <= 500·2·2 = 2000 <= 2048, exact in fp16
    for schedule in SCHEDULES:
        c = TritonMatmul(library_algorithm("strassen"), TritonOptions(schedule=schedule))(a, b)
        assert torch.equal(c.double(), a.double() @ b.double()), schedule
