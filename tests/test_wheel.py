"""The built wheel works outside the source tree: every subpackage imports, the templates and the
factor library ship with it, and ``python -m compiler.build`` builds a shipped factor file.

Built without build isolation (setuptools from this environment; CI has no index access to spare)
into a fresh venv that sees this environment's torch (``--system-site-packages``). About a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["compiler", "compiler.algebra", "compiler.ir", "compiler.codegen", "kernels", "fastmm", "search",
               "search.flips", "search.rl", "bench", "templates"]

CHECK = """
import importlib, json, sys
from pathlib import Path
venv = Path(sys.prefix).resolve()
mods = {name: importlib.import_module(name) for name in NAMES}
outside = [n for n, m in mods.items() if venv not in Path(m.__file__).resolve().parents]
from compiler.algebra.library import factors_dir, library_algorithm
from compiler.codegen.backends import entry_points, get_backend
print(json.dumps({"outside": outside, "factors": str(factors_dir()), "strassen": library_algorithm("strassen").rank,
                  "entry_points": entry_points(), "triton": get_backend("triton").name}))
"""


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_wheel_installs_and_builds_outside_the_tree(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # setuptools builds in the source folder (build/, *.egg-info): build from a clean copy instead
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "*.so",
                                                              ".pytest_cache"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(src)], tmp_path, env)
    (wheel,) = wheels.glob("fastmm-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    if not py.exists():
        pytest.skip(f"venv has no bin/python ({sys.platform})")
    _run([py, "-m", "pip", "install", "--no-deps", "--force-reinstall", "-q", str(wheel)], tmp_path, env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = json.loads(_run([py, "-c", f"NAMES = {SUBPACKAGES!r}\n" + CHECK], work, env).strip().splitlines()[-1])
    assert out["outside"] == [], f"imported from outside the venv: {out['outside']}"
    assert Path(out["factors"]).resolve().is_relative_to(venv.resolve()), out["factors"]
    assert out["strassen"] == 7
    assert out["entry_points"] == {"triton": "kernels.triton_backend:BACKEND", "cuda": "kernels.cuda_backend:BACKEND"}
    assert out["triton"] == "triton"
    factor = Path(out["factors"]) / "2x2x2.npz"
    build = _run([py, "-m", "compiler.build", str(factor), "--out", str(work / "gen"), "--json", "--jobs", "1"],
                 work, env)
    row = json.loads(build.strip().splitlines()[-1])
    assert row["rank"] == 7 and all(Path(p).is_file() for p in row["outputs"]), row
