"""Alternative-basis algorithms: the decomposition is exact, the core runs, and the search never loses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import change_basis, kron
from compiler.algebra.altbasis import AltBasis, additions, load_altbasis, save_altbasis, sparsify
from compiler.algebra.factors import FactorizationError
from compiler.algebra.library import laderman, strassen, winograd
from _exactness import unimodular

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def algorithms(draw):
    f = draw(st.sampled_from([strassen(), winograd(), laderman()]))
    n, m, p = f.shape
    return change_basis(f, draw(unimodular(n)), draw(unimodular(m)), draw(unimodular(p)))


def blocks(M: np.ndarray, r: int, c: int) -> list[np.ndarray]:
    """Row-major r×c blocks of M (object arrays: exact integers)."""
    h, w = M.shape[0] // r, M.shape[1] // c
    return [M[i * h:(i + 1) * h, j * w:(j + 1) * w] for i in range(r) for j in range(c)]


def lin(coeffs, xs):
    """Σ coeffs[i]·xs[i] exactly (Fractions stay exact in object arrays)."""
    out = 0
    for k, x in zip(coeffs, xs):
        if k != 0:
            out = out + k * x
    return out


def run_altbasis(alt: AltBasis, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One level as the compiled form runs it: transform, core products, inverse transform."""
    n, m, p = alt.algorithm.shape
    A, B = blocks(a, n, m), blocks(b, m, p)
    At = [lin(row, A) for row in np.asarray(alt.phi, dtype=object)]       # ã = Φ·a
    Bt = [lin(row, B) for row in np.asarray(alt.psi, dtype=object)]       # b̃ = Ψ·b
    Uc, Vc, Wc = (np.asarray(x, dtype=object) for x in (alt.Uc, alt.Vc, alt.Wc))
    M = [lin(Uc[:, r], At).dot(lin(Vc[:, r], Bt)) for r in range(alt.algorithm.rank)]
    Ct = [lin(row, M) for row in Wc]                                        # c̃ = Wc·M
    C = [lin(row, Ct) for row in np.asarray(alt.upsilon_inv, dtype=object)]  # c = Υ⁻¹·c̃
    return np.block([[C[i * p + k] for k in range(p)] for i in range(n)])


def test_winograd_core_has_12_additions():
    # Karstadt & Schwartz: 12 is the fewest additions of any 2x2 rank-7 core in any basis.
    for f in (winograd(), strassen()):
        alt = sparsify(f, support=4)
        assert sum(alt.core_additions()) == 12, (f.name, alt.core_additions())
        assert alt.is_integral()


@SETTINGS
@given(algorithms(), st.integers(0, 2**32 - 1))
def test_sparsify_is_exact_never_worse_and_runs(f, seed):
    alt = sparsify(f, support=3)
    alt.verify()
    assert sum(alt.core_additions()) <= sum(additions(f))
    n, m, p = f.shape
    rng = np.random.default_rng(seed)
    a = rng.integers(-9, 10, size=(n * 3, m * 2)).astype(object)
    b = rng.integers(-9, 10, size=(m * 2, p * 5)).astype(object)
    assert (run_altbasis(alt, a, b) == a.dot(b)).all()


def test_kronecker_product_and_alphatensor(alphatensor_real):
    for f in [kron(winograd(), winograd())] + [g for g in alphatensor_real if g.shape == (3, 3, 3)]:
        alt = sparsify(f, support=3)
        assert sum(alt.core_additions()) < sum(additions(f))
        rng = np.random.default_rng(0)
        n, m, p = f.shape
        a = rng.integers(-5, 6, size=(n * 2, m)).astype(object)
        b = rng.integers(-5, 6, size=(m, p * 3)).astype(object)
        assert (run_altbasis(alt, a, b) == a.dot(b)).all()


def test_round_trip_and_refusal(tmp_path):
    alt = sparsify(winograd(), support=4)
    path = tmp_path / "alt.json"
    save_altbasis(path, [alt])
    (back,) = load_altbasis(path)
    assert back.algorithm == alt.algorithm
    assert all((np.asarray(x, dtype=object) == np.asarray(y, dtype=object)).all()
               for x, y in ((back.phi, alt.phi), (back.Uc, alt.Uc), (back.Wc, alt.Wc)))
    # one wrong coefficient in the core: the decomposition no longer reproduces U
    Uc = np.array(alt.Uc, copy=True)
    Uc[0, 0] += 1
    bad = AltBasis(alt.algorithm, alt.phi, alt.psi, alt.upsilon, Uc, alt.Vc, alt.Wc)
    with pytest.raises(FactorizationError, match="do not reproduce U"):
        bad.verify()
    singular = np.zeros_like(np.asarray(alt.phi))
    with pytest.raises(FactorizationError):
        AltBasis(alt.algorithm, singular, alt.psi, alt.upsilon, alt.Uc, alt.Vc, alt.Wc).verify()


def test_stored_results_are_proven_and_named():
    """factors/altbasis.json (python -m compiler.algebra.altbasis factors/*.npz --out ...): every
    entry is proven on load, carries provenance, and Winograd's and Strassen's cores have 12."""
    from pathlib import Path
    from compiler.algebra.altbasis import load_altbasis
    items = load_altbasis(Path(__file__).resolve().parents[1] / "factors" / "altbasis.json")
    by_name = {a.algorithm.name: a for a in items}
    assert sum(by_name["winograd-2x2x2-r7"].core_additions()) == 12
    assert sum(by_name["strassen-2x2x2-r7"].core_additions()) == 12
    assert sum(by_name["laderman-3x3x3-r23"].core_additions()) == 74
    for a in items:
        assert a.provenance.method and a.algorithm.provenance.source is not None
        assert "alphatensor" not in a.algorithm.name.lower()
