"""Lowering: a ``Factorization`` → the IR ``Program`` of one level.

Public API:

- ``lower(f)``: one level, no sharing beyond hash-consing (identical combinations become one
  node; identical products are merged and their W columns added, which keeps the program exact).
- ``lower_levels(f, levels)``: the flattened ``levels``-level program, lowered from the Kronecker
  power ``f ⊗ … ⊗ f`` (block index ``i = i_outer·n + i_inner``, as in ``compiler.kron``). Used to
  count and verify multi-level algorithms (two-level Winograd: 165 additions after CSE).

Several levels in the generated code are *nested emission*, not the flattened program: the
emitted function for one level handles a leading batch dimension, so level ℓ+1 runs on the stacked
level-ℓ operands (one batched product per level instead of R^ℓ calls). We chose nesting because
the flattened program of a rank-R algorithm has R^L products and (n·m)^L inputs: for AlphaTensor's
<11,12,12;990> at two levels that is 980 100 products, far too many to emit as text, while nested
emission reuses the one-level code (R products) at every level. The two agree exactly; the tests
check both on small integer matrices.
"""

from __future__ import annotations

from fractions import Fraction

from compiler.algebra.constructions import kron
from compiler.algebra.factors import Factorization
from compiler.ir.program import Node, Program, exact, inp, lin, mul, verify


def _column(arr, rows: int, r: int) -> list[tuple[int, Fraction]]:
    col = arr[:, r].tolist()
    return [(k, exact(c)) for k, c in enumerate(col) if c != 0]


def lower(f: Factorization, check: bool = True) -> Program:
    """One level of ``f`` as IR (see module docstring); ``f`` must be a real (field Q) algorithm."""
    f.require_real()
    n, m, p = f.shape
    R = f.rank
    a = [[inp("a", i, j) for j in range(m)] for i in range(n)]
    b = [[inp("b", j, k) for k in range(p)] for j in range(m)]
    prods: list[Node] = []
    col_of: dict[Node, int] = {}
    merged: list[dict[int, Fraction]] = []  # per distinct product: {W row: coef}
    for r in range(R):
        ua = _column(f.U, n * m, r)
        vb = _column(f.V, m * p, r)
        ws = _column(f.W, n * p, r)
        if not ua or not vb or not ws:
            continue  # a product with a zero factor, or used by no output, contributes nothing
        left = lin((a[q // m][q % m], c) for q, c in ua)
        right = lin((b[q // p][q % p], c) for q, c in vb)
        prod = mul(left, right)
        if prod not in col_of:
            col_of[prod] = len(prods)
            prods.append(prod)
            merged.append({})
        acc = merged[col_of[prod]]
        for row, c in ws:
            acc[row] = exact(acc.get(row, 0) + c)
    outputs = []
    for row in range(n * p):
        outputs.append(lin((prods[k], acc[row]) for k, acc in enumerate(merged) if acc.get(row, 0) != 0))
    prog = Program(f.shape, tuple(prods), tuple(outputs), f.label(), f.digest,
                   f.provenance.source if f.provenance else "")
    return verify(prog) if check else prog


def lower_levels(f: Factorization, levels: int, check: bool = True) -> Program:
    """The flattened ``levels``-level program (Kronecker power), for counting and verification."""
    if levels < 1:
        raise ValueError("levels must be >= 1")
    g = f
    for _ in range(levels - 1):
        g = kron(g, f)
    prog = lower(g, check=check)
    return Program(prog.shape, prog.products, prog.outputs, f"{f.label()}^{levels}" if levels > 1 else f.label(),
                   g.digest, prog.source)
