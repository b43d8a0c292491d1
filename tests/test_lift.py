"""Hensel lifting: known schemes reduced mod 2 lift back to schemes valid over Q (exactly
verified), AlphaTensor's small mod-2 schemes lift, and the <4,4,4;47> mod-2 scheme is reported
as not liftable (inconsistent already mod 4: it is genuinely characteristic-2)."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.algebra.constructions import kron
from compiler.algebra.factors import Factorization, naive
from compiler.algebra.library import library_algorithm
from search.flips.walker import WalkConfig, walk_search
from search.lift import hensel_lift


def _mod2(f: Factorization) -> Factorization:
    return Factorization(f.shape, f.U, f.V, f.W, "Z2", f.label() + "-mod2")


@pytest.mark.parametrize("name", ["strassen", "winograd", "laderman", "naive-2x3x4", "strassen^2"])
def test_known_schemes_round_trip_through_mod_2(name):
    f = {"naive-2x3x4": lambda: naive(2, 3, 4),
         "strassen^2": lambda: kron(library_algorithm("strassen"), library_algorithm("strassen")),
         }.get(name, lambda: library_algorithm(name))()
    rep = hensel_lift(_mod2(f))
    assert rep.ok, rep.describe()
    g = rep.factorization
    assert g.field == "Q" and g.verify() and g.rank == f.rank
    # the lift reduces to the scheme it started from
    for a, b in ((g.U, f.U), (g.V, f.V), (g.W, f.W)):
        assert np.array_equal(np.mod(np.asarray(a, dtype=np.int64), 2), np.mod(b, 2))
    assert "Hensel" in g.provenance.method


def test_alphatensor_small_mod2_schemes_lift(alphatensor_mod2):
    small = [f for f in alphatensor_mod2 if f.rank <= 40]
    assert len(small) >= 10
    for f in small:
        rep = hensel_lift(f)
        assert rep.ok, f"{f.label()}: {rep.describe()}"
        assert rep.factorization.verify() and rep.factorization.rank == f.rank


def test_alphatensor_444_rank47_does_not_lift(alphatensor_mod2):
    (f,) = [f for f in alphatensor_mod2 if f.shape == (4, 4, 4)]
    assert f.rank == 47
    rep = hensel_lift(f)
    assert not rep.ok and rep.definitive and rep.factorization is None
    assert "mod 2^2" in rep.describe() and "does not lift" in rep.describe()


def test_invalid_scheme_is_reported_not_lifted():
    f = library_algorithm("strassen")
    U = np.array(f.U)
    U[0, 0] += 1  # breaks it mod 2 as well
    rep = hensel_lift(Factorization(f.shape, U, f.V, f.W, "Z2"))
    assert not rep.ok and "not valid mod 2" in rep.reason


def test_walk_found_mod2_scheme_lifts_or_says_why():
    res = walk_search(naive(2, 2, 3), WalkConfig(field="Z2", target_rank=11, max_flips=5_000_000, seed=4))
    assert res.best.rank == 11 and res.best.field == "Z2"
    rep = hensel_lift(res.best)
    if rep.ok:
        assert rep.factorization.verify() and rep.factorization.rank == 11
    else:  # a report, never an exception or a silently invalid scheme
        assert rep.reason


@pytest.mark.parametrize("name", ["strassen", "winograd", "laderman", "strassen^2"])
def test_ternary_lift_recovers_signs_of_ternary_schemes(name):
    from search.lift import ternary_lift
    f = (kron(library_algorithm("strassen"), library_algorithm("strassen")) if name == "strassen^2"
         else library_algorithm(name))
    rep = ternary_lift(_mod2(f))
    assert rep.ok, rep.describe()
    g = rep.factorization
    assert g.field == "Q" and g.verify() and g.rank == f.rank
    for a, b in ((g.U, f.U), (g.V, f.V), (g.W, f.W)):
        a = np.asarray(a, np.int64)
        assert np.abs(a).max() <= 1 and np.array_equal(a != 0, np.asarray(b) != 0)  # same support, signs only


def test_ternary_lift_reports_when_no_signs_exist(alphatensor_mod2):
    from search.lift import ternary_lift
    # AlphaTensor's <4,4,4;47> has no 2-adic lift at all (inconsistent mod 4), so no signs either
    (f,) = [f for f in alphatensor_mod2 if f.shape == (4, 4, 4)]
    rep = ternary_lift(f)
    assert not rep.ok and rep.definitive and rep.factorization is None
    assert "no signs" in rep.describe()
