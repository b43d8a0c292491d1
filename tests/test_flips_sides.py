"""The plateau walk on per-side CSE counts (search.flips.sides): the three side counts add up to
the compiler's own count, the cache key ignores the order and signs of terms, every move keeps
validity and rank, an invalid proposal is never counted, scored or kept, and the result is the
best-rewarded scheme met (never worse than the start)."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.algebra.constructions import kron
from compiler.ir.cse import cse_program, side_additions
from compiler.algebra.factors import Factorization, naive
from compiler.algebra.library import library_algorithm
from compiler.ir.lower import lower
from search.flips.sides import SideCounter, SidesConfig, sides_walk
from search.flips.walker import WalkConfig, walk_search


@pytest.mark.parametrize("name", ["strassen", "winograd", "laderman", "naive-2x3x4"])
def test_side_additions_add_up_to_the_compilers_count(name):
    f = naive(2, 3, 4) if name == "naive-2x3x4" else library_algorithm(name)
    prog = lower(f)
    after = cse_program(prog)
    # the same three systems cse_program solves: operands of the products, and outputs over them
    sides = [side_additions([p.args[0] for p in prog.products]), side_additions([p.args[1] for p in prog.products]),
             side_additions(_outputs_over(after))]
    assert sum(sides) == after.additions().total


def _outputs_over(program):
    """The outputs of a CSE'd program re-expanded over its products (the c-side system)."""
    from compiler.ir.program import expand, lin
    return [lin(expand(o).items()) for o in program.outputs]


@pytest.mark.parametrize("seed", range(3))
def test_side_counter_ignores_order_and_signs_of_terms(seed):
    f = kron(library_algorithm("winograd"), library_algorithm("strassen"))
    gen = np.random.default_rng(seed)
    perm = gen.permutation(f.rank)
    s = np.where(gen.random(f.rank) < 0.5, -1, 1)
    # (u, v, w) -> (-u, v, -w) is the same product up to sign; reordering the terms changes nothing
    g = Factorization(f.shape, np.asarray(f.U)[:, perm] * s[perm], np.asarray(f.V)[:, perm],
                      np.asarray(f.W)[:, perm] * s[perm])
    assert g.verify()
    c = SideCounter(f.shape, restarts=1)
    assert c(f) == c(g)
    assert c.misses == 3  # the second scheme hit the cache on every side


@pytest.fixture(scope="module")
def walked_223():
    res = walk_search(naive(2, 2, 3), WalkConfig(field="Z", target_rank=11, max_flips=5_000_000, seed=3))
    assert res.best.rank == 11
    return res.best


def _additions(f: Factorization) -> float:
    return -float(cse_program(lower(f)).additions().total)


@pytest.mark.parametrize("start", ["walked_223", "strassen"])
def test_sides_walk_keeps_validity_and_never_gets_worse(start, walked_223):
    f = walked_223 if start == "walked_223" else library_algorithm("strassen")  # strassen: basis moves only
    # <2,2,3> sides are tiny systems, which the CSE always gives 64 restarts: 60 moves take a few seconds
    res = sides_walk(f, _additions, SidesConfig(max_moves=60, budget_s=60, seed=1, temperature=1.0))
    assert res.moves == 60 and res.accepted > 0
    assert res.best.verify() and res.best.rank <= f.rank and res.best.shape == f.shape
    assert res.best_value >= res.start_value == _additions(f)
    assert res.best_value == _additions(res.best)
    assert res.rejected_invalid == 0  # flips and changes of basis never break a scheme
    assert all(int(np.abs(np.asarray(a)).max()) <= 1 for a in (res.best.U, res.best.V, res.best.W))


def test_sides_walk_never_accepts_an_invalid_scheme(walked_223):
    """A proposer that corrupts every other scheme, and a reward that adores invalid ones."""

    def corrupt(f: Factorization, gen: np.random.Generator) -> Factorization:
        perm = gen.permutation(f.rank)
        U = np.asarray(f.U)[:, perm].copy()
        if gen.random() < 0.5:
            U[gen.integers(U.shape[0]), gen.integers(U.shape[1])] ^= 1  # breaks the scheme
        return Factorization(f.shape, U, np.asarray(f.V)[:, perm], np.asarray(f.W)[:, perm], f.field)

    def reward(f: Factorization) -> float:
        return 1e9 if not f.verify() else _additions(f)

    res = sides_walk(walked_223, reward, SidesConfig(max_moves=40, budget_s=60, seed=2, margin=100),
                     propose=corrupt)
    assert res.rejected_invalid > 0 and res.accepted > 0
    assert res.best.verify() and res.best_value < 1e9


def test_sides_walk_rejects_non_ternary_and_mod2_starts():
    f = library_algorithm("strassen")
    with pytest.raises(Exception):
        sides_walk(f.replace(field="Z2"), _additions, SidesConfig(max_moves=1))
    doubled = Factorization(f.shape, np.asarray(f.U) * 2, f.V, np.asarray(f.W))
    assert not doubled.verify()
    with pytest.raises(Exception):
        sides_walk(doubled, _additions, SidesConfig(max_moves=1))
