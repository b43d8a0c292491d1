"""The compiler's IR: block inputs, exact linear combinations, block products, outputs.

One small immutable node type, ``Node``, hash-consed: building the same node twice returns the
same object, so equal sub-expressions are shared for free and ``is`` is structural equality.

Node kinds (``node.op``):

- ``"input"``: a block of an operand, ``side`` ``"a"`` (``a[i,j]``) or ``"b"`` (``b[j,k]``),
  ``index = (row, col)`` (0-based; printed 1-based as ``a12``).
- ``"lin"``: ``Σ coef·arg``; ``args`` are inputs or other lin nodes of the same side (``"a"``,
  ``"b"``), or products / lin nodes over products (side ``"c"``). Coefficients are exact
  ``fractions.Fraction``; terms are in canonical order, duplicates merged, zeros dropped.
- ``"mul"``: a block product ``lhs · rhs`` (``args = (lhs, rhs)``, an a-side and a b-side node).

A ``Program`` is one level of an algorithm: its block ``shape`` (n, m, p), its ``products``
(mul nodes, in the factorization's column order) and its ``outputs`` (one node per c-block,
row-major). Public API:

- ``inp(side, i, j)``, ``lin(terms)``, ``mul(lhs, rhs)``: build nodes.
- ``expand(node)``: the node as ``{leaf: Fraction}`` over inputs (a/b side) or products (c side).
- ``Program`` with ``.factors()`` (exact U, V, W read back from the IR), ``.additions()``,
  ``.temporaries(side)``, ``.describe()`` (the readable printer:
  ``M3 = (a11 - a21) * (b22 - b12)``, ``t1 = a21 + a22``, ``c12 = M1 + M4``).
- ``verify(program, tensor=None)``: structural checks and the exact check that the program computes
  A·B (or the bilinear map ``tensor``); raises ``IRError`` naming the failing node.

Counting follows the usual convention: every binary ± of two blocks is one addition; a term
with a coefficient other than ±1 is a scaling, counted separately (``scalings``).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Mapping

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, matmul_tensor, reconstruct, to_exact

SIDES = ("a", "b", "c")


class IRError(ValueError):
    """An IR program is malformed or does not compute the matrix product."""


_CACHE: "weakref.WeakValueDictionary[tuple, Node]" = weakref.WeakValueDictionary()


class Node:
    """An immutable, hash-consed IR node (see the module docstring). Build with ``inp``/``lin``/``mul``."""

    __slots__ = ("op", "side", "args", "coefs", "index", "key", "__weakref__")

    op: str
    side: str
    args: tuple["Node", ...]
    coefs: tuple[Fraction, ...]
    index: tuple[int, ...]
    key: tuple  # structural sort key: deterministic across processes

    def __new__(cls, op: str, side: str, args: tuple = (), coefs: tuple = (), index: tuple = ()):
        ck = (op, side, tuple(id(a) for a in args), coefs, index)
        hit = _CACHE.get(ck)
        if hit is not None:
            return hit
        self = object.__new__(cls)
        for name, val in (("op", op), ("side", side), ("args", args), ("coefs", coefs), ("index", index)):
            object.__setattr__(self, name, val)
        if op == "input":
            key: tuple = (0, side, index)
        elif op == "mul":
            key = (1, args[0].key, args[1].key)
        else:
            key = (2, side, tuple((a.key, c) for a, c in zip(args, coefs)))
        object.__setattr__(self, "key", key)
        _CACHE[ck] = self
        return self

    def __setattr__(self, name, value):
        raise AttributeError("IR nodes are immutable")

    def __reduce__(self):
        return (Node, (self.op, self.side, self.args, self.coefs, self.index))

    @property
    def terms(self) -> tuple[tuple["Node", Fraction], ...]:
        return tuple(zip(self.args, self.coefs))

    def __repr__(self) -> str:
        if self.op == "input":
            i, j = self.index[0] + 1, self.index[1] + 1
            return f"{self.side}{i}{j}" if i < 10 and j < 10 else f"{self.side}{i}_{j}"
        if self.op == "mul":
            return f"({self.args[0]!r}) * ({self.args[1]!r})"
        return _format_terms(self.terms, repr)


def inp(side: str, i: int, j: int) -> Node:
    if side not in ("a", "b"):
        raise IRError(f"inputs are a- or b-blocks, got side {side!r}")
    return Node("input", side, (), (), (int(i), int(j)))


def _side_of(node: Node) -> str:
    return "c" if node.op == "mul" else node.side


def exact(c) -> int | Fraction:
    """The canonical exact coefficient: a Python ``int`` when integral (fast to hash), else a Fraction."""
    if type(c) is int:                     # the common case first (bool is not int here)
        return c
    if isinstance(c, int) and not isinstance(c, bool):
        return int(c)
    q = c if isinstance(c, Fraction) else Fraction(c if not hasattr(c, "item") else c.item())
    return q.numerator if q.denominator == 1 else q


def lin(terms: Iterable[tuple[Node, object]] | Mapping[Node, object]) -> Node:
    """``Σ coef·node`` in canonical form; a single term with coefficient 1 is the node itself."""
    items = terms.items() if isinstance(terms, Mapping) else terms
    acc: dict[Node, int | Fraction] = {}
    for node, c in items:
        acc[node] = exact(acc.get(node, 0) + exact(c))
    kept = sorted(((n, c) for n, c in acc.items() if c != 0), key=lambda t: t[0].key)
    if not kept:
        raise IRError("a linear combination with no nonzero term (a zero block) is not representable")
    sides = {_side_of(n) for n, _ in kept}
    if len(sides) != 1:
        raise IRError(f"a linear combination mixes sides {sorted(sides)}: {_format_terms(kept, repr)}")
    if len(kept) == 1 and kept[0][1] == 1:
        return kept[0][0]
    return Node("lin", sides.pop(), tuple(n for n, _ in kept), tuple(c for _, c in kept))


def mul(lhs: Node, rhs: Node) -> Node:
    if lhs.side != "a" or rhs.side != "b":
        raise IRError(f"a product multiplies an a-side by a b-side node, got {lhs.side} * {rhs.side}")
    return Node("mul", "m", (lhs, rhs))


_EXPAND: "weakref.WeakKeyDictionary[Node, dict[Node, Fraction]]" = weakref.WeakKeyDictionary()


def expand(node: Node) -> dict[Node, Fraction]:
    """The node as a combination of leaves (inputs, or products for the c side)."""
    hit = _EXPAND.get(node)
    if hit is not None:
        return hit
    if node.op in ("input", "mul"):
        out = {node: 1}
    else:
        out: dict[Node, int | Fraction] = {}
        for a, c in node.terms:
            for leaf, d in expand(a).items():
                out[leaf] = exact(out.get(leaf, 0) + c * d)
        out = {k: v for k, v in out.items() if v != 0}
    _EXPAND[node] = out
    return out


def _fmt_coef(c: Fraction) -> str:
    return str(c.numerator) if c.denominator == 1 else f"{c.numerator}/{c.denominator}"


def _format_terms(terms, name) -> str:
    parts = []
    for k, (node, c) in enumerate(terms):
        sign = "-" if c < 0 else "+"
        mag = abs(c)
        body = name(node) if mag == 1 else f"{_fmt_coef(mag)}*{name(node)}"
        parts.append((("-" if sign == "-" else "") if k == 0 else f" {sign} ") + body)
    return "".join(parts)


def topo_order(roots: Iterable[Node]) -> list[Node]:
    """All nodes reachable from ``roots``, each after its arguments (deterministic)."""
    seen: set[int] = set()
    order: list[Node] = []

    def visit(n: Node) -> None:
        stack = [(n, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for a in reversed(node.args):
                if id(a) not in seen:
                    stack.append((a, False))

    for r in roots:
        visit(r)
    return order


@dataclass(frozen=True)
class Additions:
    """Block additions per side (each binary ± is one) and scalings (terms with |coef| ≠ 1)."""

    a: int
    b: int
    c: int
    scalings: int

    @property
    def total(self) -> int:
        return self.a + self.b + self.c


@dataclass(frozen=True, eq=False)
class Program:
    """One level of a bilinear algorithm as IR (see the module docstring)."""

    shape: tuple[int, int, int]
    products: tuple[Node, ...]
    outputs: tuple[Node, ...]
    name: str = ""
    digest: str = ""
    source: str = ""

    @property
    def rank(self) -> int:
        return len(self.products)

    def nodes(self) -> list[Node]:
        """Every node, each after its arguments (computed once: the program is immutable)."""
        cached = self.__dict__.get("_nodes")
        if cached is None:
            cached = topo_order(list(self.products) + list(self.outputs))
            object.__setattr__(self, "_nodes", cached)
        return list(cached)

    def temporaries(self, side: str) -> list[Node]:
        """Lin nodes of ``side`` used inside another combination: the shared sub-expressions, in order."""
        cached = self.__dict__.get("_temporaries")
        if cached is None:
            nodes = self.nodes()
            nested = {a for n in nodes if n.op == "lin" for a in n.args if a.op == "lin"}
            cached = {s: tuple(n for n in nodes if n.op == "lin" and n.side == s and n in nested) for s in SIDES}
            object.__setattr__(self, "_temporaries", cached)
        return list(cached[side])

    def additions(self) -> Additions:
        counts = {"a": 0, "b": 0, "c": 0}
        scal = 0
        for n in self.nodes():
            if n.op == "lin":
                counts[n.side] += len(n.args) - 1
                scal += sum(1 for c in n.coefs if abs(c) != 1)
        return Additions(counts["a"], counts["b"], counts["c"], scal)

    def factors(self, raw: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact (U, V, W) read back from the IR (int64 when integral, else Fraction objects;
        ``raw``: object arrays of ints and Fractions as they come)."""
        n, m, p = self.shape
        R = self.rank
        U = np.zeros((n * m, R), dtype=object)
        V = np.zeros((m * p, R), dtype=object)
        W = np.zeros((n * p, R), dtype=object)
        col = {prod: r for r, prod in enumerate(self.products)}
        for r, prod in enumerate(self.products):
            for leaf, c in expand(prod.args[0]).items():
                U[leaf.index[0] * m + leaf.index[1], r] = c
            for leaf, c in expand(prod.args[1]).items():
                V[leaf.index[0] * p + leaf.index[1], r] = c
        for row, out in enumerate(self.outputs):
            for leaf, c in expand(out).items():
                W[row, col[leaf]] = c
        if raw:
            return U, V, W
        return tuple(_exact_array(x) for x in (U, V, W))  # type: ignore[return-value]

    def scaled_factors(self) -> tuple[tuple[np.ndarray, int], ...]:
        """``((U·du, du), (V·dv, dv), (W·dw, dw))`` as integer arrays: fast exact checks."""
        out = []
        for arr in self.factors(raw=True):
            flat = arr.ravel().tolist()
            d = math.lcm(*{c.denominator for c in flat if isinstance(c, Fraction)})
            ints = [int(c * d) for c in flat]
            big = max((abs(v) for v in ints), default=0) >= 2**62
            out.append((np.array(ints, dtype=object if big else np.int64).reshape(arr.shape), d))
        return tuple(out)

    def names(self) -> dict[Node, str]:
        """Printable names: inputs ``a12``, products ``M1..``, shared temporaries ``s1``/``t1``/``u1``."""
        n, m, p = self.shape
        out: dict[Node, str] = {}
        for r, prod in enumerate(self.products):
            out[prod] = f"M{r + 1}"
        for side, letter in (("a", "s"), ("b", "t"), ("c", "u")):
            for k, node in enumerate(self.temporaries(side)):
                out[node] = f"{letter}{k + 1}"
        for node in self.nodes():
            if node.op == "input":
                out[node] = repr(node)
        return out

    def describe(self) -> str:
        """The readable listing: temporaries, products, outputs (one line each)."""
        nm = self.names()
        n, m, p = self.shape

        rank = {node: k for k, node in enumerate(self.nodes())}
        order = {p: k for k, p in enumerate(self.products)}

        def display(term) -> tuple:  # inputs by position, products by number, temporaries by age
            node = term[0]
            return (node.op != "input", node.index, order.get(node, len(order)), rank[node])

        def terms_of(node: Node) -> str:
            return _format_terms(sorted(node.terms, key=display), expr)

        def expr(node: Node) -> str:
            return nm[node] if node in nm else terms_of(node)

        def paren(node: Node) -> str:
            s = expr(node)
            return f"({s})" if node.op == "lin" and node not in nm else s

        lines = [f"# {self.name or 'program'} <{n},{m},{p}> rank {self.rank}"]
        for side in ("a", "b"):
            for t in self.temporaries(side):
                lines.append(f"{nm[t]} = {terms_of(t)}")
        for prod in self.products:
            lines.append(f"{nm[prod]} = {paren(prod.args[0])} * {paren(prod.args[1])}")
        for t in self.temporaries("c"):
            lines.append(f"{nm[t]} = {terms_of(t)}")
        for row, out in enumerate(self.outputs):
            i, k = divmod(row, p)
            cname = f"c{i + 1}{k + 1}" if max(self.shape) < 10 else f"c{i + 1}_{k + 1}"
            lines.append(f"{cname} = {terms_of(out) if out.op == 'lin' else expr(out)}")
        return "\n".join(lines)


def _exact_array(x: np.ndarray) -> np.ndarray:
    if all(isinstance(v, int) for v in x.ravel().tolist()):
        return x.astype(np.int64)
    return to_exact(x)


def verify(program: Program, tensor: np.ndarray | None = None) -> Program:
    """Check structure and that the program computes A·B exactly; raise ``IRError`` naming the node.

    ``tensor``: the bilinear map the program must compute instead of A·B (an exact integer array of
    shape (n·m, m·p, n·p)): an alternative-basis core computes the matmul tensor in its transformed
    bases (``compiler.codegen.emit_altbasis.core_tensor``), not A·B."""
    n, m, p = program.shape
    if len(program.outputs) != n * p:
        raise IRError(f"{program.name}: {len(program.outputs)} outputs for {n * p} c-blocks")
    dims = {"a": (n, m), "b": (m, p)}
    for node in program.nodes():
        if node.op == "input":
            r, c = dims[node.side]
            if not (0 <= node.index[0] < r and 0 <= node.index[1] < c):
                raise IRError(f"{program.name}: input {node!r} outside the <{n},{m},{p}> block grid")
        elif node.op == "mul":
            if node.args[0].side != "a" or node.args[1].side != "b":
                raise IRError(f"{program.name}: product {node!r} does not multiply an a- by a b-combination")
        elif node.op == "lin":
            for a in node.args:
                want = "c" if node.side == "c" else node.side
                if _side_of(a) != want:
                    raise IRError(f"{program.name}: {node!r} mixes side {node.side} with {a!r}")
        else:
            raise IRError(f"{program.name}: unknown node kind {node.op!r}")
    prods = set(program.products)
    for row, out in enumerate(program.outputs):
        if _side_of(out) != "c":
            raise IRError(f"{program.name}: output c{row // p + 1}{row % p + 1} is not a combination of products")
        for leaf in expand(out):
            if leaf not in prods:
                raise IRError(f"{program.name}: output c{row // p + 1}{row % p + 1} uses an unlisted product {leaf!r}")
    (U, du), (V, dv), (W, dw) = program.scaled_factors()
    t = _sparse_tensor(U, V, W)
    if t is None:
        t, d = reconstruct(U, V, W)  # integer arrays: d == 1, the scale is du·dv·dw
    else:
        d = 1
    want = matmul_tensor(n, m, p) if tensor is None else np.asarray(tensor, dtype=object)
    wrong = np.argwhere(t != want * (d * du * dv * dw))
    if len(wrong):
        _, _, c = (int(x) for x in wrong[0])
        i, k = divmod(c, p)
        what = "A·B" if tensor is None else "its bilinear map"
        raise IRError(f"{program.name}: output c{i + 1}{k + 1} = {program.outputs[c]!r} is wrong "
                      f"({len(wrong)} wrong tensor entries): the program does not compute {what}")
    return program


def _sparse_tensor(U: np.ndarray, V: np.ndarray, W: np.ndarray) -> np.ndarray | None:
    """``Σ_r U_r ⊗ V_r ⊗ W_r`` exactly, summing only the nonzero triples (integer factors), or None
    when the integers are too large for the float64 accumulation to be exact.

    Every term and partial sum is an integer of magnitude at most R·max|U|·max|V|·max|W| < 2**53,
    so ``np.bincount``'s float64 sums are exact (no rounding can occur; not a tolerance). On
    AlphaTensor's <11,12,12;990> this is 4.5 M triples instead of a dense 19 008×990×132 product."""
    if any(x.dtype != np.int64 for x in (U, V, W)):
        return None
    R = U.shape[1]
    top = [int(np.abs(x).max()) if x.size else 0 for x in (U, V, W)]
    if R * top[0] * top[1] * top[2] >= 2**53:
        return None
    nb, nc = V.shape[0], W.shape[0]
    idx, val = [], []
    for r in range(R):
        iu, iv, iw = np.flatnonzero(U[:, r]), np.flatnonzero(V[:, r]), np.flatnonzero(W[:, r])
        idx.append(((iu[:, None, None] * nb + iv[None, :, None]) * nc + iw[None, None, :]).ravel())
        val.append((U[iu, r][:, None, None] * V[iv, r][None, :, None] * W[iw, r][None, None, :]).ravel())
    size = U.shape[0] * nb * nc
    if not idx:
        return np.zeros((U.shape[0], nb, nc), dtype=np.int64)
    t = np.bincount(np.concatenate(idx), weights=np.concatenate(val).astype(np.float64), minlength=size)
    return t.astype(np.int64).reshape(U.shape[0], nb, nc)


__all__ = ["Additions", "IRError", "Node", "Program", "expand", "inp", "lin", "mul", "topo_order", "verify",
           "FactorizationError"]
