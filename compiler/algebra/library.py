"""The algorithm library: classical fast algorithms written as formulas, and the files in ``factors/``.

Known algorithms are stated here once, in the notation of their papers (1-based block names,
``M3 = (a11 - a21) * (b22 - b12)``, ``c12 = M1 + M4``), turned into exact U, V, W and verified.
``python -m compiler.algebra.library factors/`` regenerates the library files; the files are the data
that every other tool reads (``compiler.load``). ``library_algorithm("strassen")`` finds an
algorithm by its short name; ``BEST_KNOWN`` (in ``compiler.algebra.records``) says how far from the
record a rank is.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from fractions import Fraction
from pathlib import Path

import numpy as np

from compiler.algebra.constructions import direct_sum, kron
from compiler.algebra.factors import Factorization, FactorizationError, Provenance, naive
from compiler.algebra.formats import load, save

_TERM = re.compile(r"\s*([+-]?)\s*(?:(\d+(?:/\d+)?)\s*\*?\s*)?([abcmM])(\d+)\s*")


def _parse_combination(expr: str, letter: str, n_cols: int) -> dict[int, Fraction]:
    """'a11 - a21 + 2*a13' → {row-major index: coefficient}; ``n_cols`` is the grid's width."""
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1]
    out: dict[int, Fraction] = {}
    pos = 0
    while pos < len(expr):
        mt = _TERM.match(expr, pos)
        if not mt or mt.end() == pos:
            raise FactorizationError(f"cannot parse {expr!r} at {expr[pos:]!r}")
        sign, coef, let, idx = mt.groups()
        if let.lower() != letter:
            raise FactorizationError(f"expected {letter}-terms in {expr!r}")
        c = Fraction(coef or 1) * (-1 if sign == "-" else 1)
        if letter == "m":
            key = int(idx) - 1
        else:
            if len(idx) != 2:
                raise FactorizationError(f"block names are two digits (a12), got {letter}{idx}")
            key = (int(idx[0]) - 1) * n_cols + int(idx[1]) - 1
        out[key] = out.get(key, Fraction(0)) + c
        pos = mt.end()
    return out


def _split_product(prod: str) -> tuple[str, str]:
    """'(a11 + a22) * (b11 + b22)' → the a-side and the b-side, split at the top-level '*'."""
    depth = 0
    for pos, ch in enumerate(prod):
        depth += (ch == "(") - (ch == ")")
        if ch == "*" and depth == 0 and prod[pos + 1:].lstrip()[:1] in ("(", "b"):
            return prod[:pos], prod[pos + 1:]
    raise FactorizationError(f"cannot split {prod!r} into (a-combination) * (b-combination)")


def from_formulas(shape: tuple[int, int, int], products: list[str], outputs: dict[str, str],
                  name: str, provenance: Provenance) -> Factorization:
    """Build U, V, W from ``products`` ('(a11 + a22) * (b11 + b22)') and ``outputs`` ({'c11': 'M1 + M4'})."""
    n, m, p = shape
    R = len(products)
    U = np.zeros((n * m, R), dtype=object)
    V = np.zeros((m * p, R), dtype=object)
    W = np.zeros((n * p, R), dtype=object)
    for r, prod in enumerate(products):
        left, right = _split_product(prod)
        for k, c in _parse_combination(left, "a", m).items():
            U[k, r] += c
        for k, c in _parse_combination(right, "b", p).items():
            V[k, r] += c
    for cname, expr in outputs.items():
        i, k = int(cname[1]) - 1, int(cname[2]) - 1
        for r, c in _parse_combination(expr, "m", 0).items():
            W[i * p + k, r] += c
    return Factorization(shape, U, V, W, "Q", name, provenance).require_valid()


def strassen() -> Factorization:
    return from_formulas(
        (2, 2, 2),
        ["(a11 + a22) * (b11 + b22)", "(a21 + a22) * b11", "a11 * (b12 - b22)", "a22 * (b21 - b11)",
         "(a11 + a12) * b22", "(a21 - a11) * (b11 + b12)", "(a12 - a22) * (b21 + b22)"],
        {"c11": "M1 + M4 - M5 + M7", "c12": "M3 + M5", "c21": "M2 + M4", "c22": "M1 - M2 + M3 + M6"},
        "strassen-2x2x2-r7",
        Provenance(source="V. Strassen, Gaussian elimination is not optimal, Numer. Math. 13 (1969)",
                   found_by="Volker Strassen", method="by hand", date="1969"))


def winograd() -> Factorization:
    # Winograd's variant: s1 = a21 + a22, s2 = s1 - a11, s3 = a11 - a21, s4 = a12 - s2,
    # t1 = b12 - b11, t2 = b22 - t1, t3 = b22 - b12, t4 = t2 - b21, expanded into the products.
    return from_formulas(
        (2, 2, 2),
        ["a11 * b11", "a12 * b21", "(a11 + a12 - a21 - a22) * b22", "a22 * (b11 - b12 - b21 + b22)",
         "(a21 + a22) * (b12 - b11)", "(a21 + a22 - a11) * (b11 - b12 + b22)", "(a11 - a21) * (b22 - b12)"],
        {"c11": "M1 + M2", "c12": "M1 + M6 + M5 + M3", "c21": "M1 + M6 + M7 - M4", "c22": "M1 + M6 + M7 + M5"},
        "winograd-2x2x2-r7",
        Provenance(source="S. Winograd, On multiplication of 2x2 matrices, Linear Algebra Appl. 4 (1971)",
                   found_by="Shmuel Winograd", method="by hand", date="1971",
                   notes="15 additions with common subexpressions shared"))


def laderman() -> Factorization:
    return from_formulas(
        (3, 3, 3),
        ["(a11 + a12 + a13 - a21 - a22 - a32 - a33) * b22",
         "(a11 - a21) * (b22 - b12)",
         "a22 * (b12 + b21 + b33 - b11 - b22 - b23 - b31)",
         "(a21 + a22 - a11) * (b11 - b12 + b22)",
         "(a21 + a22) * (b12 - b11)",
         "a11 * b11",
         "(a31 + a32 - a11) * (b11 - b13 + b23)",
         "(a31 - a11) * (b13 - b23)",
         "(a31 + a32) * (b13 - b11)",
         "(a11 + a12 + a13 - a22 - a23 - a31 - a32) * b23",
         "a32 * (b13 + b21 + b32 - b11 - b22 - b23 - b31)",
         "(a32 + a33 - a13) * (b22 + b31 - b32)",
         "(a13 - a33) * (b22 - b32)",
         "a13 * b31",
         "(a32 + a33) * (b32 - b31)",
         "(a22 + a23 - a13) * (b23 + b31 - b33)",
         "(a13 - a23) * (b23 - b33)",
         "(a22 + a23) * (b33 - b31)",
         "a12 * b21",
         "a23 * b32",
         "a21 * b13",
         "a31 * b12",
         "a33 * b33"],
        {"c11": "M6 + M14 + M19",
         "c12": "M1 + M4 + M5 + M6 + M12 + M14 + M15",
         "c13": "M6 + M7 + M9 + M10 + M14 + M16 + M18",
         "c21": "M2 + M3 + M4 + M6 + M14 + M16 + M17",
         "c22": "M2 + M4 + M5 + M6 + M20",
         "c23": "M14 + M16 + M17 + M18 + M21",
         "c31": "M6 + M7 + M8 + M11 + M12 + M13 + M14",
         "c32": "M12 + M13 + M14 + M15 + M22",
         "c33": "M6 + M7 + M8 + M9 + M23"},
        "laderman-3x3x3-r23",
        Provenance(source="J. D. Laderman, A noncommutative algorithm for multiplying 3x3 matrices using "
                          "23 multiplications, Bull. AMS 82 (1976)",
                   found_by="Julian D. Laderman", method="by hand", date="1976"))


def _named(f: Factorization, name: str, how: str) -> Factorization:
    return f.replace(name=name, provenance=Provenance(source=f.provenance.source, method=how,
                                                      found_by="fastmm library (construction)"))


def library() -> dict[str, list[Factorization]]:
    """The library files: file stem → factorizations (all exactly verified)."""
    s, w, lad = strassen(), winograd(), laderman()
    n221 = naive(2, 2, 1)
    f223 = _named(direct_sum(s, n221, "p"), "strassen+naive-2x2x3-r11", "direct sum <2,2,2;7>⊕<2,2,1;4> along p")
    f224 = _named(direct_sum(s, s, "p"), "strassen2-2x2x4-r14", "direct sum <2,2,2;7>⊕<2,2,2;7> along p")
    f336 = _named(direct_sum(lad, lad, "p"), "laderman2-3x3x6-r46", "direct sum <3,3,3;23>⊕<3,3,3;23> along p")
    ss = _named(kron(s, s), "strassen^2-4x4x4-r49", "Kronecker product strassen ⊗ strassen (two levels)")
    ww = _named(kron(w, w), "winograd^2-4x4x4-r49", "Kronecker product winograd ⊗ winograd (two levels)")
    out = {
        "2x2x2": [naive(2, 2, 2), s, w],
        "3x3x3": [naive(3, 3, 3), lad],
        "4x4x4": [ww, ss, naive(4, 4, 4)],
        "2x2x3": [f223],
        "2x2x4": [f224],
        "3x3x6": [f336],
    }
    for fs in out.values():
        for f in fs:
            f.require_valid()
    return out


# short names users type: fastmm.matmul(a, b, algorithm="strassen")
ALIASES = {
    "naive": "naive-2x2x2-r8",
    "strassen": "strassen-2x2x2-r7",
    "winograd": "winograd-2x2x2-r7",
    "laderman": "laderman-3x3x3-r23",
    "4x4x4": "winograd^2-4x4x4-r49",
    "winograd2": "winograd^2-4x4x4-r49",
    "strassen2": "strassen^2-4x4x4-r49",
}


def factors_dir() -> Path:
    """The library folder: ``factors/`` beside the packages (source checkout or installed data)."""
    here = Path(__file__).resolve().parents[2] / "factors"
    if here.is_dir():
        return here
    return Path(sysconfig.get_paths()["data"]) / "share" / "fastmm" / "factors"


def library_algorithm(name: str) -> Factorization:
    """A library algorithm by short name ('strassen'), full name, or shape ('3x3x3': the lowest rank)."""
    key = ALIASES.get(name.lower(), name)
    d = factors_dir()
    files = sorted(d.glob("*.npz"))
    for path in files:
        for f in load(path):
            if f.name == key:
                return f
    if (d / f"{name}.npz").exists():
        return min(load(d / f"{name}.npz"), key=lambda f: f.rank)
    known = sorted(set(ALIASES) | {f.name for p in files for f in load(p)})
    raise FactorizationError(f"no library algorithm named {name!r}; known: {', '.join(known)}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else factors_dir())
    out.mkdir(parents=True, exist_ok=True)
    for stem, fs in library().items():
        save(out / f"{stem}.npz", fs)
        print(f"{out / (stem + '.npz')}: " + ", ".join(f"{f.name} (rank {f.rank})" for f in fs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
