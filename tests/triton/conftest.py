"""The Triton tier: on a machine without CUDA, run the generated kernels in Triton's interpreter.

``TRITON_INTERPRET`` is read when a kernel is decorated with ``@triton.jit`` (Triton 3.x reads its
knobs lazily), and fastmm's kernels are generated and decorated only when a test asks for them, so
setting the variable here, before any test in this folder runs, is enough even if something imported
triton earlier. With CUDA present the variable is left alone and the same tests run on the GPU.
"""

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> str:
    return "cuda" if HAS_CUDA else "cpu"


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """Generated modules go to a fresh folder per run, not the user's cache."""
    old = os.environ.get("FASTMM_KERNEL_CACHE")
    os.environ["FASTMM_KERNEL_CACHE"] = str(tmp_path_factory.mktemp("triton_kernels"))
    yield
    if old is None:
        os.environ.pop("FASTMM_KERNEL_CACHE", None)
    else:
        os.environ["FASTMM_KERNEL_CACHE"] = old


def pytest_collection_modifyitems(config, items):
    """Tests of this folder marked ``slow`` (minutes each on CPU) run only when asked for: ``-m slow`` or
    ``FASTMM_RUN_SLOW=1``. Only this folder's tests are touched; on a GPU they always run."""
    if HAS_CUDA or "slow" in (config.getoption("-m") or "") or os.environ.get("FASTMM_RUN_SLOW"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    skip = pytest.mark.skip(reason="slow on CPU (minutes): run with -m slow or FASTMM_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(here):
            item.add_marker(skip)
