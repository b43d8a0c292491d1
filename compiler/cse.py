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
from dataclasses import dataclass
from fractions import Fraction
from typing import Hashable, Sequence

from compiler.ir import Node, Program, exact, expand, lin, mul, verify

#: restarts by default; each is one greedy run with random tie-breaks (the first is deterministic)
DEFAULT_RESTARTS = 16
#: a budget on restarts × problem size (Σ terms² per side): small algorithms get all restarts,
#: AlphaTensor's largest (Σ terms² ≈ 360 000 per side) one run, so all 93 build in about a minute
_WORK_BUDGET = 300_000


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


def _greedy(exprs_in: list[dict], n_leaves: int, salt: int | None) -> CseResult:
    """One greedy run; ``salt`` None breaks ties by variable order, else pseudo-randomly.

    Hot loop, so pairs are plain ints: coefficients are interned (substitution never creates a new
    coefficient value: the temporary takes the coefficient of its first term), a ratio table maps
    two coefficient ids to a ratio id, and a pair is ``(x·NV + y)·NR + ratio`` with x < y.
    """
    cvals: list = []
    cid: dict = {}
    exprs: list[dict[int, int]] = []
    for e in exprs_in:
        d = {}
        for v, c in e.items():
            if c not in cid:
                cid[c] = len(cvals)
                cvals.append(c)
            d[v] = cid[c]
        exprs.append(d)
    rvals: list = []
    rid: dict = {}
    table = []
    for ci in cvals:
        row = []
        for cj in cvals:
            r = exact(Fraction(cj) / ci)
            if r not in rid:
                rid[r] = len(rvals)
                rvals.append(r)
            row.append(rid[r])
        table.append(row)
    NR = len(rvals) or 1
    NV = n_leaves + sum(len(e) for e in exprs) + 1
    unit = [r == 1 or r == -1 for r in rvals]
    where: dict[int, set[int]] = {}

    def priority(key: int) -> tuple:
        # prefer ±1 ratios (no scaling), then a deterministic or salted-hash order among ties
        xy, r = divmod(key, NR)
        x, y = divmod(xy, NV)
        return (not unit[r], x if salt is None else hash((x, y, salt)), y)

    heap: list = []
    for e, ex in enumerate(exprs):
        items = sorted(ex.items())
        for a in range(len(items)):
            xa, ca = items[a]
            for b in range(a + 1, len(items)):
                key = (xa * NV + items[b][0]) * NR + table[ca][items[b][1]]
                s = where.get(key)
                if s is None:
                    where[key] = {e}
                else:
                    s.add(e)
    heap = [(-len(s), priority(key), key) for key, s in where.items() if len(s) >= 2]
    heapq.heapify(heap)

    temps: list[tuple[int, int, object]] = []
    while heap:
        negc, _, key = heapq.heappop(heap)
        s = where.get(key)
        if not s or len(s) < 2:
            continue
        if len(s) != -negc:  # stale: counts only fall between pushes, so re-queue at the true count
            if len(s) < -negc:
                heapq.heappush(heap, (-len(s), priority(key), key))
            continue
        xy, r = divmod(key, NR)
        x, y = divmod(xy, NV)
        t = n_leaves + len(temps)
        temps.append((x, y, rvals[r]))
        for e in sorted(s):
            ex = exprs[e]
            cx, cy = ex.pop(x), ex.pop(y)
            tx, ty = table[cx], table[cy]
            for z, cz in ex.items():
                tz = table[cz]
                k1 = (x * NV + z) * NR + tx[cz] if x < z else (z * NV + x) * NR + tz[cx]
                k2 = (y * NV + z) * NR + ty[cz] if y < z else (z * NV + y) * NR + tz[cy]
                s2 = where.get(k1)
                if s2 is not None:
                    s2.discard(e)
                s2 = where.get(k2)
                if s2 is not None:
                    s2.discard(e)
            for z, cz in ex.items():  # t > z always: t is the newest variable
                k2 = (z * NV + t) * NR + table[cz][cx]
                s2 = where.get(k2)
                if s2 is None:
                    where[k2] = {e}
                else:
                    s2.add(e)
                    heapq.heappush(heap, (-len(s2), priority(k2), k2))
            ex[t] = cx
        where.pop(key, None)
    return CseResult(n_leaves, tuple(temps),
                     tuple(tuple(sorted((v, cvals[c]) for v, c in e.items())) for e in exprs))


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
            ex[index[leaf]] = c
        exprs.append(ex)
    size = sum(len(e) ** 2 for e in exprs) + 1
    runs = max(1, min(restarts, _WORK_BUDGET // size))
    best = None
    for k in range(runs):
        res = _greedy(exprs, len(leaves), None if k == 0 else seed * 1_000_003 + k)
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
