"""Compiled alternative-basis algorithms: transforms, sparse core and inverse transform, bit for bit.

Every stored alternative basis (``factors/altbasis.json``) and the sparsest basis of random basis
changes of library algorithms are compiled by ``compiler.codegen.emit_altbasis`` at 1-3 levels
with ``cutoff=1`` (every level runs), on odd sizes (the peeled strips run too), and must equal the
integer product exactly (``torch.equal``) in float64 and, where every stored value provably stays
below 2**24, in int-valued float32. Translation validation runs inside every emission; tests below
corrupt a core step and a transform step and check the refusal.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import compiler
from compiler import change_basis
from compiler.algebra.altbasis import load_altbasis, sparsify
from compiler.algebra.factors import FactorizationError
from compiler.algebra.library import library_algorithm
from compiler.codegen import emit_altbasis
from compiler.codegen.emit_torch import block_name, render_steps
from compiler.codegen.validate import ValidationError, check_linear_ops, check_torch_ops
from compiler.ir import linmap
from _exactness import EXACT_INTEGERS, colnorm, random_unimodular

REPO = Path(__file__).resolve().parents[1]
STORED = load_altbasis(REPO / "factors" / "altbasis.json")
SMALL = [a for a in STORED if a.is_integral() and a.algorithm.rank <= 23]
FAST = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def rownorm(a) -> int:
    return colnorm(np.asarray(a, dtype=object).T)


def stored_bound(alt, levels: int, K: int, e: int) -> int:
    """Largest magnitude any stored value can reach with |entries| <= e: the transformed operands
    grow by the row norm of Φ (Ψ) per level, the core's operands, products and partial sums as
    in ``_exactness.stored_bound`` (column norms of Uc, Vc, Wc), and Υ⁻¹'s levels by its row norm."""
    ea = e * rownorm(alt.phi) ** levels
    eb = e * rownorm(alt.psi) ** levels
    core = math.ceil(K) * ea * eb * (colnorm(alt.Uc) * colnorm(alt.Vc) * colnorm(alt.Wc)) ** levels
    return max(ea, eb, core * rownorm(alt.upsilon_inv) ** levels)


def run_exact(alt, levels: int, M: int, K: int, N: int, seed: int, dtype: str) -> None:
    fn = compiler.compile_altbasis(alt, levels=levels, cutoff=1)
    e = 3
    if stored_bound(alt, levels, K, e) >= EXACT_INTEGERS[dtype]:
        assume(dtype != "float32")  # the float32 property is only claimed where it is provable
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-e, e + 1, (M, K), generator=g)
    b = torch.randint(-e, e + 1, (K, N), generator=g)
    want = (a.long() @ b.long()).to(getattr(torch, dtype))
    got = fn(a.to(getattr(torch, dtype)), b.to(getattr(torch, dtype)))
    assert torch.equal(got, want), (alt.name, levels, M, K, N, dtype)


@FAST
@given(st.sampled_from(SMALL), st.integers(1, 3), st.integers(0, 2**31 - 1), st.sampled_from(["float64", "float32"]),
       st.data())
def test_stored_altbases_bit_exact(alt, levels, seed, dtype, data):
    n, m, p = alt.algorithm.shape
    # odd sizes: a multiple of n^L plus up to n^L - 1 peeled rows (and likewise K, N), capped
    M = n ** levels * data.draw(st.integers(1, 2)) + data.draw(st.integers(0, n ** levels - 1))
    K = m ** levels * data.draw(st.integers(1, 2)) + data.draw(st.integers(0, 2))
    N = p ** levels + data.draw(st.integers(0, p ** levels))
    assume(max(M, K, N) <= 200)
    run_exact(alt, levels, M, K, N, seed, dtype)


@st.composite
def basis_changes(draw):
    """The sparsest alternative basis of a random unimodular basis change of a library algorithm."""
    f = library_algorithm(draw(st.sampled_from(["strassen", "winograd", "laderman"])))
    n, m, p = f.shape
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    g = change_basis(f, *(random_unimodular(rng, k, 3, 2) for k in (n, m, p)))
    return sparsify(g, support=3)


@FAST
@given(basis_changes(), st.integers(1, 3), st.integers(0, 2**31 - 1), st.sampled_from(["float64", "float32"]),
       st.integers(0, 4))
def test_random_basis_changes_bit_exact(alt, levels, seed, dtype, odd):
    n, m, p = alt.algorithm.shape
    assume(n ** levels <= 27)
    run_exact(alt, levels, n ** levels + odd, m ** levels * 2 + (odd % 3), p ** levels + 1, seed, dtype)


def test_rational_and_batched():
    """A rational alternative basis (dyadic coefficients) on random data: close in float64; the
    batched 3-D entry point is exact on integers and agrees with the 2-D one per batch."""
    alt = next(a for a in STORED if not a.is_integral())
    fn = compiler.compile_altbasis(alt, levels=2, cutoff=1)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 35, 33, dtype=torch.float64, generator=g), torch.randn(3, 33, 37, dtype=torch.float64, generator=g)
    got = fn(a, b)
    # 2 levels of a <4,4,4> with coefficients up to a few units: errors of a few hundred ulps of |c|
    assert torch.allclose(got, a @ b, rtol=0, atol=1e-10 * float((a.abs() @ b.abs()).max()))
    # batched: integer data, so the batched (baddbmm) and 2-D (addmm) leaves both give exact results
    ai, bi = (torch.randint(-3, 4, x.shape, generator=g).double() for x in (a, b))
    assert torch.equal(fn(ai, bi), ai @ bi) and torch.equal(fn(ai, bi)[1], fn(ai[1], bi[1]))


def test_winograd_core_and_cli(tmp_path):
    from compiler.build import main
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main([str(REPO / "factors" / "altbasis.json"), "--only", "winograd-2x2x2-r7", "--json",
                   "--out", str(tmp_path), "--levels", "2"])
    assert rc == 0
    row = json.loads(buf.getvalue().splitlines()[0])
    assert (row["core_naive"], row["core_cse"], row["additions_cse"]) == (12, 12, 15)
    assert row["transforms_outer"] == {"a": 3, "b": 3, "c": 3}
    (path,) = row["outputs"]
    text = Path(path).read_text()
    assert "def _transform_a(" in text and "def _inverse_c(" in text and "winograd-2x2x2-r7 core" in text


def test_in_place_maps_of_every_stored_basis():
    """Every stored transform has an in-place program, and it computes the map exactly."""
    for alt in STORED:
        for T in (alt.phi, alt.psi, alt.upsilon_inv):
            lm = linmap.in_place(T)
            k = lm.matrix.shape[0]
            x = np.array([[Fraction(i * 7 + j * 3 + 1, 1 + (i % 3)) for j in range(2)] for i in range(k)], dtype=object)
            assert (linmap.apply(lm, x) == np.asarray(T, dtype=object).dot(x)).all()
            if alt.is_integral():
                assert all(st.scale in (1, -1) and all(Fraction(c).denominator == 1 for _, c in st.terms)
                           for st in lm.steps)


def test_validation_refuses_a_wrong_core_step_and_a_wrong_transform():
    alt = next(a for a in STORED if a.algorithm.name == "winograd-2x2x2-r7")
    prep = emit_altbasis.prepare(alt)
    steps = render_steps(prep.schedule)
    names = lambda side, i, j: block_name(side, i, j, (2, 2, 2))  # noqa: E731
    check_torch_ops((2, 2, 2), 7, steps, "ok", names, tensor=prep.tensor)
    # the core is not A·B: checking it against the matmul tensor fails
    with pytest.raises(ValidationError):
        check_torch_ops((2, 2, 2), 7, steps, "core vs A·B", names)
    ops = emit_altbasis.linear_ops(prep.maps["a"][1])
    check_linear_ops(ops, alt.phi, True, "ok")
    bad = [dict(o) for o in ops]
    k = next(i for i, o in enumerate(bad) if o["op"] in ("add_", "sub_"))
    bad[k]["op"] = "sub_" if bad[k]["op"] == "add_" else "add_"
    with pytest.raises(ValidationError, match="row"):
        check_linear_ops(bad, alt.phi, True, "corrupted")


def test_compile_basis_option():
    f = library_algorithm("winograd")
    fn = compiler.compile(f, levels=2, cutoff=1, basis="auto")
    a, b = torch.randint(-4, 5, (9, 11)).double(), torch.randint(-4, 5, (11, 6)).double()
    assert torch.equal(fn(a, b), a @ b) and fn.altbasis.algorithm == f
    with pytest.raises(FactorizationError, match="not one of"):
        compiler.compile(library_algorithm("strassen"), basis=fn.altbasis)
    assert not hasattr(compiler.compile(f, levels=1), "altbasis")  # the default is unchanged
