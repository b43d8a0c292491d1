"""Property tests: the classical constructions turn valid algorithms into valid ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import change_basis, cyclic, direct_sum, kron, naive, permute_shape, transpose
from compiler.algebra.constructions import exact_inverse
from compiler.algebra.factors import FactorizationError
from compiler.algebra.library import laderman, strassen, winograd
from _exactness import unimodular

BASE = [strassen(), winograd(), laderman(), naive(1, 2, 3), naive(2, 1, 2), naive(3, 2, 1)]
SMALL = [strassen(), winograd(), naive(1, 2, 3), naive(2, 1, 2), naive(2, 2, 1)]
algorithms = st.sampled_from(BASE)
small_algorithms = st.sampled_from(SMALL)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def basis_change(draw):
    f = draw(algorithms)
    n, m, p = f.shape
    return f, draw(unimodular(n)), draw(unimodular(m)), draw(unimodular(p))


@SETTINGS
@given(basis_change())
def test_unimodular_change_of_basis_stays_valid_and_integral(case):
    f, X, Y, Z = case
    g = change_basis(f, X, Y, Z)
    assert g.verify(), g.verify().describe()
    assert g.rank == f.rank and g.is_integral


@SETTINGS
@given(algorithms, st.integers(-3, 3).filter(lambda x: x != 0))
def test_rational_change_of_basis_stays_valid(f, s):
    n, m, p = f.shape
    X = np.diag([s] + [1] * (n - 1))  # det s: the inverse holds 1/s
    g = change_basis(f, X, np.eye(m, dtype=int), np.eye(p, dtype=int))
    assert g.verify() and g.rank == f.rank


@SETTINGS
@given(small_algorithms, small_algorithms)
def test_kronecker_product_is_valid_with_rank_product(f, g):
    h = kron(f, g)
    assert h.shape == tuple(a * b for a, b in zip(f.shape, g.shape))
    assert h.rank == f.rank * g.rank
    assert h.verify(), h.verify().describe()


@SETTINGS
@given(algorithms, st.sampled_from("nmp"), st.integers(1, 3))
def test_direct_sum_along_each_axis(f, axis, extra):
    n, m, p = f.shape
    g = naive(*[extra if ax == axis else d for ax, d in zip("nmp", (n, m, p))])
    h = direct_sum(f, g, axis)
    assert h.rank == f.rank + g.rank
    assert h.verify(), h.verify().describe()
    k = direct_sum(g, f, axis)
    assert k.verify()


def test_direct_sum_rejects_mismatched_shapes():
    with pytest.raises(FactorizationError, match="needs equal"):
        direct_sum(strassen(), laderman(), "p")


@SETTINGS
@given(algorithms)
def test_shape_symmetries(f):
    n, m, p = f.shape
    c = cyclic(f)
    assert c.shape == (m, p, n) and c.rank == f.rank and c.verify()
    t = transpose(f)
    assert t.shape == (p, m, n) and t.rank == f.rank and t.verify()
    assert cyclic(cyclic(c)).digest == f.digest, "three rotations are the identity"
    assert transpose(t).digest == f.digest, "transposing twice is the identity"
    for target in [(n, m, p), (m, p, n), (p, n, m), (p, m, n), (n, p, m), (m, n, p)]:
        assert permute_shape(f, target).shape == target


def test_derived_library_shapes():
    s = strassen()
    f = direct_sum(s, naive(2, 2, 1), "p")
    assert f.shape == (2, 2, 3) and f.rank == 11 and f.verify()
    assert kron(s, s).rank == 49 and kron(s, s).verify()


def test_exact_inverse_and_singular():
    X = np.array([[2, 1], [1, 1]])
    Xi = exact_inverse(X)
    assert (np.array(Xi, dtype=object).dot(X) == np.eye(2, dtype=int)).all()
    with pytest.raises(FactorizationError, match="singular"):
        exact_inverse(np.array([[1, 2], [2, 4]]))


def test_z2_field_propagates():
    f = strassen().replace(field="Z2")
    assert kron(f, strassen()).field == "Z2"
    assert kron(f, strassen()).verify()
