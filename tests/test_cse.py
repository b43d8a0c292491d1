"""CSE of additions: the reference figures, and that elimination never changes what is computed."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.ir.cse import Effort, additions_after_cse, cse_program, eliminate
from compiler.algebra.library import library_algorithm
from compiler.ir.lower import lower

# (library name, additions of one level after CSE must be at most this): the references,
# counted the usual way (each binary ± of blocks is one addition).
FIGURES = [
    ("winograd", 15),    # Winograd's <2,2,2;7>: 15
    ("strassen", 18),    # Strassen's: 18 (nothing to share)
    ("4x4x4", 165),      # two-level Winograd <4,4,4;49>: nested count 4·15 + 7·15 = 165 (we reach 160)
    ("laderman", 70),    # Laderman <3,3,3;23>: at most 70 (best published 3×3 rank-23 scheme: 58)
]


@pytest.mark.parametrize("name, limit", FIGURES)
def test_cse_meets_the_reference_figures(name, limit):
    prog = cse_program(lower(library_algorithm(name)))  # verified exactly inside
    assert prog.additions().total <= limit


def test_winograd_saving_is_on_the_output_side():
    prog = cse_program(lower(library_algorithm("winograd")))
    add = prog.additions()
    assert (add.a, add.b, add.c) == (4, 4, 7)


def test_alphatensor_3x3x3_rank23(alphatensor_real):
    # 36 + 30 + 44 = 110 naive; the issue asks for at most 70. Reached: a 19, b 19, c 32 = 70 (the
    # b side needs the difference pass's target hits, M2 = M1 - M4, in one of its random orders).
    f = next(f for f in alphatensor_real if f.shape == (3, 3, 3))
    assert f.rank == 23
    prog = cse_program(lower(f))  # verified exactly inside
    assert lower(f).additions().total == 110
    assert prog.additions().total <= 70


def test_additions_after_cse_for_the_search_reward():
    assert additions_after_cse(library_algorithm("winograd")) == 15


@pytest.mark.parametrize("effort", [Effort(full_restarts_up_to=0, other_orientation=0, buckets_above=0), "high"])
def test_every_effort_gives_an_exact_program(effort):
    prog = lower(library_algorithm("4x4x4"))
    out = cse_program(prog, effort=effort)  # verified exactly inside
    assert out.additions().total < prog.additions().total


def test_restarts_never_worse_than_plain_greedy():
    prog = lower(library_algorithm("4x4x4"))
    one = cse_program(prog, restarts=1).additions().total
    many = cse_program(prog, restarts=16).additions().total
    assert many <= one


def _expand(res, variables):
    """Expand a CseResult back over the leaves; ``("target", j)`` variables stand for target j."""
    n0 = sum(1 for v in variables if not (isinstance(v, tuple) and v[0] == "target"))
    k = len(variables) - n0
    memo: dict = {}

    def var(v):
        if v not in memo:
            if v < n0:
                memo[v] = {variables[v]: Fraction(1)}
            elif v < n0 + k:
                memo[v] = target(v - n0)
            else:
                x, y, r = res.temps[v - n0 - k]
                memo[v] = combine([(x, 1), (y, r)])
        return memo[v]

    def combine(terms):
        d: dict = {}
        for v, c in terms:
            for leaf, cc in var(v).items():
                d[leaf] = d.get(leaf, 0) + c * cc
        return {leaf: c for leaf, c in d.items() if c != 0}

    def target(j):
        return combine(res.exprs[j])

    return [target(j) for j in range(len(res.exprs))]


coef = st.sampled_from([1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 8)])
target = st.dictionaries(st.integers(0, 7), coef, min_size=1, max_size=6)


# the restarted heap greedy (small systems), and the one-run bucket-queue greedy that the default
# effort uses for large systems (forced here by a zero threshold)
EFFORTS = [None, Effort(full_restarts_up_to=0, other_orientation=0, buckets_above=0)]


@settings(max_examples=60, deadline=None)
@given(st.lists(target, min_size=1, max_size=12), st.integers(0, 3), st.sampled_from(EFFORTS))
def test_elimination_preserves_every_target(targets, seed, effort):
    res, leaves = eliminate(targets, restarts=3, seed=seed, effort=effort)
    assert _expand(res, leaves) == [{k: Fraction(v) for k, v in t.items()} for t in targets]
    naive = sum(len(t) - 1 for t in targets)
    assert res.additions <= naive
