"""Common-subexpression elimination of block additions, on all three sides.

Public API:

- ``eliminate(targets, restarts=..., seed=0) -> CseResult``: ``targets`` are linear combinations
  ``{leaf: Fraction}``; returns ``temps`` (``t = x + r·y``, each one addition) and the targets
  rewritten over leaves and temps, minimising ``additions`` (then scalings).
- ``cse_program(program, restarts=..., seed=0) -> Program``: the same program with shared
  temporaries on the a-side (operands of the products), the b-side, and the c-side (the outputs as
  combinations of products: where Winograd's saving lives). The result is verified exactly.
- ``cse_counts(program)``: ``(naive, after)`` additions, for the build report.

Method (the best of several, per side): greedy pairwise elimination (as in Benson & Ballard's
fast-matmul code generator, idea only): find the pair of terms ``(x, r·y)`` (equal up to a common
factor) that occurs in the most targets, make it a temporary, substitute, repeat while some pair
occurs at least twice. Greedy is order-sensitive when several pairs tie, so we run it with
randomised tie-breaking ``restarts`` times (the first run is the deterministic one) and keep the
best; with 16 restarts Winograd's <2,2,2;7> reaches its 15 additions, where plain greedy with an
unlucky order does not. Pair counts are kept incrementally (counted once with numpy, then kept
exact by one substitution core, ``_substitute``) and ranked by one of two queues: a heap with lazy
invalidation over integer pair keys, or a bucket queue for large systems. Beyond
greedy: randomised restarts (sometimes one of the next-best pairs), a difference pass (a target
written as λ·(another target) + a short residual, Winograd's ``s2 = s1 − a11``, or as a sum of two
earlier targets), targets equal up to a scalar computed once (the factor folds into the product's
alpha), and the transposition principle (CSE of the transposed map, circuit reversed). How much
of this runs per side is an ``Effort`` (seeded: reproducible). Figures (default effort): Winograd
15, Strassen 18, Winograd² <4,4,4;49> 159 (reference 165), Strassen² 180, Laderman 62,
AlphaTensor's <3,3,3;23> 70 (target 70), AlphaTensor's real <4,4,4;49> 170.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Hashable, Sequence

import numpy as np

from compiler.ir.program import Node, Program, exact, expand, lin, mul, verify

#: randomised runs take one of the next ``_EXPLORE_WIDTH`` best pairs with probability ``_EXPLORE``
_EXPLORE, _EXPLORE_WIDTH = 0.15, 3
#: restarts by default; each is one greedy run with random tie-breaks (the first is deterministic)
DEFAULT_RESTARTS = 16


@dataclass(frozen=True)
class Effort:
    """How hard the CSE tries, per side; every run is seeded, so the result is reproducible.

    ``full_restarts_up_to``: systems (one side) of Σ terms² up to this get all their restarts
    (every library algorithm, Winograd² <4,4,4;49> included at ≤ 2 704, and AlphaTensor's
    entries up to about <4,4,5>); larger ones one deterministic greedy run (restarts on AlphaTensor's
    mid-size entries were most of the build time). ``other_orientation``: Σ terms² up to which
    the second orientation (see ``_side``) is tried as well. ``buckets_above``: Σ terms² above
    which that single run uses the bucket queue (``_greedy(buckets=True)``: twice as fast, ~4 %
    more additions). ``difference_targets``: the difference pass (``_differences``, quadratic in
    the targets, exact Fraction arithmetic) runs for systems of at most this many targets.
    ``tiny_size``/``tiny_restarts``: systems of Σ terms² up to ``tiny_size`` (<3,3,3> and smaller)
    get at least ``tiny_restarts`` runs: a random target order of the difference pass finds
    AlphaTensor's <3,3,3;23> b-side in 19 additions about once in 30 runs (16 restarts: 72
    additions in all, 64: 70; ~1 s more per <3,3,3> algorithm).
    ``rational``: let temporaries take any rational coefficient (``t = x + (2/3)·y``). Off: every
    temporary and every coefficient that CSE writes is an integer, so an integral algorithm stays
    integral and its kernels stay bit-exact on small integers (a fractional algorithm keeps its own
    denominators, in the one-term scalings that fold into a product's alpha). See ``_side``.
    ``default`` keeps ``python -m compiler.build`` on all 93 AlphaTensor entries near a minute
    on 2 cores; ``high`` lifts every bound (minutes for the largest entries).
    """

    full_restarts_up_to: int = 3_000
    other_orientation: int = 5_000
    buckets_above: int = 50_000
    difference_targets: int = 100
    tiny_size: int = 400
    tiny_restarts: int = 64
    rational: bool = False


EFFORTS = {"default": Effort(),
           "high": Effort(full_restarts_up_to=10**12, other_orientation=10**12, buckets_above=10**12,
                          difference_targets=10**9),
           "rational": Effort(rational=True)}


def effort_of(effort: "Effort | str | None") -> Effort:
    if effort is None:
        return EFFORTS["default"]
    if isinstance(effort, Effort):
        return effort
    if effort not in EFFORTS:
        raise ValueError(f"unknown CSE effort {effort!r}; known: {', '.join(EFFORTS)}")
    return EFFORTS[effort]


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


def _pair_sets(exprs: list[dict[int, int]], table: list[list[int]], NV: int, NR: int,
               modes: list[int]) -> dict[int, set[int]]:
    """``{pair key: targets holding it}`` for the pairs held by at least two targets.

    Counted with numpy (sorting every pair key once); pairs held by a single target are dropped:
    a pair of existing variables can never gain a target later (substitution only adds pairs with
    the new temporary), so they can never become worth a temporary."""
    tab = np.asarray(table, dtype=np.int64)
    keys_l, tg_l = [], []
    for e, ex in enumerate(exprs):
        k = len(ex)
        if k < 2:
            continue
        items = sorted(ex.items())
        v = np.fromiter((x for x, _ in items), np.int64, k)
        c = np.fromiter((y for _, y in items), np.int64, k)
        i, j = _triu(k)
        keys_l.append((v[i] * NV + v[j]) * NR + tab[c[i], c[j]])
        tg_l.append(np.full(len(i), e, dtype=np.int64))
    if not keys_l:
        return {}
    keys, tg = np.concatenate(keys_l), np.concatenate(tg_l)
    allowed = np.asarray(modes, dtype=np.int64)[keys % NR] != _NEVER
    keys, tg = keys[allowed], tg[allowed]
    if not len(keys):
        return {}
    order = np.argsort(keys, kind="stable")
    keys, tg = keys[order], tg[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    kl, tl, sl, cl = keys.tolist(), tg.tolist(), starts.tolist(), counts.tolist()
    return {kl[sl[i]]: set(tl[sl[i]:sl[i] + cl[i]]) for i in np.flatnonzero(counts >= 2).tolist()}


@lru_cache(maxsize=None)
def _triu(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(k, 1)


def _intern(exprs_in: list[dict], integral: bool = False) -> tuple[list, list[dict[int, int]], list, list[list[int]], list[int]]:
    """Coefficients as ids (``cvals[id]``), targets over ids, the ratio table
    ``rvals[table[i][j]] = cvals[j] / cvals[i]``, and per ratio how a temporary may use it:
    ``_AS_IS`` (``t = x + r·y``), ``_FLIP`` (only ``t = y + (1/r)·x`` is integral) or ``_NEVER``
    (neither: an integral CSE never pairs these terms). Without ``integral`` every ratio is as is."""
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
            r = _quot(cj, ci)
            if r not in rid:
                rid[r] = len(rvals)
                rvals.append(r)
            row.append(rid[r])
        table.append(row)
    modes = [_ratio_mode(r) if integral else _AS_IS for r in rvals]
    return cvals, exprs, rvals, table, modes


_AS_IS, _FLIP, _NEVER = 0, 1, 2


def _ratio_mode(r) -> int:
    if type(r) is int:
        return _AS_IS
    return _FLIP if Fraction(r).numerator in (1, -1) else _NEVER


def _greedy(exprs_in: list[dict], n_leaves: int, salt: int | None = None, integral: bool = False,
            buckets: bool = False) -> CseResult:
    """One greedy run: while some pair of terms is held by two targets or more, take the best pair
    as a temporary and substitute it (``_substitute``, the one core); the queue says which pair is
    best. ``salt`` None breaks ties by variable order, else pseudo-randomly (``_HeapQueue``);
    ``buckets``: the bucket queue (``_BucketQueue``: about twice as fast, ~4 % more additions on
    AlphaTensor's largest systems), used for the large systems of the default effort.

    Hot loop, so pairs are plain ints: coefficients are interned (substitution never creates a new
    coefficient value: the temporary takes the coefficient of its first term), a ratio table maps
    two coefficient ids to a ratio id, and a pair is ``(x·NV + y)·NR + ratio`` with x < y.
    """
    cvals, exprs, rvals, table, modes = _intern(exprs_in, integral)
    NR = len(rvals) or 1
    NV = n_leaves + sum(len(e) for e in exprs) + 1
    where = _pair_sets(exprs, table, NV, NR, modes)
    unit = [1 if (r == 1 or r == -1) else 0 for r in rvals]
    queue = _BucketQueue(where, NR, unit) if buckets else _HeapQueue(where, NV, NR, unit, salt)
    temps: list[tuple[int, int, object]] = []
    while True:
        key = queue.pop()
        if key is None:
            break
        queue.push(_substitute(exprs, where, table, modes, key, n_leaves + len(temps), NV, NR))
        xy, r = divmod(key, NR)
        x, y = divmod(xy, NV)
        temps.append((y, x, _quot(1, rvals[r])) if modes[r] == _FLIP else (x, y, rvals[r]))
    return CseResult(n_leaves, tuple(temps),
                     tuple(tuple(sorted((v, cvals[c]) for v, c in e.items())) for e in exprs))


def _substitute(exprs: list[dict[int, int]], where: dict[int, set[int]], table: list[list[int]],
                modes: list[int], key: int, t: int, NV: int, NR: int) -> list[tuple[int, int]]:
    """Make pair ``key`` = (x, r·y) the temporary ``t`` in every target that holds it, keeping
    ``where`` exact: the target's pairs with x or y are gone (a pair left in one target is
    dropped: pairs of older variables never gain targets again), its pairs with t are new.
    Returns the pairs that gained a target, as ``(key, targets now)`` in the order they gained it:
    the queue files them after the substitution, in the same order as it would have during it.
    With ``_FLIP`` the temporary is ``t = y + (1/r)·x`` and the targets take y's coefficient."""
    s = where.pop(key)
    xy, r = divmod(key, NR)
    x, y = divmod(xy, NV)
    flip = modes[r] == _FLIP
    where_get = where.get
    grown: list[tuple[int, int]] = []
    xNV, yNV, tNR = x * NV, y * NV, t * NR
    for e in sorted(s):
        ex = exprs[e]
        cx, cy = ex.pop(x), ex.pop(y)
        ct = cy if flip else cx
        tx, ty = table[cx], table[cy]
        for z, cz in ex.items():  # the target's pairs (x, z) and (y, z)
            for k1 in ((xNV + z) * NR + tx[cz] if x < z else (z * NV + x) * NR + table[cz][cx],
                       (yNV + z) * NR + ty[cz] if y < z else (z * NV + y) * NR + table[cz][cy]):
                s2 = where_get(k1)
                if s2 is not None:
                    s2.discard(e)
                    if len(s2) < 2:
                        del where[k1]
        for z, cz in ex.items():  # t > z always: t is the newest variable
            rz = table[cz][ct]
            if modes[rz] == _NEVER:
                continue
            k2 = z * NV * NR + tNR + rz
            s2 = where_get(k2)
            if s2 is None:
                where[k2] = {e}
            else:
                s2.add(e)
                grown.append((k2, len(s2)))
        ex[t] = ct
    return grown


class _HeapQueue:
    """Pairs by (most targets, then a ±1 ratio: no scaling, then a tie-break), in a heap with lazy
    invalidation. The tie-break is the key itself (ties by (x, y): the deterministic run) or, with
    a ``salt``, a pseudo-random order of the pairs; randomised runs sometimes take one of the next
    ``_EXPLORE_WIDTH`` best pairs (probability ``_EXPLORE``). Entries are single ints, ordered by
    (−count, non-unit ratio, tie-break, key): comparing ints instead of tuples halves the run time
    on AlphaTensor's largest entries."""

    def __init__(self, where: dict[int, set[int]], NV: int, NR: int, unit: list[int], salt: int | None):
        nonunit = [1 - u for u in unit]
        KB = (NV * NV * NR).bit_length()      # bits of a pair key
        HB = KB + (0 if salt is None else 64)  # + 64 bits of salted tie-break (randomised runs only)
        CB = HB + 1                            # + the non-unit flag; the count sits above
        if salt is None:
            def entry(key: int, count: int) -> int:
                return ((-count) << CB) | (nonunit[key % NR] << HB) | key
        else:
            def entry(key: int, count: int) -> int:
                x, y = divmod(key // NR, NV)
                tie = hash((x, y, salt)) + 2**63  # a pseudo-random order of the pairs, as a 64-bit int
                return ((-count) << CB) | (nonunit[key % NR] << HB) | (tie << KB) | key
        self.entry, self.where, self.CB, self.KMASK = entry, where, CB, (1 << KB) - 1
        self.rng = random.Random(salt) if salt is not None else None
        self.heap = [entry(key, len(s)) for key, s in where.items()]
        heapq.heapify(self.heap)

    def _pop_valid(self) -> int | None:
        heap, where_get, entry, CB, KMASK = self.heap, self.where.get, self.entry, self.CB, self.KMASK
        heappop, heappush = heapq.heappop, heapq.heappush
        while heap:
            ent = heappop(heap)
            key = ent & KMASK
            s = where_get(key)
            if not s or len(s) < 2:
                continue
            count = -(ent >> CB)
            if len(s) != count:  # stale: counts only fall between pushes, so re-queue at the true count
                if len(s) < count:
                    heappush(heap, entry(key, len(s)))
                continue
            return ent
        return None

    def pop(self) -> int | None:
        """The best pair's key, or None when no pair is held by two targets."""
        ent = self._pop_valid()
        if ent is None:
            return None
        rng = self.rng
        if rng is not None and rng.random() < _EXPLORE:
            others = [e for e in (self._pop_valid() for _ in range(_EXPLORE_WIDTH)) if e is not None]
            if others:
                pick = rng.randrange(len(others))
                others[pick], ent = ent, others[pick]
            for e in others:
                heapq.heappush(self.heap, e)
        return ent & self.KMASK

    def push(self, grown: list[tuple[int, int]]) -> None:
        heap, entry, heappush = self.heap, self.entry, heapq.heappush
        for key, count in grown:
            heappush(heap, entry(key, count))


class _BucketQueue:
    """Pairs by (most targets, then a ±1 ratio) in a bucket queue: one list per level
    ``2·count + (ratio ±1)``, last in, first out among ties."""

    def __init__(self, where: dict[int, set[int]], NR: int, unit: list[int]):
        self.where, self.NR, self.unit = where, NR, unit
        self.buckets: dict[int, list[int]] = {}
        self.top = 0
        for key, s in where.items():
            lv = 2 * len(s) + unit[key % NR]
            self.buckets.setdefault(lv, []).append(key)
            self.top = max(self.top, lv)

    def pop(self) -> int | None:
        buckets, where_get, unit, NR, top = self.buckets, self.where.get, self.unit, self.NR, self.top
        while top >= 4:  # a pair held by at least two targets
            b = buckets.get(top)
            if not b:
                top -= 1
                continue
            key = b.pop()
            s = where_get(key)
            if s is None:
                continue
            lv = 2 * len(s) + unit[key % NR]
            if lv != top:  # stale: re-file at its true level
                if len(s) >= 2 and lv < top:
                    buckets.setdefault(lv, []).append(key)
                continue
            self.top = top
            return key
        self.top = top
        return None

    def push(self, grown: list[tuple[int, int]]) -> None:
        buckets, unit, NR, top = self.buckets, self.unit, self.NR, self.top
        for key, count in grown:
            lv = 2 * count + unit[key % NR]
            buckets.setdefault(lv, []).append(key)
            if lv > top:
                top = lv
        self.top = top


def _quot(p, q):
    """``p / q`` as a canonical exact coefficient, without making a Fraction when both are
    integers that divide (the common case: most schemes have ±1, ±2 coefficients)."""
    if type(p) is int and type(q) is int:
        return p // q if p % q == 0 else Fraction(p, q)
    return exact(Fraction(p) / q)


def _normal_key(e: dict) -> tuple[tuple, object]:
    """``(key, s)``: ``e`` divided by its coefficient ``s`` on the smallest variable, as a key."""
    lead = min(e)
    s = e[lead]
    return tuple(sorted((v, _quot(c, s)) for v, c in e.items())), s


def _differences(exprs: list[dict], order: list[int], n_leaves: int, single: bool = False,
                 integral: bool = False) -> list[dict]:
    """Rewrite targets as ``λ·T_j + (T_i − λ·T_j)`` when an earlier target T_j (in ``order``) makes
    ``T_i`` cheaper; ``T_j`` enters as the variable ``n_leaves + j``. Pairwise CSE only shares
    common *sub-sums*; this also shares near-equal targets (Winograd's ``s2 = s1 − a11``). When
    the residual is itself a multiple of an earlier target T_k, ``T_i = λ·T_j + μ·T_k`` costs one
    addition (AlphaTensor's <3,3,3;23>: b-side ``M2 = M1 − M4``). ``single``: only rewrites that
    leave one addition (two terms), the rest is left to the pairwise greedy."""
    out = [dict(e) for e in exprs]
    by_leaf: dict[int, list[int]] = {}
    normal: dict[tuple, tuple[int, object]] = {}  # normalised earlier target → (index, scale)
    lengths: set[int] = set()  # their term counts (a cheap filter before normalising a residual)
    for i in order:
        ti = exprs[i]
        best, best_cost = None, len(ti)  # cost in terms; rewriting costs residual terms + 1
        cands = {j for x in ti for j in by_leaf.get(x, ())}
        for j in sorted(cands):
            tj = exprs[j]
            for x in ti:
                if x not in tj:
                    continue
                lam = _quot(ti[x], tj[x])
                if integral and type(lam) is not int:
                    continue
                res = {}
                for v in set(ti) | set(tj):
                    c = exact(ti.get(v, 0) - lam * tj.get(v, 0))
                    if c != 0:
                        res[v] = c
                if 2 < best_cost and len(res) >= 2 and len(res) in lengths:
                    key, s = _normal_key(res)
                    hit = normal.get(key)
                    mu = _quot(s, hit[1]) if hit is not None and hit[0] != j else None
                    if mu is not None and (not integral or type(mu) is int):
                        best, best_cost = (j, lam, {n_leaves + hit[0]: mu}), 2  # res = mu·T_k
                        continue
                if len(res) + 1 < best_cost:
                    best, best_cost = (j, lam, res), len(res) + 1
        if best is not None and (not single or best_cost == 2):
            j, lam, res = best
            res[n_leaves + j] = lam
            out[i] = res
        if len(ti) > 1:
            key, s = _normal_key(ti)
            normal.setdefault(key, (i, s))
            lengths.add(len(ti))
        for x in ti:
            by_leaf.setdefault(x, []).append(i)
    return out


def eliminate(targets: Sequence[dict[Hashable, Fraction]], restarts: int = DEFAULT_RESTARTS,
              seed: int = 0, effort: Effort | str | None = None) -> tuple[CseResult, list[Hashable]]:
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
    eff = effort_of(effort)
    runs = max(1, restarts if size <= eff.full_restarts_up_to else 1)
    if size <= eff.tiny_size:
        runs = max(runs, eff.tiny_restarts)
    rng = random.Random(seed)
    by_size = sorted(range(k), key=lambda i: (len(exprs[i]), i))
    best = None
    for run in range(runs):
        # run 0: plain greedy; 1: difference pass (targets by size) + greedy; then alternately
        # randomised greedy alone and a difference pass in a random order + randomised greedy
        system = exprs
        if k <= eff.difference_targets and run >= 1 and run % 2 == 1:
            system = _differences(exprs, by_size if run == 1 else rng.sample(range(k), k), n0,
                                  integral=not eff.rational)
        if runs == 1 and size > eff.buckets_above:
            res = _greedy(system, n0 + k, integral=not eff.rational, buckets=True)
        else:
            res = _greedy(system, n0 + k, None if run <= 1 else seed * 1_000_003 + run, not eff.rational)
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


def _side(targets: list[Node], restarts: int, seed: int, effort: "Effort") -> dict[Node, Node]:
    """CSE of one side. Targets equal up to a scalar factor (u and −u, or 2u) are computed once:
    each is normalised to leading coefficient 1 and the factor is kept as a one-term scaling,
    which the schedules fold into the product's alpha (a scaling, not an addition).

    Two orientations: direct (pairwise CSE of the targets) and transposed (``_transposed``).
    Pairwise CSE suits many short combinations, so the *natural* orientation is the one with more
    targets than leaves (direct for the a/b sides, transposed for the c side, where few long
    outputs sum many products); it always runs. The other one runs too, and the cheaper circuit
    wins, while its size (Σ terms²) is within ``effort.other_orientation``: on AlphaTensor's
    <11,12,12;990> the direct c side alone took 4 s (and lost: 3080 vs 2657 additions)."""
    uniq = list(dict.fromkeys(targets))
    scale: dict[Node, object] = {}
    norm_of: dict[Node, tuple] = {}
    normed: dict[tuple, dict] = {}
    for t in uniq:
        e = expand(t)
        lead = min(e, key=lambda leaf: leaf.key)
        s = e[lead] if effort.rational else _content(e.values(), e[lead])
        key = tuple(sorted(((leaf.key, _quot(c, s)) for leaf, c in e.items())))
        scale[t], norm_of[t] = s, key
        normed.setdefault(key, {leaf: _quot(c, s) for leaf, c in e.items()})
    keys = list(normed)
    system = [normed[k] for k in keys]
    uses: dict = {}
    for t in system:
        for leaf in t:
            uses[leaf] = uses.get(leaf, 0) + 1
    size_direct = sum(len(t) ** 2 for t in system)
    size_trans = sum(u * u for u in uses.values())
    natural_direct = len(system) >= len(uses)
    best = None
    if natural_direct or size_direct <= effort.other_orientation:
        res, variables = eliminate(system, restarts, seed, effort)
        best = _rebuild(res, variables)
    if not natural_direct or size_trans <= effort.other_orientation:
        trans = _transposed(system, restarts, seed, effort)
        if best is None or _cost(trans) < _cost(best):
            best = trans
    built = dict(zip(keys, best))
    return {t: lin([(built[norm_of[t]], scale[t])]) for t in uniq}


def _content(coefs, lead) -> int | Fraction:
    """The primitive scale of an integral-CSE target: ±gcd(numerators)/lcm(denominators), signed
    like the leading coefficient, so the normalised target has coprime integer coefficients
    (u and −2u share one; a fractional algorithm's denominators stay in the scale)."""
    num, den = 0, 1
    for c in coefs:
        q = Fraction(c)
        num = math.gcd(num, q.numerator)
        den = den * q.denominator // math.gcd(den, q.denominator)
    return exact(Fraction(num if lead > 0 else -num, den))


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


def _transposed(targets: list[dict], restarts: int, seed: int, effort: "Effort") -> list[Node]:
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
    res, variables = eliminate(ttargets, restarts, seed, effort)
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


def cse_program(program: Program, restarts: int = DEFAULT_RESTARTS, seed: int = 0,
                effort: Effort | str | None = None) -> Program:
    """``program`` with shared temporaries on the a-, b- and c-sides (verified exactly)."""
    eff = effort_of(effort)
    left = _side([p.args[0] for p in program.products], restarts, seed, eff)
    right = _side([p.args[1] for p in program.products], restarts, seed, eff)
    new_prod = {p: mul(left[p.args[0]], right[p.args[1]]) for p in program.products}
    outs_in = [lin((new_prod[leaf], c) for leaf, c in expand(o).items()) for o in program.outputs]
    outs = _side(outs_in, restarts, seed, eff)
    prog = Program(program.shape, tuple(new_prod[p] for p in program.products),
                   tuple(outs[o] for o in outs_in), program.name, program.digest, program.source)
    return verify(prog)


def cse_counts(program: Program, restarts: int = DEFAULT_RESTARTS, seed: int = 0,
               effort: Effort | str | None = None) -> tuple[int, int]:
    """``(additions before, additions after)`` CSE."""
    return program.additions().total, cse_program(program, restarts, seed, effort).additions().total


def additions_after_cse(f, restarts: int = DEFAULT_RESTARTS) -> int:
    """Block additions of one level of factorization ``f`` after CSE (the search's cost model)."""
    from compiler.ir.lower import lower
    return cse_program(lower(f), restarts).additions().total


def side_additions(targets: Sequence[Node], restarts: int = DEFAULT_RESTARTS, seed: int = 0,
                   effort: Effort | str | None = None) -> int:
    """Additions ``cse_program`` spends on one side: ``targets`` are the a-side operands of the
    products, the b-side operands, or the outputs over the products (c side). The three sides are
    independent, so a search that changes one side re-counts only that one (``search.flips``)."""
    return _cost(list(_side(list(targets), restarts, seed, effort_of(effort)).values()))
