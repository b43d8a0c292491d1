"""``python -m compiler.verify``: one line per factorization, exit codes 0 / 1 / 2, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np

from compiler import save
from compiler.algebra.library import factors_dir, strassen

REPO = factors_dir().parent


def run(*args: str):
    return subprocess.run([sys.executable, "-m", "compiler.verify", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_library_and_alphatensor_all_valid(alphatensor_dir):
    files = sorted(str(p) for p in factors_dir().glob("*.npz"))
    r = run(*files, str(alphatensor_dir / "factorizations_r.npz"))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert sum(" VALID" in ln for ln in lines) >= 93 + len(files)
    assert not r.stderr


def test_invalid_is_exit_1_with_first_failing_entry(tmp_path):
    f = strassen()
    U = np.array(f.U)
    U[0, 0] += 1
    path = save(tmp_path / "bad.npz", [f.replace(U=U, name="mutant-2x2x2-r7")])
    r = run(str(path))
    assert r.returncode == 1
    assert "INVALID" in r.stdout and "T[0," in r.stdout and "mutant-2x2x2-r7" in r.stdout


def test_unreadable_is_exit_2_one_line(tmp_path):
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    r = run(str(tmp_path / "missing.npz"), str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2


def test_mod2_scheme_presented_as_real(alphatensor_dir, tmp_path):
    # A mod-2 file renamed so it looks like a real one: reported INVALID and explained.
    disguised = tmp_path / "factorizations_real.npz"
    shutil.copy(alphatensor_dir / "factorizations_f2.npz", disguised)
    r = run(str(disguised))
    assert r.returncode == 1
    line = next(ln for ln in r.stdout.splitlines() if "4x4x4-r47" in ln)
    assert "INVALID" in line and "valid only modulo 2" in line
