"""What the GPU emitters (Triton, CUDA) render: one level of a factorization as three combination stages.

A bilinear algorithm <n,m,p;R> splits ``a`` into an n×m grid of blocks, ``b`` into m×p and ``c``
into n×p (block names row-major, as everywhere in fastmm). Every GPU kernel that fastmm emits is one of:

- a *combination* of the a-blocks into the R left operands ``S_r = Σ_j U[j,r]·a_j`` (likewise the
  b-blocks into ``T_r`` with V), reading each input block once;
- an *output combination* ``c_q = Σ_r W[q,r]·M_r`` reading each product once;
- a *fused leaf GEMM* whose operand loads form ``S_r``/``T_r`` tile by tile and whose epilogue adds
  ``W[q,r]·acc`` into the c-blocks.

This module turns a ``Factorization`` into a ``GpuProgram``: plain frozen data (which blocks to
load, one ``Assign`` per product operand / output block / shared temporary, exact ``Fraction``
coefficients with their literal text). The templates hold all kernel text; this module holds the
decisions. Every ``GpuProgram`` is proven before it is returned (``compiler.codegen.validate``:
its stages and its fused view run on random exact blocks). It reads the compiler's IR (``compiler.ir.program``, lowered by ``compiler.ir.lower``): the shared
temporaries that ``compiler.ir.cse`` found become local variables of the combination kernels (Winograd's
15 additions), while the fused GEMM's operand loads use each product's expanded combination (a
temporary shared between products cannot be shared inside one product's K-loop).

Coefficients must be exact in floating point for the emitted literals to be exact: dyadic
rationals (1/2, 1/8, AlphaTensor's) are; anything else is written as a quotient and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from compiler.algebra.factors import Factorization
from compiler.codegen.validate import check_gpu_program
from compiler.ir.program import Node, Program, expand, inp

GENERATOR_VERSION = "fastmm-gpu-emit 1"


class _Signed:
    """What the templates read off a coefficient ``coef``: its sign, whether it is ±1, and |coef|."""

    coef: Fraction

    @property
    def sign(self) -> str:
        return "-" if self.coef < 0 else "+"

    @property
    def unit(self) -> bool:
        return abs(self.coef) == 1

    @property
    def magnitude(self) -> str:
        """The literal for |coef| (exact for dyadic rationals, which is all fastmm emits today)."""
        return coefficient_literal(abs(self.coef))


@dataclass(frozen=True)
class Term(_Signed):
    """``coef · var`` inside a linear combination."""

    coef: Fraction
    var: str
    name: str  # the paper-style name of what ``var`` holds (``a12``, ``M3``), for comments

    @property
    def c_magnitude(self) -> str:
        """|coef| as a C double literal (CUDA); cast to the accumulator type by the template."""
        return coefficient_literal(abs(self.coef))


@dataclass(frozen=True)
class Assign:
    """``var = Σ terms``; ``index`` is the product r (operands), the c-block row (outputs) or -1 (temporaries)."""

    var: str
    name: str
    terms: tuple[Term, ...]
    index: int


@dataclass(frozen=True)
class Block:
    """One block of an operand grid: ``var`` holds the tile of block (row, col)."""

    var: str
    name: str
    row: int
    col: int


@dataclass(frozen=True)
class Step:
    """Load ``loads`` (blocks not read before), then compute ``assign``; ``store`` for results."""

    loads: tuple[Block, ...]
    assign: Assign
    store: bool


@dataclass(frozen=True)
class Side:
    """One combination stage: load ``blocks`` (each once, just before first use), compute ``temps`` then ``results``."""

    letter: str  # "a", "b" or "c"
    grid: tuple[int, int]
    blocks: tuple[Block, ...]
    temps: tuple[Assign, ...]
    results: tuple[Assign, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        by_var = {b.var: b for b in self.blocks}
        seen: set[str] = set()
        out = []
        for assign, store in [(t, False) for t in self.temps] + [(r, True) for r in self.results]:
            new = tuple(by_var[t.var] for t in assign.terms if t.var in by_var and t.var not in seen)
            seen.update(b.var for b in new)
            out.append(Step(new, assign, store))
        return tuple(out)


@dataclass(frozen=True)
class Use(_Signed):
    """Product r enters c-block ``block`` with coefficient ``coef`` (the fused GEMM's epilogue)."""

    block: Block
    coef: Fraction


@dataclass(frozen=True)
class Product:
    """Product r: its operands as combinations of input blocks, and where it goes."""

    index: int
    var: str
    name: str  # "M1" (1-based, as in the papers)
    a_terms: tuple[Term, ...]
    b_terms: tuple[Term, ...]
    a_loads: tuple[Block, ...]  # the a-blocks of ``a_terms``, in the same order
    b_loads: tuple[Block, ...]
    uses: tuple[Use, ...]


@dataclass(frozen=True)
class GpuProgram:
    """Everything a GPU template needs for one level of one factorization."""

    name: str           # identifier-safe kernel prefix
    label: str          # the factorization's label
    digest: str
    shape: tuple[int, int, int]
    rank: int
    nnz: tuple[int, int, int]
    source: str         # where the factorization came from (paper, construction)
    generator: str
    a: Side
    b: Side
    c: Side
    products: tuple[Product, ...]
    c_blocks: tuple[Block, ...]  # every c-block, row-major (the fused GEMM's accumulators)
    exact_literals: bool  # every coefficient is a dyadic rational (exact float literal)
    factor_file: str = ""  # the file it was read from, when built from one
    cse: bool = True    # whether the combinations share CSE temporaries
    additions_naive: int = 0  # block additions of the factorization as written (one level)

    @property
    def additions(self) -> int:
        """Block additions the rendered combinations perform (temporaries and results, three sides)."""
        return sum(max(len(asg.terms) - 1, 0) for side in (self.a, self.b, self.c)
                   for asg in side.temps + side.results)


def coefficient_literal(q: Fraction) -> str:
    """A float literal equal to ``q`` when ``q`` is dyadic (exact), else a quotient ``(1.0 / 3.0)``."""
    q = Fraction(q)
    if _dyadic(q):
        return repr(float(q))
    return f"({float(q.numerator)!r} / {float(q.denominator)!r})"


def _dyadic(q: Fraction) -> bool:
    d = q.denominator
    return d & (d - 1) == 0


def identifier(text: str) -> str:
    """A Python/C identifier from a factorization label (``strassen-2x2x2-r7`` → ``strassen_2x2x2_r7``)."""
    out = "".join(ch if ch.isalnum() else "_" for ch in text.encode("ascii", "replace").decode())
    out = "_".join(part for part in out.split("_") if part)
    return out if out and not out[0].isdigit() else f"alg_{out}"


def _block_name(letter: str, row: int, col: int, cols: int, rows: int) -> str:
    if rows <= 9 and cols <= 9:
        return f"{letter}{row + 1}{col + 1}"
    return f"{letter}({row + 1},{col + 1})"


def _blocks(letter: str, rows: int, cols: int) -> list[Block]:
    return [Block(f"{letter}_{i}_{j}", _block_name(letter, i, j, cols, rows), i, j)
            for i in range(rows) for j in range(cols)]


@lru_cache(maxsize=128)
def lower(f: Factorization, name: str | None = None, cse: bool = True, factor_file: str = "") -> GpuProgram:
    """One level of ``f`` as a ``GpuProgram``, through the compiler's IR (and its CSE unless ``cse=False``).

    Refuses mod-2 schemes (they compute no real product). Products that the IR merges or drops
    (duplicates, zero columns) are merged or dropped here too: the program's rank is the IR's.
    Cached per process (the CSE takes ~1 s for <4,4,4;49>; a ``GpuProgram`` is immutable).
    """
    from compiler.ir.lower import lower as lower_ir
    program = lower_ir(f)
    naive = program.additions().total
    if cse:
        from compiler.ir.cse import cse_program
        program = cse_program(program)
    src = f.provenance.source or f.provenance.method or "unknown"
    return from_ir(program, name or identifier(f.label()), f.label(), f.nnz, src, factor_file, cse, naive)


def from_ir(program: Program, name: str, label: str, nnz: tuple[int, int, int], source: str,
            factor_file: str = "", cse: bool = True, additions_naive: int | None = None) -> GpuProgram:
    """The render context of an IR ``Program`` (see ``compiler.ir.program``): loads, temporaries, results, products."""
    n, m, p = program.shape
    grids = {"a": (n, m), "b": (m, p), "c": (n, p)}
    blocks = {side: _blocks(side, *grids[side]) for side in grids}
    names = program.names()
    var: dict[Node, str] = {}
    for side in ("a", "b"):
        for blk in blocks[side]:
            var[inp(side, blk.row, blk.col)] = blk.var
    prod_blocks = []
    for r, prod in enumerate(program.products):
        var[prod] = f"m_{r}"
        prod_blocks.append(Block(f"m_{r}", f"M{r + 1}", 0, r))
    for side in ("a", "b", "c"):
        for node in program.temporaries(side):
            var[node] = f"tmp_{names[node]}"

    def terms(node: Node) -> tuple[Term, ...]:
        if node in var:  # an input, a product or a shared temporary: a single unit term
            return (Term(Fraction(1), var[node], names[node]),)
        return definition(node)

    order = {node: k for k, node in enumerate(program.nodes())}
    prod_index = {prod: r for r, prod in enumerate(program.products)}

    def reading_order(term) -> tuple:  # as the papers write sums: inputs by position, M1..MR, then temporaries
        node = term[0]
        return (node.op == "lin", prod_index.get(node, -1), node.index, order[node])

    def definition(node: Node) -> tuple[Term, ...]:
        return tuple(Term(Fraction(c), var[a], names[a]) for a, c in sorted(node.terms, key=reading_order))

    def expanded(node: Node, by_leaf: dict[Node, Block]) -> tuple[tuple[Term, ...], tuple[Block, ...]]:
        leaves = sorted(expand(node).items(), key=lambda t: t[0].key)
        return (tuple(Term(Fraction(c), by_leaf[lf].var, by_leaf[lf].name) for lf, c in leaves),
                tuple(by_leaf[lf] for lf, _ in leaves))

    def side(letter: str, grid, leaves: list[Block], results: list[tuple[str, str, Node]]) -> Side:
        temps = tuple(Assign(var[t], names[t], definition(t), -1) for t in program.temporaries(letter))
        res = tuple(Assign(v, nm, terms(node), i) for i, (v, nm, node) in enumerate(results))
        used = {t.var for asg in temps + res for t in asg.terms}
        return Side(letter, grid, tuple(b for b in leaves if b.var in used), temps, res)

    R = program.rank
    a = side("a", (n, m), blocks["a"], [(f"s_{r}", f"S{r + 1}", pr.args[0]) for r, pr in enumerate(program.products)])
    b = side("b", (m, p), blocks["b"], [(f"t_{r}", f"T{r + 1}", pr.args[1]) for r, pr in enumerate(program.products)])
    c = side("c", (n, p), prod_blocks, [(blk.var, blk.name, out) for blk, out in zip(blocks["c"], program.outputs)])

    a_leaf = {inp("a", blk.row, blk.col): blk for blk in blocks["a"]}
    b_leaf = {inp("b", blk.row, blk.col): blk for blk in blocks["b"]}
    uses: dict[Node, list[Use]] = {pr: [] for pr in program.products}
    for blk, out in zip(blocks["c"], program.outputs):
        for leaf, coef in sorted(expand(out).items(), key=lambda t: t[0].key):
            uses[leaf].append(Use(blk, Fraction(coef)))
    products = []
    for r, pr in enumerate(program.products):
        a_terms, a_loads = expanded(pr.args[0], a_leaf)
        b_terms, b_loads = expanded(pr.args[1], b_leaf)
        products.append(Product(r, f"m_{r}", f"M{r + 1}", a_terms, b_terms, a_loads, b_loads, tuple(uses[pr])))
    coefs = {Fraction(c) for node in program.nodes() if node.op == "lin" for c in node.coefs}
    gp = GpuProgram(name, label, program.digest, program.shape, R, nnz, source, GENERATOR_VERSION,
                    a, b, c, tuple(products), tuple(blocks["c"]), all(_dyadic(q) for q in coefs), factor_file,
                    cse, program.additions().total if additions_naive is None else additions_naive)
    check_gpu_program(gp)  # translation validation: what the templates render must compute A·B exactly
    return gp
