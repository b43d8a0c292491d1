"""fastmm runtime: ``fastmm.matmul(a, b)``, a drop-in for ``torch.matmul`` that runs the fastest correct plan.

- ``matmul(a, b, *, algorithm=None, levels=None, backend=None)``: torch.matmul's semantics.
- ``explain(a, b)``: which plan would run, and why.
- ``tune(a, b)``: measure every candidate now and cache the winner.
- ``release_workspaces()``: free the CPU workspaces fast plans keep between calls (``kernels.workspace``;
  bounded by ``FASTMM_WORKSPACE_MB``, default a quarter of the memory, at most 4096 MB).

By default the first large call on a device calibrates the cost model (``fastmm.calibrate``,
``FASTMM_CALIBRATE=0`` turns it off) and the first calls of each new product are tuning by use
(``fastmm.tuning``, ``FASTMM_AUTOTUNE=0`` turns it off). See docs/planner.md.
"""

from fastmm._version import __version__
from fastmm.planner import DEFAULT_CONFIG, PlannerConfig
from fastmm.plans import CombineTile, GemmTile, Plan, TileConfig
from fastmm.runtime import Explanation, TuneResult, explain, matmul, tune
from kernels.workspace import release as release_workspaces

__all__ = ["CombineTile", "DEFAULT_CONFIG", "Explanation", "GemmTile", "Plan", "PlannerConfig", "TileConfig", "TuneResult", "explain",
           "matmul", "release_workspaces", "tune", "__version__"]
