"""Common-subexpression elimination of block additions, on all three sides.

Public API:

- ``eliminate(targets, restarts=..., seed=0) -> CseResult``: ``targets`` are linear combinations
  ``{leaf: Fraction}``; returns ``temps`` (``t = x + r·y``, each one addition) and the targets
  rewritten over leaves and temps, minimising ``additions`` (then scalings).
- ``cse_program(program, restarts=..., seed=0) -> Program``: the same program with shared
  temporaries on the a-side (operands of the products), the b-side, and the c-side (the outputs as
  combinations of products: where Winograd's saving lives). The result is verified exactly.
- ``cse_counts(program)``: ``(naive, after)`` additions, for the build report.

Method. Greedy pairwise elimination (as in Benson & Ballard's fast-matmul code generator, idea
only): find the pair of terms ``(x, r·y)`` (equal up to a common factor) that occurs in the most
targets, make it a temporary, substitute, repeat while some pair occurs at least twice. Greedy is
order-sensitive when several pairs tie, so we run it with randomised tie-breaking ``restarts``
times (the first run is the deterministic one) and keep the best; with 16 restarts Winograd's
<2,2,2;7> reaches its 15 additions, where plain greedy with an unlucky order does not. Pair counts
are kept incrementally (a heap with lazy invalidation), so AlphaTensor's <11,12,12;990> takes
well under a second per run.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Hashable, Sequence

from compiler.ir import Node, Program, expand, lin, mul, verify

#: restarts by default; each is one greedy run with random tie-breaks (the first is deterministic)
DEFAULT_RESTARTS = 16
#: a budget on restarts × problem size (terms²), so the 93 AlphaTensor entries build in seconds
_WORK_BUDGET = 4_000_000


@dataclass(frozen=True)
class CseResult:
    """Temporaries ``temps[k] = (x, y, r)`` meaning ``t_k = x + r·y``; ``exprs`` over leaves and temps.

    Variables are ints: ``0 .. n_leaves-1`` are the leaves, ``n_leaves + k`` is ``temps[k]``.
    """

    n_leaves: int
    temps: tuple[tuple[int, int, Fraction], ...]
    exprs: tuple[tuple[tuple[int, Fraction], ...], ...]

    @property
    def additions(self) -> int:
        return len(self.temps) + sum(max(len(e) - 1, 0) for e in self.exprs)

    @property
    def scalings(self) -> int:
        return sum(1 for _, _, r in self.temps if abs(r) != 1) + sum(
            1 for e in self.exprs for _, c in e if abs(c) != 1 and len(e) > 1)


def _pair_key(x: int, cx: Fraction, y: int, cy: Fraction) -> tuple[int, int, Fraction]:
    return (x, y, cy / cx) if x < y else (y, x, cx / cy)


def _greedy(exprs_in: list[dict[int, Fraction]], n_leaves: int, rng: random.Random | None) -> CseResult:
    exprs = [dict(e) for e in exprs_in]
    where: dict[tuple, set[int]] = {}
    prio: dict[tuple, tuple] = {}
    heap: list = []

    def priority(key) -> tuple:
        p = prio.get(key)
        if p is None:
            # prefer ±1 ratios (no scaling), then a random (or deterministic) order among ties
            p = (abs(key[2]) != 1, rng.random() if rng else 0.0, key[0], key[1])
            prio[key] = p
        return p

    def touch(key) -> None:
        s = where.get(key)
        if s and len(s) >= 2:
            heapq.heappush(heap, (-len(s), priority(key), key))

    def add_pairs(e: int, var: int) -> None:
        ex = exprs[e]
        cv = ex[var]
        for x, cx in ex.items():
            if x != var:
                key = _pair_key(var, cv, x, cx)
                where.setdefault(key, set()).add(e)
                touch(key)

    def drop_pairs(e: int, var: int) -> None:
        ex = exprs[e]
        cv = ex[var]
        for x, cx in ex.items():
            if x != var:
                key = _pair_key(var, cv, x, cx)
                s = where.get(key)
                if s is not None:
                    s.discard(e)

    for e, ex in enumerate(exprs):
        items = sorted(ex.items())
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                key = _pair_key(items[a][0], items[a][1], items[b][0], items[b][1])
                where.setdefault(key, set()).add(e)
    for key, s in where.items():
        if len(s) >= 2:
            heap.append((-len(s), priority(key), key))
    heapq.heapify(heap)

    temps: list[tuple[int, int, Fraction]] = []
    while heap:
        negc, _, key = heapq.heappop(heap)
        s = where.get(key)
        if not s or len(s) != -negc or len(s) < 2:
            continue  # stale heap entry
        x, y, r = key
        t = n_leaves + len(temps)
        temps.append((x, y, r))
        for e in sorted(s):
            ex = exprs[e]
            cx = ex[x]
            drop_pairs(e, x)
            del ex[x]
            drop_pairs(e, y)
            del ex[y]
            ex[t] = cx
            add_pairs(e, t)
        where.pop(key, None)
    return CseResult(n_leaves, tuple(temps), tuple(tuple(sorted(e.items())) for e in exprs))


def eliminate(targets: Sequence[dict[Hashable, Fraction]], restarts: int = DEFAULT_RESTARTS,
              seed: int = 0) -> tuple[CseResult, list[Hashable]]:
    """Best of ``restarts`` greedy runs; returns the result and the leaf list (variable i = leaves[i])."""
    leaves: list[Hashable] = []
    index: dict[Hashable, int] = {}
    exprs: list[dict[int, Fraction]] = []
    for tgt in targets:
        ex = {}
        for leaf, c in tgt.items():
            if leaf not in index:
                index[leaf] = len(leaves)
                leaves.append(leaf)
            ex[index[leaf]] = Fraction(c)
        exprs.append(ex)
    size = sum(len(e) ** 2 for e in exprs) + 1
    runs = max(1, min(restarts, _WORK_BUDGET // size))
    rng = random.Random(seed)
    best = None
    for k in range(runs):
        res = _greedy(exprs, len(leaves), rng if k else None)
        if best is None or (res.additions, res.scalings) < (best.additions, best.scalings):
            best = res
    return best, leaves


def _rebuild(res: CseResult, leaves: list[Node]) -> list[Node]:
    nodes: list[Node] = list(leaves)
    for x, y, r in res.temps:
        nodes.append(lin([(nodes[x], 1), (nodes[y], r)]))
    return [lin([(nodes[v], c) for v, c in e]) for e in res.exprs]


def _side(targets: list[Node], restarts: int, seed: int) -> dict[Node, Node]:
    uniq = list(dict.fromkeys(targets))
    res, leaves = eliminate([expand(t) for t in uniq], restarts, seed)
    return dict(zip(uniq, _rebuild(res, leaves)))


def cse_program(program: Program, restarts: int = DEFAULT_RESTARTS, seed: int = 0) -> Program:
    """``program`` with shared temporaries on the a-, b- and c-sides (verified exactly)."""
    left = _side([p.args[0] for p in program.products], restarts, seed)
    right = _side([p.args[1] for p in program.products], restarts, seed)
    new_prod = {p: mul(left[p.args[0]], right[p.args[1]]) for p in program.products}
    outs_in = [lin((new_prod[leaf], c) for leaf, c in expand(o).items()) for o in program.outputs]
    outs = _side(outs_in, restarts, seed)
    prog = Program(program.shape, tuple(new_prod[p] for p in program.products),
                   tuple(outs[o] for o in outs_in), program.name, program.digest, program.source)
    return verify(prog)


def cse_counts(program: Program, restarts: int = DEFAULT_RESTARTS, seed: int = 0) -> tuple[int, int]:
    """``(additions before, additions after)`` CSE."""
    return program.additions().total, cse_program(program, restarts, seed).additions().total


def additions_after_cse(f, restarts: int = DEFAULT_RESTARTS) -> int:
    """Block additions of one level of factorization ``f`` after CSE (the search's cost model)."""
    from compiler.lower import lower
    return cse_program(lower(f), restarts).additions().total
