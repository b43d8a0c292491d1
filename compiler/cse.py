"""Common-subexpression elimination of block additions, on all three sides.

Public API:

- ``eliminate(targets, restarts=..., seed=0) -> CseResult``: ``targets`` are linear combinations
  ``{leaf: Fraction}``; returns ``temps`` (``t = x + r·y``, each one addition) and the targets
  rewritten over leaves and temps, minimising ``additions`` (then scalings).
- ``cse_program(program, restarts=..., seed=0) -> Program``: the same program with shared
  temporaries on the a-side (operands of the products), the b-side, and the c-side (the outputs as
  combinations of products: where Winograd's saving lives). The result is verified exactly.
- ``cse_counts(program)``: ``(naive, after)`` additions, for the build report.

Method (the best of several, per side): greedy pairwise elimination (as in Benson & Ballard's fast-matmul code generator, idea
only): find the pair of terms ``(x, r·y)`` (equal up to a common factor) that occurs in the most
targets, make it a temporary, substitute, repeat while some pair occurs at least twice. Greedy is
order-sensitive when several pairs tie, so we run it with randomised tie-breaking ``restarts``
times (the first run is the deterministic one) and keep the best; with 16 restarts Winograd's
<2,2,2;7> reaches its 15 additions, where plain greedy with an unlucky order does not. Pair counts
are kept incrementally (a heap with lazy invalidation, integer pair keys). Beyond greedy:
randomised greedy restarts (sometimes one of the next-best pairs), a difference pass (a target
written as λ·(another target) + a short residual: Winograd's ``s2 = s1 − a11``), targets equal up
to a scalar computed once (the factor folds into the product's alpha), and the transposition
principle (CSE of the transposed map, circuit reversed). Figures: Winograd 15, Strassen 18,
winograd^2 <4,4,4;49> 160 (reference 165), Laderman 62; AlphaTensor's <3,3,3;23> 71 (target 70).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Hashable, Sequence

from compiler.ir import Node, Program, exact, expand, lin, mul, verify

#: randomised runs take one of the next ``_EXPLORE_WIDTH`` best pairs with probability ``_EXPLORE``
_EXPLORE, _EXPLORE_WIDTH = 0.15, 3
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
    rng = random.Random(salt) if salt is not None else None

    def pop_valid():
        while heap:
            entry = heapq.heappop(heap)
            negc, _, key = entry
            s = where.get(key)
            if not s or len(s) < 2:
                continue
            if len(s) != -negc:  # stale: counts only fall between pushes, so re-queue at the true count
                if len(s) < -negc:
                    heapq.heappush(heap, (-len(s), priority(key), key))
                continue
            return entry
        return None

    while heap:
        entry = pop_valid()
        if entry is None:
            break
        if rng is not None and rng.random() < _EXPLORE:
            # randomised greedy: sometimes take one of the next best pairs instead of the best
            others = [e for e in (pop_valid() for _ in range(_EXPLORE_WIDTH)) if e is not None]
            if others:
                pick = rng.randrange(len(others))
                others[pick], entry = entry, others[pick]
            for e in others:
                heapq.heappush(heap, e)
        _, _, key = entry
        s = where[key]
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


def _differences(exprs: list[dict], order: list[int], n_leaves: int) -> list[dict]:
    """Rewrite targets as ``λ·T_j + (T_i − λ·T_j)`` when an earlier target T_j (in ``order``) makes
    ``T_i`` cheaper; ``T_j`` enters as the variable ``n_leaves + j``. Pairwise CSE only shares
    common *sub-sums*; this also shares near-equal targets (Winograd's ``s2 = s1 − a11``)."""
    out = [dict(e) for e in exprs]
    seen: list[int] = []
    by_leaf: dict[int, list[int]] = {}
    for i in order:
        ti = exprs[i]
        best, best_cost = None, len(ti)  # cost in terms; rewriting costs residual terms + 1
        cands = {j for x in ti for j in by_leaf.get(x, ())}
        for j in sorted(cands):
            tj = exprs[j]
            for x in ti:
                if x not in tj:
                    continue
                lam = exact(Fraction(ti[x]) / tj[x])
                res = {}
                for v in set(ti) | set(tj):
                    c = exact(ti.get(v, 0) - lam * tj.get(v, 0))
                    if c != 0:
                        res[v] = c
                if len(res) + 1 < best_cost:
                    best, best_cost = (j, lam, res), len(res) + 1
        if best is not None:
            j, lam, res = best
            res[n_leaves + j] = lam
            out[i] = res
        seen.append(i)
        for x in ti:
            by_leaf.setdefault(x, []).append(i)
    return out


#: the difference pass compares every pair of targets: only for up to this many targets
_DIFF_MAX_TARGETS = 400


def eliminate(targets: Sequence[dict[Hashable, Fraction]], restarts: int = DEFAULT_RESTARTS,
              seed: int = 0) -> tuple[CseResult, list[Hashable]]:
    """Best of ``restarts`` runs; returns the result and the variable list: variable i < len(leaves)
    is ``leaves[i]``, ``("target", j)`` entries stand for target j itself (difference rewriting)."""
    leaves: list[Hashable] = []
    index: dict[Hashable, int] = {}
    exprs: list[dict[int, Fraction]] = []
    for tgt in targets:
        ex = {}
        for leaf, c in tgt.items():
            if leaf not in index:
                index[leaf] = len(leaves)
                leaves.append(leaf)
            ex[index[leaf]] = exact(c)
        exprs.append(ex)
    n0, k = len(leaves), len(exprs)
    variables = leaves + [("target", j) for j in range(k)]
    size = sum(len(e) ** 2 for e in exprs) + 1
    runs = max(1, min(restarts, _WORK_BUDGET // size))
    rng = random.Random(seed)
    by_size = sorted(range(k), key=lambda i: (len(exprs[i]), i))
    best = None
    for run in range(runs):
        # run 0: plain greedy; 1: difference pass (targets by size) + greedy; then alternately
        # randomised greedy alone and a difference pass in a random order + randomised greedy
        system = exprs
        if k <= _DIFF_MAX_TARGETS and run >= 1 and run % 2 == 1:
            system = _differences(exprs, by_size if run == 1 else rng.sample(range(k), k), n0)
        res = _greedy(system, n0 + k, None if run <= 1 else seed * 1_000_003 + run)
        if best is None or (res.additions, res.scalings) < (best.additions, best.scalings):
            best = res
    return best, variables


def _rebuild(res: CseResult, variables: list) -> list[Node]:
    n0 = sum(1 for v in variables if not (isinstance(v, tuple) and len(v) == 2 and v[0] == "target"))
    k = len(variables) - n0
    memo: dict[int, Node] = {}

    def node(v: int) -> Node:
        if v in memo:
            return memo[v]
        if v < n0:
            out = variables[v]
        elif v < n0 + k:
            out = target(v - n0)
        else:
            x, y, r = res.temps[v - n0 - k]
            out = lin([(node(x), 1), (node(y), r)])
        memo[v] = out
        return out

    tmemo: dict[int, Node] = {}

    def target(j: int) -> Node:
        if j not in tmemo:
            tmemo[j] = lin([(node(v), c) for v, c in res.exprs[j]])
        return tmemo[j]

    return [target(j) for j in range(len(res.exprs))]


def _side(targets: list[Node], restarts: int, seed: int) -> dict[Node, Node]:
    """CSE of one side. Targets equal up to a scalar factor (u and −u, or 2u) are computed once:
    each is normalised to leading coefficient 1 and the factor is kept as a one-term scaling,
    which the schedules fold into the product's alpha (a scaling, not an addition)."""
    uniq = list(dict.fromkeys(targets))
    scale: dict[Node, object] = {}
    norm_of: dict[Node, tuple] = {}
    normed: dict[tuple, dict] = {}
    for t in uniq:
        e = expand(t)
        lead = min(e, key=lambda leaf: leaf.key)
        s = e[lead]
        key = tuple(sorted(((leaf.key, exact(Fraction(c) / s)) for leaf, c in e.items())))
        scale[t], norm_of[t] = s, key
        normed.setdefault(key, {leaf: exact(Fraction(c) / s) for leaf, c in e.items()})
    keys = list(normed)
    system = [normed[k] for k in keys]
    res, variables = eliminate(system, restarts, seed)
    direct = _rebuild(res, variables)
    best = direct
    uses: dict = {}
    for t in system:
        for leaf in t:
            uses[leaf] = uses.get(leaf, 0) + 1
    if sum(u * u for u in uses.values()) <= _WORK_BUDGET:  # the transposed system's size (Σ terms²)
        trans = _transposed(system, restarts, seed)
        if _cost(trans) < _cost(direct):
            best = trans
    built = dict(zip(keys, best))
    return {t: lin([(built[norm_of[t]], scale[t])]) for t in uniq}


def _cost(nodes: list[Node]) -> int:
    """Additions of the combinations above ``nodes`` (stopping at inputs and products)."""
    seen: set[int] = set()
    total = 0
    stack = [n for n in nodes if n.op == "lin"]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        total += len(n.args) - 1
        stack.extend(a for a in n.args if a.op == "lin")
    return total


def _transposed(targets: list[dict], restarts: int, seed: int) -> list[Node]:
    """The same targets through the transposition principle (Tellegen): CSE the transposed map
    (one combination per leaf, over one variable per target), then reverse the circuit. A circuit
    for an m×n map with A additions gives one for the n×m map with A + n − m, so when the
    transposed shape suits pairwise CSE better (few long combinations ↔ many short ones, as on
    the output side W), the reversed circuit beats direct CSE."""
    leaves = list(dict.fromkeys(leaf for t in targets for leaf in t))
    col = {leaf: i for i, leaf in enumerate(leaves)}
    k = len(targets)
    ttargets = [dict() for _ in leaves]
    for j, t in enumerate(targets):
        for leaf, c in t.items():
            ttargets[col[leaf]][("y", j)] = c
    res, variables = eliminate(ttargets, restarts, seed)
    n0 = sum(1 for v in variables if not (isinstance(v, tuple) and v[0] == "target"))
    nt = len(variables) - n0
    # consumers of every variable of the transposed system: (consumer, weight)
    consumers: dict[int, list[tuple[tuple, object]]] = {}
    for ti, (x, y, r) in enumerate(res.temps):
        consumers.setdefault(x, []).append((("temp", ti), 1))
        consumers.setdefault(y, []).append((("temp", ti), r))
    for l, expr in enumerate(res.exprs):
        for v, c in expr:
            consumers.setdefault(v, []).append((("expr", l), c))
    memo: dict[tuple, Node] = {}

    def value(item: tuple) -> Node:
        # the reversed circuit: a node's value is the weighted sum of its consumers' values;
        # transposed target ``expr l`` also receives the original leaf l itself
        if item in memo:
            return memo[item]
        kind, idx = item
        terms = []
        if kind == "expr":
            terms.append((leaves[idx], 1))
            var = n0 + idx
        elif kind == "temp":
            var = n0 + nt + idx
        else:
            var = idx
        for cons, w in consumers.get(var, []):
            terms.append((value(cons), w))
        out = lin(terms)
        memo[item] = out
        return out

    return [value(("var", variables.index(("y", j)))) for j in range(k)]


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
