"""The IR: hash-consing, lowering, the exact verifier, the printer, the stability factor."""

from __future__ import annotations

from fractions import Fraction

import pytest

from compiler.algebra.constructions import kron
from compiler.algebra.factors import naive
from compiler.ir.program import IRError, Program, expand, inp, lin, mul, verify
from compiler.algebra.library import library_algorithm
from compiler.ir.lower import lower, lower_levels
from compiler.algebra.stability import stability_factor, stability_levels

LIBRARY = ["naive", "strassen", "winograd", "laderman", "4x4x4", "strassen2"]


def test_hash_consing_gives_the_same_node():
    a11, a22 = inp("a", 0, 0), inp("a", 1, 1)
    x = lin([(a11, 1), (a22, -1)])
    y = lin({a22: Fraction(-1), a11: 1})  # other order, Fraction coefficient: same value
    assert x is y
    assert mul(x, inp("b", 0, 0)) is mul(y, inp("b", 0, 0))
    assert lin([(a11, 1)]) is a11  # a single term with coefficient 1 is the node itself
    assert lin([(a11, 1), (a22, 1), (a22, -1)]) is a11  # duplicates merge, zeros drop


def test_nodes_are_immutable_and_sides_do_not_mix():
    a11 = inp("a", 0, 0)
    with pytest.raises(AttributeError):
        a11.op = "mul"
    with pytest.raises(IRError, match="mixes sides"):
        lin([(a11, 1), (inp("b", 0, 0), 1)])
    with pytest.raises(IRError, match="zero"):
        lin([(a11, 1), (a11, -1)])
    with pytest.raises(IRError):
        mul(inp("b", 0, 0), a11)


@pytest.mark.parametrize("name", LIBRARY)
def test_lowering_reads_back_the_factors(name):
    f = library_algorithm(name)
    prog = lower(f)  # verify() runs inside: the IR computes A·B exactly
    assert prog.rank == f.rank
    U, V, W = prog.factors()
    assert (U == f.U).all() and (V == f.V).all() and (W == f.W).all()


def test_verifier_names_the_wrong_output():
    prog = lower(library_algorithm("strassen"))
    outs = list(prog.outputs)
    outs[1] = lin([(prog.products[2], 1)])  # c12 = M3 only: M5 missing
    bad = Program(prog.shape, prog.products, tuple(outs), "broken")
    with pytest.raises(IRError, match="c12"):
        verify(bad)


def test_printer_reads_like_the_paper():
    text = lower(library_algorithm("strassen")).describe()
    assert "M1 = (a11 + a22) * (b11 + b22)" in text
    assert "M3 = a11 * (b12 - b22)" in text
    assert "c12 = M3 + M5" in text
    assert "c11 = M1 + M4 - M5 + M7" in text


def test_two_levels_by_kronecker_power():
    s = library_algorithm("strassen")
    two = lower_levels(s, 2)
    assert two.shape == (4, 4, 4) and two.rank == 49
    assert two.additions() == lower(kron(s, s)).additions()


def test_expand_follows_shared_temporaries():
    a11, a12, a21 = inp("a", 0, 0), inp("a", 0, 1), inp("a", 1, 0)
    t = lin([(a11, 1), (a21, -1)])
    u = lin([(t, 2), (a12, Fraction(1, 2))])
    assert expand(u) == {a11: 2, a21: -2, a12: Fraction(1, 2)}


def test_mod2_factorizations_are_refused(alphatensor_mod2):
    from compiler.algebra.factors import FactorizationError
    with pytest.raises(FactorizationError, match="modulo 2"):
        lower(alphatensor_mod2[0])


@pytest.mark.parametrize("name, expected", [("strassen", 12), ("winograd", 18)])
def test_stability_factor_matches_the_paper(name, expected):
    # Ballard, Benson, Druinsky, Lipshitz, Schwartz (2016): Strassen 12, Winograd's variant 18
    assert stability_factor(library_algorithm(name)) == expected


def test_stability_factor_of_classical_and_levels():
    assert stability_factor(naive(2, 3, 4)) == 3  # each c-block sums m = 3 products
    s = library_algorithm("strassen")
    assert stability_factor(kron(s, s)) == stability_levels(s, 2) == 144
