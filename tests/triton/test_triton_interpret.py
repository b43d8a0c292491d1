"""Generated Triton kernels compute A·B: bit-exactly on small integers, to float64 within stated bounds.

Runs in Triton's interpreter on CPU (``conftest.py`` sets ``TRITON_INTERPRET=1``) and on the GPU when
CUDA is present. Sizes stay ≤ 64 so the whole tier takes about a minute on two CPU cores: the
interpreter runs every program instance in Python.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from compiler.algebra.library import library_algorithm
from _exactness import colnorm, random_unimodular, stored_bound
from kernels.triton_backend import SCHEDULES, CombineTile, GemmTile, TileConfig, TritonMatmul, TritonOptions

# One 32x32 tile covers a whole block at these sizes: the interpreter pays per program instance,
# not per element, so fewer, larger programs are faster (and 16 is the least tl.dot accepts).
SMALL = TileConfig(CombineTile(32, 32, 4, tile_b=64), GemmTile(32, 32, 32, 4, 2))
ALGORITHMS = ("strassen", "winograd", "laderman", "winograd2")  # winograd2 = <4,4,4;49>
# odd, mutually different M, K, N so that every block grid has ragged last blocks
SHAPES = ((37, 29, 41), (33, 47, 31), (45, 35, 27))
FP16_EXACT = 2048  # every integer of magnitude <= 2**11 is exact in fp16


def ints(shape, e, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-e, e + 1, shape, generator=g).to(dtype).to(device)


CASES = [(alg, levels, dtype, sched)
         for alg in ALGORITHMS for levels in (1, 2) for dtype in (torch.float32, torch.float16) for sched in SCHEDULES]


def _case(alg, levels, dtype, sched):
    marks = []
    if levels == 2 and sched != "streaming" and alg in ("laderman", "winograd2"):
        # the bottom GEMM kernel then runs once per level-1 product (23 or 49 program instances,
        # each with all R products): tens of seconds in the interpreter, seconds on a GPU
        marks.append(pytest.mark.slow)
    return pytest.param(alg, levels, dtype, sched, marks=marks, id=f"{alg}-L{levels}-{str(dtype)[6:]}-{sched}")


@pytest.mark.parametrize("alg,levels,dtype,schedule", [_case(*c) for c in CASES])
def test_small_integers(alg, levels, dtype, schedule, device):
    f = library_algorithm(alg)
    M, K, N = SHAPES[CASES.index((alg, levels, dtype, schedule)) % len(SHAPES)]
    mm = TritonMatmul(f, TritonOptions(schedule=schedule, levels=levels, tiles=SMALL))
    a, b = ints((M, K), 1, dtype, device, 1), ints((K, N), 1, dtype, device, 2)
    c = mm(a, b)
    ref = a.double() @ b.double()
    assert c.dtype == dtype and c.shape == (M, N)
    if dtype == torch.float32 or stored_bound(f, levels, K, 1) <= FP16_EXACT:
        # integer coefficients and integer data: every operation is exact, so the result must be too
        assert torch.equal(c.double(), ref)
    else:
        # Laderman^2 / <4,4,4;49>^2 in fp16: stored intermediates may exceed 2**11, where fp16 has
        # spacing >= 2, so one rounding (half a spacing, relative 2**-11) per stored value per level
        bound = stored_bound(f, levels, K, 1)
        assert (c.double() - ref).abs().max().item() <= (levels + 1) * bound * 2.0 ** -11


@pytest.mark.parametrize("alg", ["strassen", "winograd"])
@pytest.mark.parametrize("flatten", [False, True], ids=["nested", "flat"])
def test_two_levels_flattened_equals_nested(alg, flatten, device):
    """Both ways of running two levels give the exact product with the fused kernel at the bottom.

    (Flattening is only offered for small R^2: Laderman^2 would be one kernel of 529 products.)
    """
    f = library_algorithm(alg)
    mm = TritonMatmul(f, TritonOptions(schedule="fused", levels=2, flatten=flatten, tiles=SMALL))
    a, b = ints((35, 41), 2, torch.float32, device, 3), ints((41, 23), 2, torch.float32, device, 4)
    assert torch.equal(mm(a, b).double(), a.double() @ b.double())


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("M,K,N", [(1, 17, 19), (21, 1, 18), (19, 23, 1), (2, 2, 2), (64, 64, 64)])
def test_degenerate_and_aligned_shapes(schedule, M, K, N, device):
    """Blocks of a single row/column (or empty blocks: 1 row split in 2) and the aligned case."""
    mm = TritonMatmul(library_algorithm("strassen"), TritonOptions(schedule=schedule, levels=1, tiles=SMALL))
    a, b = ints((M, K), 3, torch.float32, device, 5), ints((K, N), 3, torch.float32, device, 6)
    assert torch.equal(mm(a, b).double(), a.double() @ b.double())


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_batched_broadcast_and_noncontiguous(schedule, device):
    mm = TritonMatmul(library_algorithm("winograd"), TritonOptions(schedule=schedule, levels=1, tiles=SMALL))
    a = ints((3, 27, 30), 2, torch.float32, device, 7)
    b = ints((19, 30), 2, torch.float32, device, 8).t()  # (30, 19) with column-major strides
    a_nc = ints((3, 30, 27), 2, torch.float32, device, 9).transpose(1, 2)  # non-contiguous batch
    assert torch.equal(mm(a, b).double(), a.double() @ b.double())  # b broadcast over the batch
    assert torch.equal(mm(a_nc, b).double(), a_nc.double() @ b.double())


def test_empty_and_k_zero(device):
    mm = TritonMatmul(library_algorithm("strassen"), TritonOptions(tiles=SMALL))
    assert mm(torch.zeros(0, 5, device=device), torch.zeros(5, 3, device=device)).shape == (0, 3)
    assert torch.equal(mm(torch.zeros(4, 0, device=device), torch.zeros(0, 3, device=device)),
                       torch.zeros(4, 3, device=device))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("alg,levels", [("strassen", 2), ("laderman", 1)])
def test_float64(alg, levels, schedule, device):
    """fp64 runs end to end in fp64 (the accumulator too): integer data exact."""
    mm = TritonMatmul(library_algorithm(alg), TritonOptions(schedule=schedule, levels=levels, tiles=SMALL))
    a, b = ints((39, 33), 4, torch.float64, device, 10), ints((33, 29), 4, torch.float64, device, 11)
    assert torch.equal(mm(a, b), a @ b)


def _normwise_error_bound(f, levels: int, K: int, u: float) -> float:
    # Higham (Accuracy and Stability, §23.2.2): fast bilinear algorithms satisfy a normwise bound
    # |C - Ĉ| <= c_L · u · K · max|A| · max|B| whose constant grows geometrically with the levels,
    # by at most (colnorm U · colnorm V · rownorm W) per level; we take that growth times 4 for the
    # leaf GEMM's own rounding. For Strassen one level this is 4·2·2·4 = 64 u K, far below the O(1)
    # error any wrong coefficient or index would cause.
    cw = int(max(sum(abs(Fraction(x)) for x in row) for row in np.asarray(f.W)))
    return 4 * ((colnorm(f.U) * colnorm(f.V) * cw) ** levels) * u * K


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("alg,levels", [("strassen", 2), ("winograd", 1), ("laderman", 1), ("winograd2", 1)])
def test_random_fp32_against_float64(alg, levels, schedule, device):
    f = library_algorithm(alg)
    g = torch.Generator().manual_seed(12)
    M, K, N = 43, 57, 38
    a = torch.randn(M, K, generator=g).to(device)
    b = torch.randn(K, N, generator=g).to(device)
    mm = TritonMatmul(f, TritonOptions(schedule=schedule, levels=levels, tiles=SMALL))
    err = (mm(a, b).double() - a.double() @ b.double()).abs().max().item()
    scale = a.abs().max().item() * b.abs().max().item()
    assert err <= _normwise_error_bound(f, levels, K, 2.0 ** -24) * scale


def test_fused_is_deterministic(device):
    """The fused epilogue uses no atomics: two runs give identical bits on random data."""
    mm = TritonMatmul(library_algorithm("winograd"), TritonOptions(schedule="fused", levels=1, tiles=SMALL))
    g = torch.Generator().manual_seed(13)
    a, b = torch.randn(45, 37, generator=g).to(device), torch.randn(37, 33, generator=g).to(device)
    assert torch.equal(mm(a, b), mm(a, b))


def test_refuses_mod2_and_mismatched_inputs(device):
    from compiler.algebra.factors import FactorizationError, naive
    z2 = naive(2, 2, 2).replace(field="Z2", name="z2-naive")
    with pytest.raises(FactorizationError, match="modulo 2"):
        TritonMatmul(z2)
    mm = TritonMatmul(library_algorithm("strassen"), TritonOptions(tiles=SMALL))
    with pytest.raises(ValueError, match="inner dimensions"):
        mm(torch.zeros(4, 5, device=device), torch.zeros(4, 5, device=device))
    with pytest.raises(TypeError, match="dtype"):
        mm(torch.zeros(4, 4, device=device), torch.zeros(4, 4, dtype=torch.float64, device=device))


@pytest.mark.parametrize("backend_schedule", ["streaming", "fused"])
def test_compile_entry_point(backend_schedule, device):
    """``compiler.compile(..., backend="triton")`` goes through the backend registry to these kernels."""
    import compiler
    mm = compiler.compile("winograd", backend="triton", levels=2, schedule=backend_schedule, tiles=SMALL)
    a, b = ints((29, 31), 2, torch.float32, device, 14), ints((31, 27), 2, torch.float32, device, 15)
    assert torch.equal(mm(a, b).double(), a.double() @ b.double())
    assert mm.source.program.label == "winograd-2x2x2-r7"


@pytest.mark.parametrize("schedule", ["fused_operands", "fused"])
def test_many_tiles_per_block_grouped_order(schedule, device):
    """Blocks of 3x4 GEMM tiles with groups of 2 tile-rows (a partial last group): every tile once."""
    tiles = TileConfig(CombineTile(16, 16, 4), GemmTile(16, 16, 16, 4, 2, group_m=2))
    mm = TritonMatmul(library_algorithm("strassen"), TritonOptions(schedule=schedule, tiles=tiles))
    a, b = ints((89, 70), 2, torch.float32, device, 16), ints((70, 121), 2, torch.float32, device, 17)
    assert torch.equal(mm(a, b).double(), a.double() @ b.double())


FP32_EXACT = 2 ** 24  # every integer of magnitude <= 2**24 is exact in fp32


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("base", ["laderman", "2x2x2", "3x3x3", "2x3x4", "4x4x4", "3x4x5"])
def test_basis_changed_algorithms_bit_exact_fp32(base, schedule, device, alphatensor_real):
    """Algorithms far from ±1 (a random unimodular change of basis of Laderman's and AlphaTensor's
    <2,2,2;7>, <3,3,3;23>, <2,3,4;20>, <4,4,4;49>, <3,4,5;47>): the integral CSE keeps every
    stored value an integer, so fp32 is bit-exact on small integers while every stored value stays
    below 2**24 (checked with ``stored_bound``). With the rational temporaries CSE used to write
    (2/3, 5/12, ...) the same kernels were off by up to 4e-2 here."""
    from compiler import change_basis
    shape = tuple(int(d) for d in base.split("x")) if "x" in base else None
    f = next(g for g in alphatensor_real if g.shape == shape) if shape else library_algorithm(base)
    rng = np.random.default_rng(7)
    n, m, p = f.shape
    K = 2 * m + 1
    for bound in (6, 4, 3, 2):  # the largest change of basis whose values fp32 holds exactly
        g = change_basis(f, *(random_unimodular(rng, d, bound, step=3) for d in (n, m, p)))
        if stored_bound(g, 1, K, 1, outputs=True) <= FP32_EXACT:
            break
    assert stored_bound(g, 1, K, 1, outputs=True) <= FP32_EXACT
    assert max(abs(Fraction(x)) for M in (g.U, g.V, g.W) for x in np.asarray(M).ravel()) > 1
    mm = TritonMatmul(g, TritonOptions(schedule=schedule, levels=1, tiles=SMALL))
    M, N = 2 * n + 1, 2 * p + 3
    a, b = ints((M, K), 1, torch.float32, device, 3), ints((K, N), 1, torch.float32, device, 4)
    assert torch.equal(mm(a, b).double(), a.double() @ b.double())
