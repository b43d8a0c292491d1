"""python -m compiler.build: the table, --json, bad input, mod-2 entries, backends not built yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.build import main

REPO = Path(__file__).resolve().parents[1]
KEYS = {"name", "shape", "rank", "field", "additions_naive", "additions_cse", "stability", "outputs"}


def test_table_for_the_library_file(tmp_path, capsys):
    assert main([str(REPO / "factors" / "2x2x2.npz"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "winograd-2x2x2-r7" in out and "24 → 15" in out  # Winograd: 24 naive, 15 after CSE
    assert "strassen-2x2x2-r7" in out and "18 → 18" in out
    files = sorted(p.name for p in tmp_path.glob("*.py"))
    assert len(files) == 3 and all(f.endswith("_torch_materialized.py") for f in files)


def test_json_lines(tmp_path, capsys):
    assert main([str(REPO / "factors" / "3x3x3.npz"), "--out", str(tmp_path), "--json", "--levels", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"] for r in rows} == {"naive-3x3x3-r27", "laderman-3x3x3-r23"}
    for r in rows:
        assert KEYS <= set(r)
        assert all(Path(o).exists() for o in r["outputs"])
    lad = next(r for r in rows if r["name"].startswith("laderman"))
    assert lad["additions_naive"] == 98 and lad["additions_cse"] <= 70 and lad["stability"] == 35
    assert "LEVELS = 2" in Path(lad["outputs"][0]).read_text()


def test_generated_file_is_importable_and_exact(tmp_path):
    import importlib.util

    import torch
    assert main([str(REPO / "factors" / "2x2x2.npz"), "--only", "strassen-2x2x2-r7", "--out", str(tmp_path)]) == 0
    path = next(tmp_path.glob("strassen*.py"))
    spec = importlib.util.spec_from_file_location("gen_strassen", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a = torch.randint(-3, 4, (9, 10)).double()
    b = torch.randint(-3, 4, (10, 7)).double()
    assert torch.equal(mod.matmul(a, b, levels=2, cutoff=1), a @ b)


@pytest.mark.parametrize("args, message", [
    (["/no/such/file.npz"], "no such file"),
    ([str(REPO / "pyproject.toml")], "error:"),
    ([str(REPO / "factors" / "2x2x2.npz"), "--only", "nothing-here"], "no factorization named"),
    ([str(REPO / "factors" / "2x2x2.npz"), "--backend", "fortran"], "unknown backend"),
    ([str(REPO / "factors" / "2x2x2.npz"), "--levels", "0"], "--levels"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_mod2_entries_are_skipped_with_the_reason(alphatensor_dir, tmp_path, capsys):
    code = main([str(alphatensor_dir / "factorizations_f2.npz"), "--only", "4,4,4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "skipped: valid only modulo 2" in out
    assert not list(tmp_path.iterdir())


def test_a_backend_that_cannot_emit_says_so(tmp_path, capsys, monkeypatch):
    """A registered backend whose emit refuses: exit 1, the reason on stderr, no traceback."""
    from compiler.codegen import backends

    def refuse(f, **_options):
        raise backends.BackendNotImplemented("this backend emits nothing on this machine")

    monkeypatch.setitem(backends._REGISTRY, "refusing", backends.Backend("refusing", "test double", refuse))
    code = main([str(REPO / "factors" / "2x2x2.npz"), "--backend", "refusing", "--out", str(tmp_path),
                 "--json", "--jobs", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "refusing: this backend emits nothing on this machine" in err and "Traceback" not in err


def test_alphatensor_one_entry_by_shape(alphatensor_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "compiler.build", str(alphatensor_dir / "factorizations_r.npz"),
                           "--only", "3,3,3", "--out", str(tmp_path), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["shape"] == [3, 3, 3] and row["rank"] == 23 and row["additions_cse"] < row["additions_naive"]


# Large AlphaTensor entries through the CLI (default CSE effort): the largest of the file and a dense
# one with dyadic coefficients (1/2, 1/8). Each generated module is loaded and checked bit-exactly;
# the whole 93-entry build is timed by bench/bench_torch_backend.py, not here.
LARGE = ["11,12,12", "9,9,9"]


def test_large_alphatensor_entries_build_and_multiply_exactly(alphatensor_dir, tmp_path, capsys):
    import torch

    from compiler.codegen.emit_torch import load as load_module
    from compiler.codegen.generated import GeneratedSource
    for key in LARGE:
        assert main([str(alphatensor_dir / "factorizations_r.npz"), "--only", key, "--out", str(tmp_path),
                     "--json", "--jobs", "1"]) == 0
        row = json.loads(capsys.readouterr().out)
        n, m, p = (int(x) for x in key.split(","))
        assert row["shape"] == [n, m, p] and row["additions_cse"] < row["additions_naive"] / 2
        path = Path(row["outputs"][0])
        mod = load_module(GeneratedSource(path.read_text(), path.name, "torch"), str(path))
        g = torch.Generator().manual_seed(0)
        # entries in [-2, 2]: partial sums stay far below 2**53 even with the 1/8 coefficients
        a = torch.randint(-2, 3, (n + 1, m), generator=g).double()
        b = torch.randint(-2, 3, (m, 2 * p - 1), generator=g).double()
        assert torch.equal(mod.matmul(a, b, levels=1, cutoff=1), a @ b), key


def test_parallel_build_is_the_serial_build(tmp_path, capsys):
    """--jobs only changes who builds: same rows, same order, same files (seeded CSE)."""
    src = str(REPO / "factors" / "3x3x3.npz")
    assert main([src, "--out", str(tmp_path / "one"), "--json", "--jobs", "1"]) == 0
    one = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main([src, "--out", str(tmp_path / "two"), "--json", "--jobs", "2"]) == 0
    two = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    strip = [{k: v for k, v in r.items() if k != "outputs"} for r in one]
    assert strip == [{k: v for k, v in r.items() if k != "outputs"} for r in two]
    for r1, r2 in zip(one, two):
        assert [Path(o).read_text() for o in r1["outputs"]] == [Path(o).read_text() for o in r2["outputs"]]


def test_compare_rational_reports_the_price_of_integral_cse(tmp_path, capsys):
    """--compare-rational adds the rational CSE's count; for Winograd both are 15."""
    assert main([str(REPO / "factors" / "2x2x2.npz"), "--out", str(tmp_path), "--json", "--compare-rational",
                 "--jobs", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    win = next(r for r in rows if r["name"].startswith("winograd"))
    assert win["additions_cse"] == 15 and win["additions_rational"] == 15
