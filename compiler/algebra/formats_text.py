"""Plain-text factor formats of other projects, converted at the door (algebra layer).

- arbenson/fast-matmul ``codegen/algorithms/*`` (Benson & Ballard, PPoPP 2015): optional ``#``
  comment line, then the rows of U, a line ``#``, the rows of V, ``#``, the rows of W; one row per
  block entry (row-major), one column per product. Their convention is ours (W not transposed).
  The shape is not in their files: it comes from the file name (``grey322-11-50`` is <3,2,2>,
  rank 11), from a ``<n,m,p>`` in the comment line (our writer puts it there), or from the caller. Coefficients are integers or terminating decimals (``0.5``); we read them
  exactly and write a rational only when it has a terminating decimal expansion.
- dronperminov/ternary_flip_graph scheme ``.txt``: ``n1 n2 n3 rank``, then all of u, then v, then
  w, each rank-major (product r's ``n1·n2`` entries, then product r+1's). u is indexed ``i·n2+k``
  and v ``k·n3+j`` (row-major), w ``j·n1+i``: their w belongs to the transposed product, like
  AlphaTensor's. Integer schemes hold one integer per coefficient; fractional schemes a
  ``numerator denominator`` pair per coefficient (told apart by the count of numbers).
- fmm.univ-lille.fr catalogue Maple tensor files (``*_tensor.mpl``): ``Tensor:=TriadSet([Triad([...]), ...])``,
  one Triad of three Matrix(rows, cols, [[...]]) per product; the third is p×n (transposed product).
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance, to_exact


class TextFormatError(FactorizationError):
    """A text factor file is malformed, or a scheme cannot be written in the format asked for."""


def _exact(token: str, where: str) -> Fraction:
    try:
        return Fraction(token)  # exact for '3', '-1/2' and '0.125'; never goes through a float
    except (ValueError, ZeroDivisionError):
        raise TextFormatError(f"{where}: {token!r} is not a number") from None


def _column_array(rows: list[list[Fraction]]) -> np.ndarray:
    return to_exact(np.array(rows, dtype=object)) if rows else np.zeros((0, 0), np.int64)


# -- fast-matmul ---------------------------------------------------------------------------------
_FASTMM_NAME = re.compile(r"(?<![0-9])([1-9])([1-9])([1-9])-(\d+)(?:-|$)")


def shape_from_fast_matmul_name(name: str) -> tuple[int, int, int] | None:
    """``grey322-11-50`` -> (3, 2, 2); None if the name does not say."""
    hit = _FASTMM_NAME.search(Path(name).name)
    return None if hit is None else tuple(int(hit.group(i)) for i in (1, 2, 3))  # type: ignore[return-value]


def from_fast_matmul(text: str, shape: tuple[int, int, int] | None, where: str = "<fast-matmul>") -> Factorization:
    lines = [ln.strip() for ln in text.splitlines()]
    if lines and lines[0].startswith("#") and lines[0] != "#":
        comment, lines = lines[0].lstrip("# "), lines[1:]
    else:
        comment = ""
    blocks: list[list[list[Fraction]]] = [[]]
    for ln in lines:
        if ln == "#":
            blocks.append([])
        elif ln:
            blocks[-1].append([_exact(t, where) for t in ln.split()])
    if len(blocks) != 3:
        raise TextFormatError(f"{where}: a fast-matmul algorithm has three blocks U # V # W, found {len(blocks)}")
    widths = {len(r) for b in blocks for r in b}
    if len(widths) != 1:
        raise TextFormatError(f"{where}: rows disagree on the rank (row lengths {sorted(widths)})")
    shape = shape or shape_from_fast_matmul_name(where)
    if shape is None and (hit := re.search(r"<(\d+),(\d+),(\d+)>", comment)):
        shape = tuple(int(x) for x in hit.groups())  # our writer names the shape in its comment line
    if shape is None:
        raise TextFormatError(f"{where}: the shape is not in a fast-matmul file; name it like 'x322-11' or pass it")
    n, m, p = shape
    if [len(b) for b in blocks] != [n * m, m * p, n * p]:
        raise TextFormatError(f"{where}: {[len(b) for b in blocks]} rows do not fit <{n},{m},{p}> "
                              f"(want {[n * m, m * p, n * p]})")
    try:
        return Factorization(shape, *(_column_array(b) for b in blocks), name=Path(where).stem,
                             provenance=Provenance(notes=f"read from fast-matmul file {Path(where).name}"
                                                   + (f" ({comment})" if comment else "")))
    except FactorizationError as e:
        raise TextFormatError(f"{where}: {e}") from None


def _decimal(q: Fraction, fmt: str) -> str:
    if q.denominator == 1:
        return str(q.numerator)
    d = q.denominator
    for prime in (2, 5):
        while d % prime == 0:
            d //= prime
    if d != 1:
        raise TextFormatError(f"the {fmt} format holds integers and terminating decimals; "
                              f"coefficient {q} has no exact decimal form")
    digits = 0
    while (q * 10 ** digits).denominator != 1:
        digits += 1
    return format(Decimal(q.numerator) / Decimal(q.denominator), f".{digits}f")


def to_fast_matmul(f: Factorization) -> str:
    f.require_real()
    out = [f"# {f.label()} {f.shape_str} rank {f.rank}, written by fastmm"]
    for i, a in enumerate((f.U, f.V, f.W)):
        if i:
            out.append("#")
        out += [" ".join(_decimal(Fraction(x), "fast-matmul") for x in row) for row in a.tolist()]
    return "\n".join(out) + "\n"


# -- ternary_flip_graph --------------------------------------------------------------------------
def from_flip_graph(text: str, where: str = "<flip-graph>") -> Factorization:
    tokens = text.split()
    if len(tokens) < 4:
        raise TextFormatError(f"{where}: a flip-graph scheme starts with 'n1 n2 n3 rank'")
    try:
        n, m, p, R = (int(t) for t in tokens[:4])
    except ValueError:
        raise TextFormatError(f"{where}: header {' '.join(tokens[:4])!r} is not 'n1 n2 n3 rank'") from None
    if min(n, m, p) < 1 or R < 0:
        raise TextFormatError(f"{where}: header {n} {m} {p} {R} is not a shape and a rank")
    sizes = [R * n * m, R * m * p, R * p * n]
    body = tokens[4:]
    if len(body) == sum(sizes):
        vals = [_exact(t, where) for t in body]
    elif len(body) == 2 * sum(sizes):
        vals = [_exact(a, where) / _exact(b, where) if _exact(b, where) else None for a, b in zip(body[::2], body[1::2])]
        if any(v is None for v in vals):
            raise TextFormatError(f"{where}: zero denominator")
    else:
        raise TextFormatError(f"{where}: {len(body)} coefficients do not fit <{n},{m},{p}> rank {R} "
                              f"(want {sum(sizes)} integers or {2 * sum(sizes)} for numerator/denominator pairs)")
    u = np.array(vals[:sizes[0]], dtype=object).reshape(R, n * m).T
    v = np.array(vals[sizes[0]:sizes[0] + sizes[1]], dtype=object).reshape(R, m * p).T
    w = np.array(vals[sizes[0] + sizes[1]:], dtype=object).reshape(R, p * n).T
    # their w is indexed j·n1+i (the transposed product); ours W[i·p+j] = w[j·n+i]
    W = w.reshape(p, n, R).transpose(1, 0, 2).reshape(n * p, R)
    try:
        return Factorization((n, m, p), to_exact(u), to_exact(v), to_exact(W), name=Path(where).stem,
                             provenance=Provenance(notes=f"read from flip-graph scheme {Path(where).name}"))
    except FactorizationError as e:
        raise TextFormatError(f"{where}: {e}") from None


def to_flip_graph(f: Factorization) -> str:
    f.require_real()
    n, m, p = f.shape
    R = f.rank
    w = np.asarray(f.W).reshape(n, p, R).transpose(1, 0, 2).reshape(p * n, R)
    integral = f.is_integral

    def cell(x) -> str:
        q = Fraction(x)
        return str(q.numerator) if integral else f"{q.numerator} {q.denominator}"

    out = [f"{n} {m} {p} {R}"]
    for a in (f.U, f.V, w):
        out += [" ".join(cell(x) for x in col) for col in np.asarray(a).T.tolist()]
    return "\n".join(out) + "\n"


# -- FMM catalogue (fmm.univ-lille.fr) Maple tensor -----------------------------------------------
# ``Tensor:=TriadSet([Triad([Matrix(n, m, [[..],..]), Matrix(m, p, [..]), Matrix(p, n, [..])]), ...]):``
# One Triad per product: the a- and b-coefficients as n×m and m×p matrices, the c-coefficients as a
# p×n matrix (the transposed product again): W[i·p+k] = third[k][i]. Entries are integers or p/q.
_MATRIX = re.compile(r"Matrix\(\s*(\d+)\s*,\s*(\d+)\s*,\s*\[(.*?)\]\s*\)", re.S)


def _maple_matrix(hit: re.Match, where: str) -> list[list[Fraction]]:
    rows, cols = int(hit.group(1)), int(hit.group(2))
    body = re.findall(r"\[([^\[\]]*)\]", hit.group(3) + "]")
    data = [[_exact(t.strip(), where) for t in r.split(",")] for r in body]
    if len(data) != rows or any(len(r) != cols for r in data):
        raise TextFormatError(f"{where}: a Matrix({rows}, {cols}, ...) does not hold {rows}×{cols} entries")
    return data


def from_fmm_maple(text: str, where: str = "<fmm-maple>") -> Factorization:
    if "TriadSet" not in text:
        raise TextFormatError(f"{where}: no 'TriadSet' (not an FMM catalogue tensor file)")
    mats = [_maple_matrix(h, where) for h in _MATRIX.finditer(text)]
    if not mats or len(mats) % 3:
        raise TextFormatError(f"{where}: {len(mats)} matrices do not make whole Triads")
    n, m, p = len(mats[0]), len(mats[0][0]), len(mats[1][0])
    cols = []
    for r in range(0, len(mats), 3):
        a, b, c = mats[r:r + 3]
        if (len(a), len(a[0]), len(b), len(b[0]), len(c), len(c[0])) != (n, m, m, p, p, n):
            raise TextFormatError(f"{where}: Triad {r // 3 + 1} does not have the shapes of <{n},{m},{p}>")
        cols.append(([x for row in a for x in row], [x for row in b for x in row],
                     [c[k][i] for i in range(n) for k in range(p)]))
    U, V, W = (np.array([c[j] for c in cols], dtype=object).T for j in range(3))
    try:
        return Factorization((n, m, p), to_exact(U), to_exact(V), to_exact(W), name=Path(where).name.split(".")[0],
                             provenance=Provenance(source="fmm.univ-lille.fr catalogue (A. Sedoglavic)",
                                                   notes=f"read from {Path(where).name}"))
    except FactorizationError as e:
        raise TextFormatError(f"{where}: {e}") from None


def to_fmm_maple(f: Factorization) -> str:
    f.require_real()
    n, m, p = f.shape

    def mat(rows: int, cols: int, get) -> str:
        body = ",".join("[" + ",".join(str(Fraction(get(i, j))) for j in range(cols)) + "]" for i in range(rows))
        return f"Matrix({rows}, {cols}, [{body}])"

    U, V, W = (np.asarray(a) for a in (f.U, f.V, f.W))
    triads = [f"Triad([{mat(n, m, lambda i, j: U[i * m + j, r])}, {mat(m, p, lambda i, j: V[i * p + j, r])}, "
              f"{mat(p, n, lambda k, i: W[i * p + k, r])}])" for r in range(f.rank)]
    return "Tensor:=TriadSet([\n" + ",\n".join(triads) + "\n]):\n"
