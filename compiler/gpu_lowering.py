"""What the GPU emitters (Triton, CUDA) render: one level of a factorization as three combination stages.

A bilinear algorithm <n,m,p;R> splits ``a`` into an n×m grid of blocks, ``b`` into m×p and ``c``
into n×p (row-major block names, DESIGN.md). Every GPU kernel that fastmm emits is one of:

- a *combination* of the a-blocks into the R left operands ``S_r = Σ_j U[j,r]·a_j`` (likewise the
  b-blocks into ``T_r`` with V), reading each input block once;
- an *output combination* ``c_q = Σ_r W[q,r]·M_r`` reading each product once;
- a *fused leaf GEMM* whose operand loads form ``S_r``/``T_r`` tile by tile and whose epilogue adds
  ``W[q,r]·acc`` into the c-blocks.

This module turns a ``Factorization`` into a ``GpuProgram``: plain frozen data (which blocks to
load, one ``Assign`` per product operand / output block / shared temporary, exact ``Fraction``
coefficients with their literal text). The templates hold all kernel text; this module holds the
decisions. Temporaries shared between several combinations come from ``compiler.cse`` when it is
importable (the compiler issue's pass); without it each combination is written out in full, which
is correct and only costs additions.

Coefficients must be exact in floating point for the emitted literals to be exact: dyadic
rationals (1/2, 1/8, AlphaTensor's) are; anything else is written as a quotient and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from compiler.factors import Factorization

GENERATOR_VERSION = "fastmm-gpu-emit 1"


@dataclass(frozen=True)
class Term:
    """``coef · var`` inside a linear combination."""

    coef: Fraction
    var: str
    name: str  # the paper-style name of what ``var`` holds (``a12``, ``M3``), for comments

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
class Use:
    """Product r enters c-block ``block`` with coefficient ``coef`` (the fused GEMM's epilogue)."""

    block: Block
    coef: Fraction

    @property
    def sign(self) -> str:
        return "-" if self.coef < 0 else "+"

    @property
    def unit(self) -> bool:
        return abs(self.coef) == 1

    @property
    def magnitude(self) -> str:
        return coefficient_literal(abs(self.coef))


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
    source: str         # where the factorization came from (file, paper)
    generator: str
    a: Side
    b: Side
    c: Side
    products: tuple[Product, ...]
    c_blocks: tuple[Block, ...]  # every c-block, row-major (the fused GEMM's accumulators)
    exact_literals: bool  # every coefficient is a dyadic rational (exact float literal)


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


def _column_terms(column: Sequence, blocks: Sequence[Block]) -> tuple[Term, ...]:
    return tuple(Term(Fraction(c), blk.var, blk.name) for c, blk in zip(column, blocks) if c != 0)


def lower(f: Factorization, name: str | None = None) -> GpuProgram:
    """One level of ``f`` as a ``GpuProgram`` (refuses mod-2 schemes: they compute no real product)."""
    f.require_real()
    n, m, p = f.shape
    R = f.rank
    a_blocks, b_blocks, c_blocks = _blocks("a", n, m), _blocks("b", m, p), _blocks("c", n, p)
    products = []
    for r in range(R):
        a_terms = _column_terms(f.U[:, r], a_blocks)
        b_terms = _column_terms(f.V[:, r], b_blocks)
        a_loads = tuple(blk for c, blk in zip(f.U[:, r], a_blocks) if c != 0)
        b_loads = tuple(blk for c, blk in zip(f.V[:, r], b_blocks) if c != 0)
        uses = tuple(Use(c_blocks[q], Fraction(f.W[q, r])) for q in range(n * p) if f.W[q, r] != 0)
        products.append(Product(r, f"m_{r}", f"M{r + 1}", a_terms, b_terms, a_loads, b_loads, uses))
    prod_terms = [Term(Fraction(1), pr.var, pr.name) for pr in products]

    def side(letter, grid, blocks, results_terms, result_vars, result_names):
        results = tuple(Assign(v, nm, terms, i) for i, (v, nm, terms) in
                        enumerate(zip(result_vars, result_names, results_terms)))
        temps, results = _share(letter, results)
        used = {t.var for a in temps + results for t in a.terms}
        return Side(letter, grid, tuple(b for b in blocks if b.var in used), temps, results)

    a = side("a", (n, m), a_blocks, [pr.a_terms for pr in products],
             [f"s_{r}" for r in range(R)], [f"S{r + 1}" for r in range(R)])
    b = side("b", (m, p), b_blocks, [pr.b_terms for pr in products],
             [f"t_{r}" for r in range(R)], [f"T{r + 1}" for r in range(R)])
    c_terms = [tuple(Term(Fraction(f.W[q, r]), prod_terms[r].var, prod_terms[r].name)
                     for r in range(R) if f.W[q, r] != 0) for q in range(n * p)]
    c = side("c", (n, p), [Block(pr.var, pr.name, 0, pr.index) for pr in products], c_terms,
             [blk.var for blk in c_blocks], [blk.name for blk in c_blocks])
    src = f.provenance.source or f.provenance.method or "unknown"
    exact = all(_dyadic(Fraction(x)) for x in f.coefficients())
    return GpuProgram(name or identifier(f.label()), f.label(), f.digest, f.shape, R, f.nnz, src,
                      GENERATOR_VERSION, a, b, c, tuple(products), tuple(c_blocks), exact)


def _share(letter: str, results: tuple[Assign, ...]) -> tuple[tuple[Assign, ...], tuple[Assign, ...]]:
    """Hook for common-subexpression elimination across the combinations of one stage.

    Today every combination is written out in full (no shared temporaries); the compiler's CSE pass
    plugs in here when it lands, and the templates already render ``temps`` before ``results``.
    """
    return (), results

