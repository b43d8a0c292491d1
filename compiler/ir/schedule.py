"""Schedules: how one level of a ``Program`` runs, as data that the emitters render.

A schedule is a flat list of steps over *buffer references* (``Ref``):

- ``Ref("a", q)`` / ``Ref("b", q)`` / ``Ref("c", q)``: block ``q`` (row-major) of the operand or
  result, a strided view (never copied);
- ``Ref("wa"|"wb"|"wc", s)``: workspace slot ``s`` of a-block, b-block or c-block size;
- ``Ref("S"|"T"|"P", r)``: the r-th matrix of the stacked left operands, right operands and
  products (streaming schedule only).

Steps:

- ``Combine(dst, terms, accumulate)``: ``dst (= | +=) Σ coef·src``, exact ``Fraction`` coefficients;
- ``Product(dst, lhs, rhs, alpha, accumulate, index)``: ``dst (= | +=) alpha·(lhs @ rhs)``, the
  leaf (or the next level) of product ``M_{index+1}``; ``accumulate`` lets a BLAS leaf fuse the
  output addition into the GEMM (``beta = 1``), so that side costs no separate pass;
- ``BatchedProduct()``: ``P = S @ T`` for all products at once (streaming schedule);
- ``Fused(side, entries, outputs)``: one pass over equal-shaped blocks that computes every entry
  ``e_k = Σ coef·src`` (``src``: a block or slot ``Ref``, or an earlier entry ``Ref("e", j)``) and
  then stores every output ``dst (= | +=) e_k``; all reads of a tile happen before its writes, so
  a dst may also be a src (fused schedule; the CPU kernel ``kernels/_cpu_fused.c`` runs it tile by
  tile, other devices run it with torch operations). Entries that no output names (CSE
  temporaries no product needs) never leave the tile.

Each ``Combine``/``Product`` also records its *intent*: ``((node, coef), ...)``, the IR value that
``dst`` holds once the step has run (``Σ coef·node``; a partial sum while an output accumulates).
Translation validation (``compiler.codegen.validate``) executes the rendered steps on random
exact blocks (residues modulo a prime) and compares each step's result with its intent, so a failure names the first
wrong step, not just the wrong output.

Three kinds, each with a ``MemoryPlan`` (slot counts; workspace is allocated once per level by the
caller, never inside the recursion):

- ``materialized(program)``: products one after another; each combination (shared temporaries
  included) is written once into a workspace slot that is reused as soon as it is dead; each
  product is accumulated straight into the output blocks (fused when it has one consumer).
  Workspace: a few blocks, independent of the rank.
- ``streaming(program)``: one sweep over the input blocks forms every left (and right) operand
  into the stacked buffers S (T), one batched product computes all of P, one sweep over P forms
  the outputs. Workspace: R blocks per side, but one batched call per level: level ℓ+1 runs on
  the stack of level ℓ, so L levels cost L batched calls instead of R^L.
- ``fused(program)``: one ``Fused`` pass per side writes every operand that is not an input block
  (a view, its scale folded into the output coefficients) into its own slot, reading each input
  block once; the products run one after another (depth first, as in materialized) with alpha 1
  and beta 0 into their destination: the first n·p products straight into the c-blocks, the
  rest into c-size slots; one ``Fused`` pass over those computes every c-block (c-side CSE
  temporaries stay in the tile). Workspace: the distinct non-input operands per side plus
  max(0, R − n·p) c-blocks per level (Strassen 5 + 5 + 0 with its 7 products hosted in 4
  c-blocks and 3 slots), independent of the depth below.

``workspace_elements(schedule, M, K, N, levels, cutoff)`` is the peak extra memory (in elements)
of the rendered module's ``_workspace`` for one call: every level's slots, allocated once; with
``itemsize``, in the CPU layout, whose rows are padded by ``row_stride``.

``row_stride(cols, itemsize)`` is the row stride of a CPU workspace block ``cols`` wide: one
cache line (``ROW_PAD_BYTES``) more where a row is a multiple of ``ROW_ALIAS_BYTES`` (4 KiB) long.
A BLAS leaf packs panels of consecutive rows; with a power-of-two leading dimension those rows
fall into the same cache sets. Measured on a 2-core AVX2 EPYC with MKL (torch 2.13, one
``torch.mm`` of square blocks, medians): fp64 2048³ 92–95 GFLOP/s with rows of 2048 elements
against 95–98 with 2048 + 8, fp64 1024³ 80 against 85, fp32 2048³ 189–194 against 194–201;
rows of 1536 or 3072 fp64 (12 and 24 KiB) lost nothing unpadded and nothing padded. The padding
costs 64 B per row (0.4 % of a 2048-wide fp64 block). On CUDA the blocks stay dense (not measured
there). The templates render these constants into ``_block`` (``templates/torch_module.jinja``).

Public API: ``Ref``, ``Term``, ``Combine``, ``Product``, ``BatchedProduct``, ``Fused``, ``MemoryPlan``,
``Schedule``, ``materialized``, ``streaming``, ``fused``, ``make_schedule(program, kind)``,
``workspace_elements``, ``row_stride``, ``ROW_ALIAS_BYTES``, ``ROW_PAD_BYTES``, ``KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Union

from compiler.ir.program import IRError, Node, Program, topo_order

KINDS = ("materialized", "streaming", "fused")


@dataclass(frozen=True)
class Ref:
    space: str  # a, b, c (views); wa, wb, wc (workspace slots); S, T, P (stacked)
    index: int

    def __str__(self) -> str:
        return f"{self.space}[{self.index}]"


@dataclass(frozen=True)
class Term:
    src: Ref
    coef: Fraction


@dataclass(frozen=True)
class Combine:
    dst: Ref
    terms: tuple[Term, ...]
    accumulate: bool = False
    comment: str = ""
    intent: tuple = field(default=(), compare=False)  # ((node, coef), ...): what dst holds after the step


@dataclass(frozen=True)
class Product:
    dst: Ref
    lhs: Ref
    rhs: Ref
    alpha: Fraction
    accumulate: bool
    index: int
    comment: str = ""
    intent: tuple = field(default=(), compare=False)


@dataclass(frozen=True)
class BatchedProduct:
    comment: str = ""


@dataclass(frozen=True)
class Fused:
    """``entries[k] = Σ coef·src`` (src: a block/slot ``Ref`` or ``Ref("e", j)``, j < k), then for each
    ``(k, dst, accumulate)`` of ``outputs``: ``dst (= | +=) entries[k]``; a tile is read whole before
    it is written. ``intent``: per output, ``((node, coef), ...)`` that its dst holds afterwards."""

    side: str
    entries: tuple[tuple[Term, ...], ...]
    outputs: tuple[tuple[int, Ref, bool], ...]
    comment: str = ""
    intent: tuple = field(default=(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)  # per entry: what it computes


Step = Union[Combine, Product, BatchedProduct, Fused]


#: a CPU workspace row that is a multiple of ROW_ALIAS_BYTES long gets ROW_PAD_BYTES more (module docstring)
ROW_ALIAS_BYTES = 4096
ROW_PAD_BYTES = 64


def row_stride(cols: int, itemsize: int) -> int:
    """Elements from one row of a CPU workspace block ``cols`` wide to the next (module docstring)."""
    if cols > 0 and cols * itemsize % ROW_ALIAS_BYTES == 0:
        return cols + max(1, ROW_PAD_BYTES // itemsize)
    return cols


@dataclass(frozen=True)
class MemoryPlan:
    """Workspace slots per space; ``stacked``: S, T, P hold R blocks each (streaming);
    ``scratch``: c-size blocks beyond the slots (the scratch block that a product with alpha ≠ 1 or
    beta ≠ 0 at a non-leaf level writes first; the fused schedule never has one)."""

    wa: int
    wb: int
    wc: int
    stacked: bool
    rank: int
    scratch: int = 1

    def elements(self, bm: int, bk: int, bn: int, batch: int = 1, itemsize: int | None = None) -> int:
        """Workspace elements for blocks bm×bk (a), bk×bn (b), bm×bn (c) at one level; with
        ``itemsize``, rows padded as on CPU (``row_stride``)."""
        ld = (lambda cols: cols) if itemsize is None else (lambda cols: row_stride(cols, itemsize))
        sa, sb, sc = bm * ld(bk), bk * ld(bn), bm * ld(bn)
        per = self.wa * sa + self.wb * sb + (self.wc + self.scratch) * sc
        if self.stacked:
            per += self.rank * (sa + sb + sc)
        return per * batch


@dataclass(frozen=True)
class Schedule:
    kind: str
    program: Program
    steps: tuple[Step, ...]
    plan: MemoryPlan
    comments: dict = field(default_factory=dict, compare=False)  # product index / output row → text


class _Slots:
    def __init__(self, space: str):
        self.space, self.free, self.peak = space, [], 0

    def take(self) -> Ref:
        if self.free:
            self.free.sort()
            return Ref(self.space, self.free.pop(0))
        self.peak += 1
        return Ref(self.space, self.peak - 1)

    def give(self, ref: Ref) -> None:
        self.free.append(ref.index)


def _block_ref(node: Node, program: Program) -> Ref:
    n, m, p = program.shape
    cols = m if node.side == "a" else p
    return Ref(node.side, node.index[0] * cols + node.index[1])


def _as_exact(q: Fraction, like) -> bool:
    """Whether ``q`` needs no denominator that ``like`` does not have (an integer where ``like`` is one)."""
    return Fraction(like).denominator % Fraction(q).denominator == 0


def _strip_scale(node: Node) -> tuple[Node, Fraction]:
    """A single-term combination ``c·x`` is ``x`` with a scale folded into its user."""
    scale = Fraction(1)
    while node.op == "lin" and len(node.args) == 1:
        scale *= node.coefs[0]
        node = node.args[0]
    return node, scale


def _ordered_terms(terms: list[Term]) -> tuple[Term, ...]:
    """Put a coefficient-1 term first when there is one: ``torch.add(x, y, alpha=c, out=dst)``."""
    ones = [t for t in terms if t.coef == 1]
    if ones:
        first = ones[0]
        return (first,) + tuple(t for t in terms if t is not first)
    return tuple(terms)


def product_comments(program: Program) -> dict:
    """One readable line per product (``M3 = (a11 - a21) * (b22 - b12)``) and per output."""
    lines = program.describe().splitlines()[1:]
    out: dict = {}
    for line in lines:
        name = line.split(" = ", 1)[0]
        if name.startswith("M"):
            out[("M", int(name[1:]) - 1)] = line
        elif name.startswith("c"):
            out[("c", name)] = line
        else:
            out[("t", name)] = line
    return out


def materialized(program: Program) -> Schedule:
    """Products in order; combinations in reusable workspace; fused accumulation into c-blocks."""
    n, m, p = program.shape
    steps: list[Step] = []
    names = program.names()
    slots = {s: _Slots("w" + s) for s in ("a", "b", "c")}
    value: dict[Node, tuple[Ref, Fraction]] = {}
    # last product that needs each a/b-side node (to free its slot after that product)
    last_use: dict[Node, int] = {}
    deps = [topo_order(prod.args) for prod in program.products]  # computed once: reused to free slots
    for r, nodes in enumerate(deps):
        for node in nodes:
            last_use[node] = r

    def ensure(node: Node) -> tuple[Ref, Fraction]:
        if node in value:
            return value[node]
        base, scale = _strip_scale(node)
        if base is not node:
            ref, s2 = ensure(base)
            value[node] = (ref, scale * s2)
            return value[node]
        if node.op == "input":
            value[node] = (_block_ref(node, program), Fraction(1))
            return value[node]
        terms = []
        for a, c in node.terms:
            ref, s = ensure(a)
            terms.append(Term(ref, c * s))
        dst = slots[node.side].take()
        steps.append(Combine(dst, _ordered_terms(terms), False, f"{names.get(node, '')} = {node!r}".strip(" ="),
                             ((node, Fraction(1)),)))
        value[node] = (dst, Fraction(1))
        return value[node]

    # c side: consumers of every product / c-side combination, and each combination's buffer
    out_rows: dict[Node, list[int]] = {}
    for row, o in enumerate(program.outputs):
        out_rows.setdefault(o, []).append(row)
    c_nodes = [x for x in program.nodes() if x.op == "lin" and x.side == "c"]
    consumers: dict[Node, list[tuple[Node, Fraction]]] = {}
    for x in c_nodes:
        for a, c in x.terms:
            consumers.setdefault(a, []).append((x, c))
    sink: dict[Node, Ref] = {}
    started: set[Node] = set()
    partial: dict[Node, tuple] = {}  # what each c-side buffer holds so far, as ((node, coef), ...)

    def add(x: Node, node: Node, coef: Fraction) -> tuple:
        """The intent of a step that adds coef·node to x's buffer (which it starts if x is fresh)."""
        partial[x] = (partial[x] if x in started else ()) + ((node, Fraction(coef)),)
        return partial[x]
    remaining = {x: len(x.args) for x in c_nodes}
    for o, rows in out_rows.items():
        if o.op == "mul":  # an output that is exactly one product: a pseudo-consumer with coef 1
            consumers.setdefault(o, []).append((o, Fraction(1)))
            remaining[o] = 1
        sink[o] = Ref("c", rows[0])

    def buf(x: Node) -> Ref:
        if x not in sink:
            sink[x] = slots["c"].take()
        return sink[x]

    def contributed(x: Node) -> None:
        started.add(x)
        remaining[x] -= 1
        if remaining[x] == 0:
            for y, c in consumers.get(x, []) if x.op == "lin" else []:
                steps.append(Combine(buf(y), (Term(buf(x), c),), y in started, intent=add(y, x, c)))
                contributed(y)
            if x not in out_rows:
                slots["c"].give(sink[x])

    for r, prod in enumerate(program.products):
        (lref, ls), (rref, rs) = ensure(prod.args[0]), ensure(prod.args[1])
        users = consumers.get(prod, [])
        if not users:
            raise IRError(f"{program.name}: product M{r + 1} is used by no output")
        fresh = [(x, c) for x, c in users if x not in started]
        # the product goes into a fresh user's buffer and the others read c/c0 of it, if every such
        # ratio is as exact as the coefficients themselves (c0 = 2, c = 3 would write 3/2 of an
        # integer block); else it goes to a temporary and every user reads its own c
        exact_ratio = [(x, c) for x, c in fresh if all(_as_exact(Fraction(d) / c, d) for _, d in users)]
        if len(users) == 1 or exact_ratio:
            x0, c0 = exact_ratio[0] if len(users) > 1 else users[0]
            steps.append(Product(buf(x0), lref, rref, c0 * ls * rs, x0 in started, r, intent=add(x0, prod, c0)))
            # every other user reads c0·M_r from x0's buffer *before* any user completes: a completion
            # cascades into its consumers, and x0 may be one of them (its buffer would no longer hold
            # c0·M_r alone) or be freed and its slot reused
            others = [(y, c) for y, c in users if y is not x0]
            for y, c in others:
                steps.append(Combine(buf(y), (Term(buf(x0), Fraction(c) / c0),), y in started,
                                     intent=add(y, prod, c)))
                started.add(y)
            contributed(x0)
            for y, _ in others:
                contributed(y)
        else:
            tmp = slots["c"].take()
            steps.append(Product(tmp, lref, rref, ls * rs, False, r, intent=((prod, Fraction(1)),)))
            for y, c in users:
                steps.append(Combine(buf(y), (Term(tmp, c),), y in started, intent=add(y, prod, c)))
                contributed(y)
            slots["c"].give(tmp)
        for dep in deps[r]:
            if last_use.get(dep) == r and dep in value and value[dep][0].space.startswith("w") \
                    and _strip_scale(dep)[0] is dep:
                slots[dep.side].give(value[dep][0])
                last_use.pop(dep)
    for o, rows in out_rows.items():  # identical output blocks: copy
        for row in rows[1:]:
            steps.append(Combine(Ref("c", row), (Term(Ref("c", rows[0]), Fraction(1)),), False,
                                 intent=((o, Fraction(1)),)))
    plan = MemoryPlan(slots["a"].peak, slots["b"].peak, slots["c"].peak, False, program.rank)
    return Schedule("materialized", program, tuple(steps), plan, product_comments(program))


def streaming(program: Program) -> Schedule:
    """All operands stacked in one sweep, one batched product, all outputs in one sweep."""
    steps: list[Step] = []
    names = program.names()
    slots = {s: _Slots("w" + s) for s in ("a", "b", "c")}
    value: dict[Node, tuple[Ref, Fraction]] = {}
    operand_of: dict[tuple[str, Node], int] = {}

    for side, stack in (("a", "S"), ("b", "T")):
        k = 0 if side == "a" else 1
        operands = [prod.args[k] for prod in program.products]
        # shared temporaries first (each written once), in dependency order
        order = topo_order(operands)
        nested = {a for x in order if x.op == "lin" for a in x.args}
        for node in order:
            base, _ = _strip_scale(node)
            if node.op != "lin" or base is not node or node not in nested:
                continue
            terms = []
            for a, c in node.terms:
                ref, s = _value(a, value, program)
                terms.append(Term(ref, c * s))
            dst = slots[side].take()
            steps.append(Combine(dst, _ordered_terms(terms), False, f"{names.get(node, '')} = {node!r}".strip(" ="),
                                 ((node, Fraction(1)),)))
            value[node] = (dst, Fraction(1))
        for r, node in enumerate(operands):
            base, scale = _strip_scale(node)
            if base.op == "lin":
                terms = []
                for a, c in base.terms:
                    ref, s = _value(a, value, program)
                    terms.append(Term(ref, scale * c * s))
            else:
                ref, s = _value(base, value, program)
                terms = [Term(ref, scale * s)]
            steps.append(Combine(Ref(stack, r), _ordered_terms(terms), False, intent=((node, Fraction(1)),)))
            operand_of[(side, node)] = r
    steps.append(BatchedProduct("P[r] = S[r] @ T[r] for every product r"))
    for r, prod in enumerate(program.products):
        value[prod] = (Ref("P", r), Fraction(1))
    out_rows: dict[Node, list[int]] = {}
    for row, o in enumerate(program.outputs):
        out_rows.setdefault(o, []).append(row)
    for node in topo_order(program.outputs):
        if node.op != "lin" or node.side != "c":
            continue
        terms = []
        for a, c in node.terms:
            ref, s = value[a]
            terms.append(Term(ref, c * s))
        dst = Ref("c", out_rows[node][0]) if node in out_rows else slots["c"].take()
        steps.append(Combine(dst, _ordered_terms(terms), False, intent=((node, Fraction(1)),)))
        value[node] = (dst, Fraction(1))
    for o, rows in out_rows.items():
        ref, s = value[o]
        for row in rows:
            if ref != Ref("c", row):
                steps.append(Combine(Ref("c", row), (Term(ref, s),), False, intent=((o, Fraction(1)),)))
    plan = MemoryPlan(slots["a"].peak, slots["b"].peak, slots["c"].peak, True, program.rank)
    return Schedule("streaming", program, tuple(steps), plan, product_comments(program))


def _value(node: Node, value: dict, program: Program) -> tuple[Ref, Fraction]:
    if node in value:
        return value[node]
    base, scale = _strip_scale(node)
    if base.op == "input":
        return _block_ref(base, program), scale
    if base in value:
        ref, s = value[base]
        return ref, s * scale
    raise IRError(f"{program.name}: {node!r} used before it is computed")


def fused(program: Program) -> Schedule:
    """One fused pass per side, products into their destinations, one fused pass for the outputs."""
    n, m, p = program.shape
    names = program.names()
    steps: list[Step] = []
    operand: list[list] = [[None, None] for _ in program.products]  # per product, per side: (Ref, scale)
    for k, side in enumerate(("a", "b")):
        slots = _Slots("w" + side)
        ops = [prod.args[k] for prod in program.products]
        entries, notes, entry_of = [], [], {}

        def src(node: Node) -> tuple[Ref, Fraction]:
            base, scale = _strip_scale(node)
            if base.op == "input":
                return _block_ref(base, program), scale
            return Ref("e", entry_of[base]), scale

        for node in topo_order(ops):
            if node.op != "lin" or _strip_scale(node)[0] is not node:
                continue
            terms = []
            for a, c in node.terms:
                ref, s = src(a)
                terms.append(Term(ref, c * s))
            entry_of[node] = len(entries)
            entries.append(tuple(terms))
            notes.append(f"{names.get(node, '')} = {node!r}".strip(" ="))
        outputs, intent, slot_of = [], [], {}
        for r, node in enumerate(ops):
            ref, scale = src(node)
            if ref.space == "e":
                base = _strip_scale(node)[0]
                if base not in slot_of:
                    slot_of[base] = slots.take()
                    outputs.append((ref.index, slot_of[base], False))
                    intent.append(((base, Fraction(1)),))
                ref = slot_of[base]
            operand[r][k] = (ref, scale)
        if outputs:  # entries no output needs are dropped by the table builder only if unused
            steps.append(Fused(side, tuple(entries), tuple(outputs), f"{side}-side operands, one pass",
                               tuple(intent), tuple(notes)))
        if side == "a":
            wa = slots.peak
        else:
            wb = slots.peak
    # products: alpha 1, beta 0, into a c-block while one is free, else a c-size slot; the scale of
    # an input-block operand (a view: -a11 is a11) goes into the output coefficients
    hosts = [Ref("c", q) for q in range(n * p)]
    wc = _Slots("wc")
    where: dict[Node, tuple[Ref, Fraction]] = {}
    for r, prod in enumerate(program.products):
        (lref, ls), (rref, rs) = operand[r]
        dst = hosts.pop(0) if hosts else wc.take()
        steps.append(Product(dst, lref, rref, Fraction(1), False, r, intent=((prod, 1 / (ls * rs)),)))
        where[prod] = (dst, ls * rs)
    entries, notes, entry_of = [], [], {}

    def csrc(node: Node) -> tuple[Ref, Fraction]:
        if node in entry_of:
            return Ref("e", entry_of[node]), Fraction(1)
        if node in where:
            return where[node]
        if node.op == "lin" and len(node.args) == 1:
            ref, s = csrc(node.args[0])
            return ref, s * node.coefs[0]
        raise IRError(f"{program.name}: {node!r} used before it is computed")

    def entry(node: Node) -> int:
        terms = []
        for a, c in (node.terms if node.op == "lin" else ((node, Fraction(1)),)):
            ref, s = csrc(a)
            terms.append(Term(ref, c * s))
        entry_of[node] = len(entries)
        entries.append(tuple(terms))
        note = f"{names.get(node, '')} = {node!r}".strip(" =")
        notes.append(note if len(note) <= 100 else note[:97] + "...")
        return entry_of[node]

    for node in topo_order(program.outputs):
        if node.op == "lin" and node.side == "c" and len(node.args) > 1:
            entry(node)
    outputs, intent = [], []
    for row, o in enumerate(program.outputs):
        e = entry_of[o] if o in entry_of else entry(o)
        outputs.append((e, Ref("c", row), False))
        intent.append(((o, Fraction(1)),))
    steps.append(Fused("c", tuple(entries), tuple(outputs), "c-blocks from the products, one pass", tuple(intent),
                       tuple(notes)))
    plan = MemoryPlan(wa, wb, wc.peak, False, program.rank, scratch=0)
    return Schedule("fused", program, tuple(steps), plan, product_comments(program))


def workspace_elements(schedule: Schedule, M: int, K: int, N: int, levels: int, cutoff: int, batch: int = 1,
                       itemsize: int | None = None) -> int:
    """Peak extra elements of one call of the rendered module (its ``_workspace``: every level's
    slots, allocated once before the recursion); a level applies while M, K, N reach the block
    shape and min(M, K, N) >= cutoff, as in the module. With ``itemsize``: the CPU layout, rows
    padded by ``row_stride``; without: the dense blocks (CUDA)."""
    n, m, p = schedule.program.shape
    total = 0
    for _ in range(levels):
        if not (M >= n and K >= m and N >= p and min(M, K, N) >= cutoff):
            break
        bm, bk, bn = M // n, K // m, N // p
        total += schedule.plan.elements(bm, bk, bn, batch, itemsize)
        if schedule.plan.stacked:
            batch *= schedule.program.rank
        M, K, N = bm, bk, bn
    return total


def make_schedule(program: Program, kind: str = "materialized") -> Schedule:
    if kind == "materialized":
        return materialized(program)
    if kind == "streaming":
        return streaming(program)
    if kind == "fused":
        return fused(program)
    raise ValueError(f"unknown schedule kind {kind!r}; known: {', '.join(KINDS)}")
