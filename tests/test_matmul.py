"""fastmm.matmul against torch.matmul: semantics, dtypes, awkward shapes, NaN/Inf, errors."""

from __future__ import annotations

import math

import pytest
import torch

import fastmm
from fastmm import backends
from fastmm.semantics import lower

needs_compiler = pytest.mark.skipif(backends.unavailable_reason() is not None,
                                    reason=str(backends.unavailable_reason()))

# (shape of a, shape of b): 1-D operands, batched and broadcast batches, odd/prime/zero sizes.
SEMANTIC_SHAPES = [
    ((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((2, 4, 5), (5,)), ((5,), (2, 5, 3)),
    ((4, 5), (5, 3)), ((2, 4, 5), (5, 3)), ((4, 5), (2, 5, 3)), ((2, 1, 4, 5), (3, 5, 6)),
    ((3, 2, 4, 5), (2, 5, 6)), ((1, 4, 5), (3, 5, 6)), ((0, 5), (5, 3)), ((4, 0), (0, 3)),
    ((4, 5), (5, 0)), ((2, 0, 4, 5), (5, 3)), ((7,), (7,)),
]


def _ints(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=g).to(dtype)


@pytest.mark.parametrize("shape_a,shape_b", SEMANTIC_SHAPES)
def test_lowering_reproduces_torch_matmul(shape_a, shape_b):
    # Small-integer data: every product and sum is exact in fp32, so equality is bit-exact.
    a, b = _ints(shape_a), _ints(shape_b, seed=1)
    low = lower(a, b)
    assert low.a.dim() in (2, 3) and low.b.dim() == low.a.dim()
    assert torch.equal(low.finish(torch.matmul(low.a, low.b)), torch.matmul(a, b))


@pytest.mark.parametrize("shape_a,shape_b", SEMANTIC_SHAPES)
def test_default_path_equals_torch(shape_a, shape_b):
    a, b = _ints(shape_a), _ints(shape_b, seed=1)
    out = fastmm.matmul(a, b)
    ref = torch.matmul(a, b)
    assert out.shape == ref.shape and out.dtype == ref.dtype and torch.equal(out, ref)


BAD = [((), (3,)), ((3,), ()), ((3, 4), (5, 6)), ((4,), (5,)), ((2, 3, 4), (3, 4, 5)), ((3, 4), (3,))]


@pytest.mark.parametrize("shape_a,shape_b", BAD)
@pytest.mark.parametrize("forced", [False, True])
def test_errors_are_torch_errors(shape_a, shape_b, forced):
    a, b = torch.ones(shape_a), torch.ones(shape_b)
    with pytest.raises(Exception) as theirs:
        torch.matmul(a, b)
    kwargs = {"algorithm": "strassen"} if forced else {}
    with pytest.raises(type(theirs.value)) as ours:
        fastmm.matmul(a, b, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_dtype_mismatch_and_integer_dtypes_fall_back():
    a, b = torch.ones(3, 4), torch.ones(4, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError) as theirs:
        torch.matmul(a, b)
    with pytest.raises(RuntimeError) as ours:
        fastmm.matmul(a, b, algorithm="strassen")
    assert str(ours.value) == str(theirs.value)
    ia, ib = torch.arange(12).reshape(3, 4), torch.arange(8).reshape(4, 2)
    assert torch.equal(fastmm.matmul(ia, ib, algorithm="strassen"), torch.matmul(ia, ib))


def test_explain_small_shape_is_fast_reject():
    text = str(fastmm.explain(torch.ones(8, 8), torch.ones(8, 8)))
    assert "torch.matmul" in text and "fast reject" in text


# ---- fast plans (need compiler.compile) -------------------------------------------------------

ALGORITHMS = ["strassen", "winograd", "laderman", "4x4x4"]
# dtype and its tolerance on normwise relative error vs a float64 reference, as one parameter.
# The bound is (growth of the plan's error, see fastmm.accuracy) × (unit roundoff) × sqrt(K)-ish
# slack; we use a per-dtype constant that covers K ≤ 1000 at 1–2 levels with margin:
DTYPE_TOL = [
    # fp64: u = 1.1e-16; Strassen-like growth ≤ 81 at 2 levels, sqrt(1000) ≈ 32 → 3e-13; ×30 margin.
    (torch.float64, 1e-11),
    # fp32: u = 6e-8; same growth and K → 1.6e-4 worst; random data stays far below.
    (torch.float32, 1e-4),
]
FAST_SHAPES = [(1, 1, 1), (2, 2, 2), (3, 3, 3), (7, 7, 7), (63, 64, 65), (64, 64, 64), (65, 63, 64),
               (129, 127, 131), (255, 256, 257), (97, 89, 101)]


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dims", FAST_SHAPES, ids=lambda d: "x".join(map(str, d)))
def test_fast_plan_bit_exact_on_small_integers(algorithm, dims, dtype):
    # Integer coefficients, small-integer data, K ≤ 257: every intermediate is an integer below
    # 2**24, so fp32/fp64 arithmetic is exact and the result must equal torch.matmul bit for bit.
    # (fp16/bf16 are not exact here: their 11/8-bit significands cannot hold these sums; they
    # are checked against tolerances in test_fast_plan_half_precision.)
    n, k, p = dims
    a, b = _ints((n, k), dtype), _ints((k, p), dtype, seed=1)
    levels = 2 if min(dims) >= 16 and algorithm in ("strassen", "winograd") else 1
    assert torch.equal(fastmm.matmul(a, b, algorithm=algorithm, levels=levels), torch.matmul(a, b))


@needs_compiler
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype,tol", DTYPE_TOL, ids=["fp64", "fp32"])
@pytest.mark.parametrize("dims", [(63, 64, 65), (129, 127, 131), (1000, 1000, 1000)],
                         ids=lambda d: "x".join(map(str, d)))
def test_fast_plan_accuracy(algorithm, dtype, tol, dims):
    n, k, p = dims
    g = torch.Generator().manual_seed(3)
    a = torch.randn(n, k, generator=g, dtype=torch.float64)
    b = torch.randn(k, p, generator=g, dtype=torch.float64)
    ref = a @ b
    # Two levels for Strassen at N = 1000 (the multi-level error path); one elsewhere keeps the
    # default tier fast (two Laderman levels at 1000 are 529 leaf products: 17 s here).
    levels = 2 if min(dims) >= 256 and algorithm == "strassen" else 1
    out = fastmm.matmul(a.to(dtype), b.to(dtype), algorithm=algorithm, levels=levels)
    assert out.dtype == dtype and out.shape == ref.shape
    err = (out.double() - ref).norm() / ref.norm()
    assert err < tol, f"{algorithm} L={levels} {dtype}: relative error {err:.2e} ≥ {tol:.0e}"


# The plans the accuracy bound allows in half precision (fastmm.accuracy: fp16 growth ≤ 16,
# bf16 ≤ 8): Strassen, Winograd and Laderman at one level in fp16; only Strassen in bf16.
HALF_PLANS = [(torch.float16, "strassen"), (torch.float16, "winograd"), (torch.float16, "laderman"),
              (torch.bfloat16, "strassen")]


@needs_compiler
@pytest.mark.parametrize("dtype,algorithm", HALF_PLANS, ids=[f"{str(d)[6:]}-{a}" for d, a in HALF_PLANS])
@pytest.mark.parametrize("dims", [(65, 64, 63), (7, 129, 31)], ids=["65x64x63", "7x129x31"])
def test_fast_plan_half_precision(dtype, algorithm, dims):
    # Half precisions: u = 4.9e-4 (fp16) / 3.9e-3 (bf16); one level (growth ≤ 12) on K ≤ 129
    # stays below growth·u·sqrt(K) ≈ 0.07 / 0.3 normwise in the worst case; random data is an
    # order of magnitude below, so we assert 0.05 / 0.2.
    tol = {torch.float16: 0.05, torch.bfloat16: 0.2}[dtype]
    n, k, p = dims
    a, b = torch.randn(n, k, dtype=torch.float64), torch.randn(k, p, dtype=torch.float64)
    out = fastmm.matmul(a.to(dtype), b.to(dtype), algorithm=algorithm, levels=1)
    assert out.dtype == dtype
    assert ((out.double() - a @ b).norm() / (a @ b).norm()) < tol


@needs_compiler
@pytest.mark.parametrize("algorithm", ["strassen", "laderman"])
@pytest.mark.parametrize("case", ["batched", "broadcast", "vec-left", "vec-right", "transposed", "strided",
                                  "zero-k", "zero-n"])
def test_fast_plan_layouts(algorithm, case):
    # Small-integer data again: exact, so the comparison is bit-exact.
    A = {
        "batched": ((3, 33, 34), (3, 34, 35)), "broadcast": ((2, 1, 33, 34), (3, 34, 35)),
        "vec-left": ((34,), (2, 34, 35)), "vec-right": ((2, 33, 34), (34,)),
        "transposed": ((34, 33), (35, 34)), "strided": ((33, 68), (34, 70)),
        "zero-k": ((33, 0), (0, 35)), "zero-n": ((0, 34), (34, 35)),
    }[case]
    a, b = _ints(A[0]), _ints(A[1], seed=1)
    if case == "transposed":
        a, b = a.mT, b.mT
    if case == "strided":
        a, b = a[:, ::2], b[:, ::2]
    assert torch.equal(fastmm.matmul(a, b, algorithm=algorithm, levels=1), torch.matmul(a, b))


@needs_compiler
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["a", "b", "both"])
def test_non_finite_positions_match_torch(value, where):
    # One non-finite entry: Strassen's a11 + a22 would spread it into every output block; the
    # result must have NaN/Inf exactly where torch.matmul has them, and equal values elsewhere.
    a, b = _ints((66, 64)), _ints((64, 62), seed=1)
    if where in ("a", "both"):
        a[5, 7] = value
    if where in ("b", "both"):
        b[40, 50] = value
    out = fastmm.matmul(a, b, algorithm="strassen", levels=2)
    ref = torch.matmul(a, b)
    assert torch.equal(torch.isnan(out), torch.isnan(ref))
    assert torch.equal(torch.isposinf(out), torch.isposinf(ref))
    assert torch.equal(torch.isneginf(out), torch.isneginf(ref))
    finite = torch.isfinite(ref)
    assert torch.equal(out[finite], ref[finite])


@needs_compiler
def test_overflow_in_combination_falls_back():
    # fp16 max is 65504: a11 + a22 = 2 · 40000 overflows inside Strassen although every true
    # product entry (40000 · 1 · ... ) fits; the result must be torch.matmul's.
    a = torch.zeros(4, 4, dtype=torch.float16)
    a[0, 0] = a[2, 2] = 40000
    b = torch.eye(4, dtype=torch.float16)
    out = fastmm.matmul(a, b, algorithm="strassen", levels=1)
    assert torch.equal(out, torch.matmul(a, b))


@needs_compiler
def test_algorithm_as_factorization_and_path(tmp_path):
    from compiler import save
    from compiler.algebra.library import library_algorithm
    f = library_algorithm("strassen")
    save(tmp_path / "s.npz", [f])
    a, b = _ints((40, 41)), _ints((41, 42), seed=1)
    ref = torch.matmul(a, b)
    assert torch.equal(fastmm.matmul(a, b, algorithm=f), ref)
    assert torch.equal(fastmm.matmul(a, b, algorithm=str(tmp_path / "s.npz")), ref)
