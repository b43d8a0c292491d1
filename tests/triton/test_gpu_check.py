"""bench/gpu_check.sh and bench/gpu_sweep.py are ready before any GPU time is spent on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import gpu_sweep  # noqa: E402


def test_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "bench" / "gpu_check.sh")], check=True)


def test_sweep_plan_covers_the_issue():
    rows = gpu_sweep.plan(gpu_sweep.SQUARE)
    modes = {m.name for m, _, _ in rows}
    assert modes == {"fp32", "tf32", "bf16", "fp64"}
    squares = {s[0] for _, s, _ in rows if s[0] == s[1] == s[2]}
    assert squares == {2048, 4096, 8192, 16384}
    assert any(len(set(s)) > 1 for _, s, _ in rows)  # rectangular shapes too
    assert {v.backend for _, _, v in rows} == {"triton", "cuda", "torch"}
    assert {v.schedule for _, _, v in rows if v.backend == "triton"} == {"streaming", "fused_operands", "fused"}
    assert {v.levels for _, _, v in rows} == {1, 2}
    # Triton's fp64 tl.dot is not what fp64 should be measured with: only cuBLAS-leaf schedules there
    assert all(v.schedule in gpu_sweep.FP64_SCHEDULES for m, _, v in rows if m.dtype == "float64")
    # the headline size comes first in every mode, so a budget that runs out keeps it
    first = {}
    for m, s, _ in rows:
        first.setdefault(m.name, s)
    assert all(s == (16384, 16384, 16384) for s in first.values())


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path):
    """Without a GPU the script says so, checks its inputs, writes DRY_RUN and the plan, exits 0."""
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would run the real sweep, not the dry run")
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no CUDA GPU on this machine: DRY RUN" in proc.stdout
    assert "checks: all passed" in (tmp_path / "DRY_RUN").read_text()
    assert len((tmp_path / "gpu_sweep_plan.csv").read_text().splitlines()) > 100
