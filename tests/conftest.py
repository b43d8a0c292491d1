"""Shared fixtures for the default (CPU) test tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The default tier tests decisions, not this machine's speed: no calibration (seconds per dtype,
# and constants that differ from run to run) and no tuning by use (timings) unless a test turns
# them on itself (tests/test_tuning.py, tests/test_calibrate.py); and never the user's own cache.
os.environ.setdefault("FASTMM_CALIBRATE", "0")
os.environ.setdefault("FASTMM_AUTOTUNE", "0")

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo into a folder with shared/ beside it; so does a developer checkout.
ALPHATENSOR_DIR = REPO.parent / "shared" / "data" / "alphatensor"


@pytest.fixture(scope="session")
def alphatensor_dir() -> Path:
    if not (ALPHATENSOR_DIR / "factorizations_r.npz").exists():
        pytest.skip(f"AlphaTensor's factor files not found at {ALPHATENSOR_DIR} (shared/ not beside the repo)")
    return ALPHATENSOR_DIR


@pytest.fixture(scope="session")
def alphatensor_real(alphatensor_dir):
    from compiler.algebra.formats import load
    return load(alphatensor_dir / "factorizations_r.npz")


@pytest.fixture(scope="session")
def alphatensor_mod2(alphatensor_dir):
    from compiler.algebra.formats import load
    return load(alphatensor_dir / "factorizations_f2.npz")
