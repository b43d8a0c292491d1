"""The factorization type and exact verification: the library, mutations, AlphaTensor's files."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from compiler import Factorization, FactorizationError, load, matmul_tensor, naive
from compiler.algebra.library import ALIASES, factors_dir, laderman, library, library_algorithm, strassen, winograd
from compiler.algebra.records import best_known

LIBRARY_FILES = sorted(factors_dir().glob("*.npz"))
LIBRARY = [(p.name, f) for p in LIBRARY_FILES for f in load(p)]


def test_matmul_tensor_convention():
    t = matmul_tensor(2, 3, 4)
    assert t.shape == (6, 12, 8) and t.sum() == 2 * 3 * 4
    # T[i·m+j, j·p+k, i·p+k] = 1: a[1,2]·b[2,3] contributes to c[1,3]
    assert t[1 * 3 + 2, 2 * 4 + 3, 1 * 4 + 3] == 1
    assert t[1 * 3 + 2, 2 * 4 + 3, 0 * 4 + 3] == 0


def test_library_files_exist_and_match_the_generator():
    assert (factors_dir() / "4x4x4.npz").exists()
    generated = library()
    for stem, fs in generated.items():
        on_disk = load(factors_dir() / f"{stem}.npz")
        assert [f.digest for f in on_disk] == [f.digest for f in fs], f"factors/{stem}.npz is stale: rerun python -m compiler.algebra.library"


@pytest.mark.parametrize("fname,f", LIBRARY, ids=[f"{n}:{f.name}" for n, f in LIBRARY])
def test_every_library_algorithm_verifies_exactly(fname, f):
    res = f.verify()
    assert res, res.describe()
    assert f.field == "Q" and f.provenance.source, "library algorithms are real and carry provenance"
    assert f"r{f.rank}" in f.name and "x".join(map(str, f.shape)) in f.name, "names say shape and rank"


@pytest.mark.parametrize("fname,f", LIBRARY, ids=[f"{n}:{f.name}" for n, f in LIBRARY])
def test_one_coefficient_mutation_is_reported_at_the_right_entry(fname, f):
    rng = np.random.default_rng(abs(hash(f.name)) % 2**32)
    for factor in "UVW":
        arr = np.array(getattr(f, factor), dtype=object)
        row, col = int(rng.integers(arr.shape[0])), int(rng.integers(arr.shape[1]))
        arr[row, col] = arr[row, col] + 1
        bad = f.replace(**{factor: arr})
        res = bad.verify()
        assert not res
        # Every wrong entry must involve the mutated row of the mutated factor, and the
        # reported entries must be exactly the tensor entries that really differ.
        axis = "UVW".index(factor)
        for mm in res.mismatches:
            assert (mm.a, mm.b, mm.c)[axis] == row
        assert "INVALID" in res.describe() and f"T[{res.mismatches[0].a},{res.mismatches[0].b},{res.mismatches[0].c}]" in res.describe()


def test_known_properties_of_classical_algorithms():
    s, w, lad = strassen(), winograd(), laderman()
    assert (s.rank, w.rank, lad.rank) == (7, 7, 23)
    assert s.nnz == (12, 12, 12)
    assert naive(2, 3, 4).rank == 24 and naive(2, 3, 4).verify()
    assert best_known((4, 4, 4), "Z2").rank == 47 and best_known((3, 3, 3)).rank == 23
    assert best_known((5, 4, 3)).rank == best_known((3, 4, 5)).rank, "records are invariant under permuting the shape"


def test_aliases_resolve():
    for alias in ALIASES:
        f = library_algorithm(alias)
        assert f.verify()
    assert library_algorithm("3x3x3").rank == 23, "a shape name picks the lowest rank"
    with pytest.raises(FactorizationError, match="no library algorithm named"):
        library_algorithm("nonesuch")


def test_factorization_is_immutable_and_checks_shapes():
    f = strassen()
    with pytest.raises(ValueError):
        f.U[0, 0] = 5  # read-only array
    with pytest.raises(Exception):
        f.name = "x"  # frozen dataclass
    with pytest.raises(FactorizationError, match=r"U must have shape \(4, R\)"):
        Factorization((2, 2, 2), np.zeros((3, 7)), f.V, f.W)
    with pytest.raises(FactorizationError, match="disagree on the rank"):
        Factorization((2, 2, 2), f.U, f.V[:, :6], f.W)
    with pytest.raises(FactorizationError, match="non-numeric"):
        Factorization((2, 2, 2), np.array([["x"] * 7] * 4, dtype=object), f.V, f.W)
    with pytest.raises(FactorizationError, match="field"):
        Factorization((2, 2, 2), f.U, f.V, f.W, field="GF3")


def test_rational_coefficients_are_exact():
    # Halve U and double W: still valid, and the halves are held as Fractions, not floats.
    f = strassen()
    U = np.array(f.U, dtype=object) * Fraction(1, 2)
    W = np.array(f.W, dtype=object) * 2
    g = f.replace(U=U, W=W)
    assert not g.is_integral and g.verify()
    assert Fraction(1, 2) in g.coefficients()
    h = f.replace(U=np.array(f.U, dtype=float) / 2, W=np.array(f.W) * 2)  # dyadic floats convert exactly
    assert h.digest == g.digest
    with pytest.raises(FactorizationError, match="exact"):
        f.replace(U=np.array(f.U, dtype=float) / 3)


def test_digest_is_content_only():
    f = strassen()
    assert f.replace(name="other").digest == f.digest
    assert f.replace(name="other") == f
    assert winograd().digest != f.digest


# -- AlphaTensor's published files -------------------------------------------------------------

def test_all_alphatensor_real_entries_load_and_verify(alphatensor_real):
    assert len(alphatensor_real) == 93
    bad = [f.name for f in alphatensor_real if not f.verify()]
    assert not bad, bad
    assert any(not f.is_integral for f in alphatensor_real), "some entries hold 1/2 and 1/8"
    shapes = {f.shape: f.rank for f in alphatensor_real}
    assert shapes[(4, 4, 4)] == 49 and shapes[(3, 4, 5)] == 47 and shapes[(4, 5, 5)] == 76


def test_all_alphatensor_mod2_entries_load_and_verify(alphatensor_mod2):
    assert len(alphatensor_mod2) == 20
    assert all(f.field == "Z2" for f in alphatensor_mod2)
    bad = [f.name for f in alphatensor_mod2 if not f.verify()]
    assert not bad, bad


def test_alphatensor_mod2_444_is_refused_for_real_arithmetic(alphatensor_mod2):
    f = next(f for f in alphatensor_mod2 if f.shape == (4, 4, 4))
    assert f.rank == 47
    assert not f.verify("Q"), "47 products do not multiply real 4x4 matrices"
    with pytest.raises(FactorizationError, match=r"valid only modulo 2"):
        f.require_real()
