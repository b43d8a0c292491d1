"""Every factor format in and out: exact round trips, chains, refusals, the convert CLI."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler.algebra.constructions import change_basis, kron
from compiler.algebra.factors import naive
from compiler.algebra.formats import FORMATS, FormatError, detect_format, load, save_as
from compiler.algebra.formats_text import (from_fast_matmul, from_flip_graph, from_fmm_maple, to_fast_matmul,
                                           to_flip_graph, to_fmm_maple)
from compiler.algebra.library import strassen

ROOT = Path(__file__).resolve().parents[1]
ALPHATENSOR = Path("/work/shared/data/alphatensor/factorizations_r.npz")
# the file name that gives each format (AlphaTensor's layout is told from fastmm's npz by name)
NAMES = {"fastmm-npz": "s.npz", "json": "s.json", "alphatensor-npz": "factorizations_r.npz",
         "fast-matmul": "s.fmm", "flip-graph": "s.txt", "fmm-maple": "s.mpl"}


def _dyadic():
    """A real scheme with coefficients 1/2 and 2 (Strassen sandwiched by a dyadic basis change)."""
    X = [[2, 0], [1, 1]]
    return change_basis(strassen(), X, [[1, 1], [0, 1]], [[1, 0], [0, 2]])


def _thirds():
    """Coefficients with denominator 3: no exact decimal and no float64 form."""
    return change_basis(naive(2, 2, 2), [[3, 0], [0, 1]], [[1, 0], [0, 1]], [[1, 0], [0, 1]])


SCHEMES = {
    "strassen": strassen,
    "naive-2x3x4": lambda: naive(2, 3, 4),  # rectangular: catches a transposed W in any format
    "kron-strassen-naive": lambda: kron(strassen(), naive(1, 2, 1)),
    "dyadic": _dyadic,
}


def _same(a, b) -> bool:
    return a.shape == b.shape and all(np.array_equal(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
                                      for x, y in ((a.U, b.U), (a.V, b.V), (a.W, b.W)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_round_trip_every_format_exactly(tmp_path, fmt, scheme):
    f = SCHEMES[scheme]()
    assert f.verify()
    path = save_as(tmp_path / NAMES[fmt], [f])
    assert detect_format(path) == fmt
    (back,) = load(path)
    assert _same(back, f) and back.verify()
    if scheme == "dyadic":
        assert Fraction(1, 2) in back.coefficients()


@pytest.mark.parametrize("fmt", ["fastmm-npz", "json", "flip-graph", "fmm-maple"])
def test_any_rational_round_trips_where_the_format_holds_it(tmp_path, fmt):
    f = _thirds()
    assert Fraction(1, 3) in f.coefficients()
    (back,) = load(save_as(tmp_path / NAMES[fmt], [f]))
    assert _same(back, f)


@pytest.mark.parametrize("fmt,why", [("fast-matmul", "no exact decimal"), ("alphatensor-npz", "dyadic")])
def test_writer_refuses_what_its_format_cannot_hold(tmp_path, fmt, why):
    with pytest.raises(FormatError, match=why):
        save_as(tmp_path / NAMES[fmt], [_thirds()])
    assert not (tmp_path / NAMES[fmt]).exists()


def test_chain_through_all_formats_comes_back(tmp_path):
    f = _dyadic()
    order = ["fast-matmul", "flip-graph", "fmm-maple", "alphatensor-npz", "json", "fastmm-npz", "fast-matmul"]
    cur = f
    for i, fmt in enumerate(order):
        (cur,) = load(save_as(tmp_path / f"{i}_{NAMES[fmt]}", [cur]))
    assert _same(cur, f)


def test_fast_matmul_layout_as_published():
    # hand-written in the layout of arbenson/fast-matmul codegen/algorithms: comment, U # V # W,
    # one row per (row-major) block entry, one column per product; here the classical <1,2,1>.
    text = "# (0, 0, 0) permutation of classical121-2-6\n1 0\n0 1\n#\n1 0\n0 1\n#\n1 1\n"
    f = from_fast_matmul(text, None, "classical121-2-6")
    assert f.shape == (1, 2, 1) and f.rank == 2 and f.verify()
    assert from_fast_matmul(to_fast_matmul(f), None, "x") == f  # our comment line carries the shape


def test_flip_graph_layout_as_published():
    # 'n1 n2 n3 rank', then u, v, w rank-major; w indexed j·n1+i (transposed product).
    # <2,1,1> rank 2: c[i] = a[i]·b, so product r has u = e_r, v = 1, w = e_r.
    f = from_flip_graph("2 1 1 2\n1 0\n0 1\n1\n1\n1 0\n0 1\n")
    assert f.shape == (2, 1, 1) and f.verify()
    # <1,1,2>: w of their product r is at j·n1+i = j, the same for n1 = 1; check a real transpose
    g = naive(2, 1, 2)
    assert from_flip_graph(to_flip_graph(g)) == g
    frac = from_flip_graph("1 1 1 1\n2 1\n1 4\n2 1\n")  # numerator/denominator pairs
    assert frac.verify() and Fraction(1, 4) in frac.coefficients()


def test_fmm_maple_layout_as_published():
    # hand-written in the layout of the fmm.univ-lille.fr tensor files: one Triad per product,
    # c-coefficients as a p×n matrix. <1,1,2> rank 2: c[0,k] = a·b[0,k].
    text = ("Tensor:=TriadSet([\nTriad([Matrix(1, 1, [[1]]), Matrix(1, 2, [[1,0]]), Matrix(2, 1, [[1],[0]])]),\n"
            "Triad([Matrix(1, 1, [[1/2]]), Matrix(1, 2, [[0,2]]), Matrix(2, 1, [[0],[1]])])\n]):\n")
    f = from_fmm_maple(text)
    assert f.shape == (1, 1, 2) and f.verify() and Fraction(1, 2) in f.coefficients()
    g = naive(2, 1, 3)  # the p×n third matrix: a transposed W would fail here
    assert from_fmm_maple(to_fmm_maple(g)) == g


@pytest.mark.parametrize("name,content,match", [
    ("bad.mpl", b"Tensor:=TriadSet([Triad([Matrix(1, 1, [[1]])])]):", "whole Triads"),
    ("bad.npz", b"PK\x03\x04 truncated", "corrupt"),
    ("bad.json", b"{not json", "not valid JSON"),
    ("bad.fmm", b"# x\n1 0\n#\n1\n", "three blocks"),
    ("bad.txt", b"2 2 2 7\n1 0 1\n", "do not fit"),
    ("bad.dat", b"\x00\x01garbage", "unknown factor format"),
    ("bad322-11-50.fmm", b"# c\n1 x\n#\n1\n#\n1\n", "not a number"),
])
def test_corrupt_files_are_refused(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(FormatError, match=match):
        load(p)


def test_invalid_scheme_refused_by_cli(tmp_path):
    f = strassen()
    W = np.array(f.W)
    W[0, 0] += 1
    bad = tmp_path / "bad.txt"
    bad.write_text(to_flip_graph(f.replace(W=W)))
    r = _cli(bad, tmp_path / "out.json")
    assert r.returncode == 1 and "invalid" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "compiler.convert", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_converts_and_reports(tmp_path):
    src = save_as(tmp_path / "lib.json", [strassen(), naive(2, 3, 4)])
    r = _cli(src, tmp_path / "lib.npz")
    assert r.returncode == 0, r.stderr
    assert "rank 7" in r.stdout and "nnz 12/12/12 (36)" in r.stdout
    r = _cli(src, tmp_path / "one.fmm")  # two schemes cannot go into a one-scheme format
    assert r.returncode == 2 and "--key" in r.stderr
    r = _cli(src, tmp_path / "one.out", "--key", "2,3,4", "--format", "flip-graph")
    assert r.returncode == 0, r.stderr
    assert load(tmp_path / "one.out", fmt="flip-graph")[0] == naive(2, 3, 4)
    r = _cli(tmp_path / "missing.npz", tmp_path / "x.json")
    assert r.returncode == 2 and r.stderr.startswith("error:")


@pytest.mark.skipif(not ALPHATENSOR.exists(), reason=f"{ALPHATENSOR} absent (AlphaTensor data is not in the repo)")
def test_real_alphatensor_entry_through_every_format(tmp_path):
    (f,) = load(ALPHATENSOR, name="3,4,5")  # rectangular, so their transposed w is exercised
    assert f.verify()
    r = _cli(ALPHATENSOR, tmp_path / "at.txt", "--key", "3,4,5")  # picks one of the file's many entries
    assert r.returncode == 0, r.stderr
    assert f"rank {f.rank}" in r.stdout and "<3,4,5>" in r.stdout
    (cur,) = load(tmp_path / "at.txt")
    assert _same(cur, f)
    for i, fmt in enumerate(["fast-matmul", "json", "fmm-maple", "alphatensor-npz", "fastmm-npz", "flip-graph"]):
        (cur,) = load(save_as(tmp_path / f"{i}_{NAMES[fmt]}", [cur]))
        assert _same(cur, f)
