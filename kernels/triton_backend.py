"""Launching the Triton kernels that ``compiler.codegen.emit_triton`` generates: checks, allocates, launches.

A ``TritonMatmul`` multiplies ``a`` (…, M, K) by ``b`` (…, K, N) with one factorization applied
``levels`` times. Each level splits the operands into its block grid (blocks of ``ceil(M/n)`` rows
and so on; rows and columns past the end read as zero and are never written, so odd sizes need no
padded copies). The bottom level runs one of three schedules:

- ``"streaming"``: ``combine_a`` and ``combine_b`` write the R operand pairs once (each input tile
  read once), the R leaf products run as one batched ``torch.matmul`` (cuBLAS on a GPU), and
  ``combine_c`` reads each product once and writes every c-block;
- ``"fused_operands"``: ``product_gemm`` forms each operand sum inside its K-loop loads (no S/T
  buffers) and writes the products; ``combine_c`` as above;
- ``"fused"``: ``fused_gemm`` does everything: operand sums in the loads, and an epilogue that adds
  ``w·acc`` into every c-block. Each program owns one tile position in all c-blocks and runs the
  products in a fixed order, so the result is deterministic with no atomics.

Levels above the bottom one are *nested*: ``combine_a``/``combine_b`` stack the operands of all R
products along the batch dimension, the level below multiplies the whole stack at once, and
``combine_c`` combines. ``flatten=True`` instead emits the Kronecker power as one larger algorithm
(one level of R^L products); that is only sensible for small R^L (Strassen², 49 products).

Triton is imported lazily (``import kernels.triton_backend`` works without it). On a machine without
a GPU set ``TRITON_INTERPRET=1`` before triton is imported and pass CPU tensors: the same kernels run
in Triton's interpreter (slow; tests keep sizes small).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal

import torch

from compiler.algebra.constructions import kron
from compiler.codegen.emit_triton import emit
from compiler.codegen.generated import GeneratedSource
from compiler.algebra.factors import Factorization
from compiler.codegen.backends import Backend, CombinationTraffic, register_backend
from compiler.codegen.tiles import CombineTile, GemmTile, TileConfig  # the one tile type (shared with the planner)
from kernels.operands import batched_operands
from kernels.timing import median_ms

Schedule = Literal["streaming", "fused_operands", "fused"]
SCHEDULES: tuple[str, ...] = ("streaming", "fused_operands", "fused")
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


# The short list the autotuner times on a GPU (first entry = default, and what the interpreter uses).
# Combination kernels are bandwidth-bound: 32x64 and 64x64 tiles at 4-8 warps are the usual
# choices for element-wise 2-D Triton kernels; the fused GEMM holds n·p accumulators, so its
# tiles must shrink as the c-grid grows (4 accumulators of 64x64 fp32 = 64 KiB of registers).
CANDIDATES: tuple[TileConfig, ...] = (
    TileConfig(CombineTile(32, 64, 4), GemmTile(64, 64, 32, 4, 3)),
    TileConfig(CombineTile(64, 64, 8), GemmTile(128, 64, 32, 8, 3)),
    TileConfig(CombineTile(32, 128, 4), GemmTile(128, 128, 32, 8, 3)),
    TileConfig(CombineTile(16, 128, 4), GemmTile(64, 128, 64, 4, 4)),
    TileConfig(CombineTile(32, 64, 4), GemmTile(32, 32, 32, 4, 2)),
)


@dataclass(frozen=True)
class TritonOptions:
    """How to run: schedule of the bottom level, levels, flattening, TF32, tiles (``None``: autotune)."""

    schedule: Schedule = "streaming"
    levels: int = 1
    flatten: bool = False
    tf32: bool = False
    tiles: TileConfig | None = None
    candidates: tuple[TileConfig, ...] = CANDIDATES

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")


def cache_dir() -> Path:
    """Where generated kernel modules are written before import (Triton's JIT reads their source)."""
    env = os.environ.get("FASTMM_KERNEL_CACHE")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("fastmm")) / "triton"


_MODULES: dict[str, object] = {}


def load_module(source: GeneratedSource, folder: Path | None = None):
    """Write ``source`` (atomically) and import it; one module object per file name per process."""
    hit = _MODULES.get(source.filename)
    if hit is not None:
        return hit
    path = source.write(folder or cache_dir())
    modname = f"fastmm_generated_{Path(source.filename).stem}"
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # Triton's JIT looks the module up while compiling
    spec.loader.exec_module(module)
    _MODULES[source.filename] = module
    return module


def _tl_dtype(dtype: torch.dtype):
    import triton.language as tl
    return {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
            torch.float64: tl.float64}[dtype]


def _acc(dtype: torch.dtype):
    import triton.language as tl
    # fp16/bf16 are summed and accumulated in fp32 (one rounding per stored operand/product);
    # fp64 stays fp64 end to end.
    return tl.float64 if dtype == torch.float64 else tl.float32


@lru_cache(maxsize=64)
def level_kernels(f: Factorization) -> "TritonLevel":
    """The ``TritonLevel`` of ``f``, emitted and imported once per process (emission runs the CSE)."""
    return TritonLevel(f)


class TritonLevel:
    """The kernels of one level (one generated module) and their launchers."""

    def __init__(self, f: Factorization):
        self.source = emit(f)
        self.program = self.source.program
        self.module = load_module(self.source)
        self.n, self.m, self.p = self.program.shape
        self.rank = self.program.rank
        self._k = {kind: getattr(self.module, f"{self.program.name}_{kind}")
                   for kind in ("combine_a", "combine_b", "combine_c", "product_gemm", "fused_gemm")}

    def blocks(self, M: int, K: int, N: int) -> tuple[int, int, int]:
        return -(-M // self.n), -(-K // self.m), -(-N // self.p)

    def combine(self, kind: str, x: torch.Tensor, blk_r: int, blk_c: int, tile: CombineTile) -> torch.Tensor:
        """``combine_a``/``combine_b``: (B, rows, cols) → (B·R, blk_r, blk_c) operand stack."""
        B, rows, cols = x.shape
        out = torch.empty((B * self.rank, blk_r, blk_c), dtype=x.dtype, device=x.device)
        grid = (math.ceil(blk_r / tile.tile_r) * math.ceil(blk_c / tile.tile_c), math.ceil(B / tile.tile_b))
        self._k[kind][grid](x, out, B, rows, cols, blk_r, blk_c, *x.stride(), ACC=_acc(x.dtype),
                            TILE_B=tile.tile_b, TILE_R=tile.tile_r, TILE_C=tile.tile_c, num_warps=tile.num_warps)
        return out

    def combine_c(self, prods: torch.Tensor, c: torch.Tensor, tile: CombineTile) -> torch.Tensor:
        """(B·R, blk_r, blk_c) contiguous products → every c-block of ``c`` (B, rows, cols)."""
        B, rows, cols = c.shape
        _, blk_r, blk_c = prods.shape
        grid = (math.ceil(blk_r / tile.tile_r) * math.ceil(blk_c / tile.tile_c), math.ceil(B / tile.tile_b))
        self._k["combine_c"][grid](prods, c, B, rows, cols, blk_r, blk_c, *c.stride(), ACC=_acc(c.dtype),
                                   TILE_B=tile.tile_b, TILE_R=tile.tile_r, TILE_C=tile.tile_c,
                                   num_warps=tile.num_warps)
        return c

    def gemm(self, kind: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, blocks: tuple[int, int, int],
             tile: GemmTile, tf32: bool) -> torch.Tensor:
        """``product_gemm`` (out: (B·R, blk_m, blk_n) products) or ``fused_gemm`` (out: c (B, M, N))."""
        B, M, K = a.shape
        N = b.shape[2]
        blk_m, blk_k, blk_n = blocks
        tiles = math.ceil(blk_m / tile.block_m) * math.ceil(blk_n / tile.block_n)
        grid = (tiles, self.rank, B) if kind == "product_gemm" else (tiles, B)
        c_strides = out.stride() if kind == "fused_gemm" else (0, 0, 0)
        precision = "tf32" if tf32 and a.dtype == torch.float32 else "ieee"
        self._k[kind][grid](a, b, out, M, N, K, blk_m, blk_n, blk_k, *a.stride(), *b.stride(), *c_strides,
                            DTYPE=_tl_dtype(a.dtype), ACC=_acc(a.dtype), INPUT_PRECISION=precision,
                            BLOCK_M=tile.block_m, BLOCK_N=tile.block_n, BLOCK_K=tile.block_k, GROUP_M=tile.group_m,
                            num_warps=tile.num_warps, num_stages=tile.num_stages)
        return out


class TritonMatmul:
    """``c = a @ b`` with ``f`` applied ``options.levels`` times through generated Triton kernels."""

    def __init__(self, f: Factorization, options: TritonOptions = TritonOptions()):
        f.require_real()
        self.factorization = f
        self.options = options
        if options.flatten and options.levels > 1:
            g = f
            for _ in range(options.levels - 1):
                g = kron(g, f)
            self.level, self.depth = level_kernels(g), 1
        else:
            self.level, self.depth = level_kernels(f), options.levels
        self._tuned: dict[tuple, TileConfig] = {}

    @property
    def source(self) -> GeneratedSource:
        return self.level.source

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dtype != b.dtype or a.dtype not in DTYPES:
            raise TypeError(f"a and b must share a floating dtype in {DTYPES}, got {a.dtype}, {b.dtype}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"inner dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)}")
        if a.device != b.device:
            raise ValueError(f"a and b are on different devices: {a.device}, {b.device}")
        batch, a3, b3, done = batched_operands(a, b)
        if done is not None:
            return done
        M, N = a.shape[-2], b.shape[-1]
        tiles = self.options.tiles or self._autotune(a3, b3)
        return self._run(a3, b3, tiles).reshape(*batch, M, N)

    def _run(self, a3: torch.Tensor, b3: torch.Tensor, tiles: TileConfig) -> torch.Tensor:
        c = torch.empty((a3.shape[0], a3.shape[1], b3.shape[2]), dtype=a3.dtype, device=a3.device)
        return self._level(a3, b3, c, self.depth, tiles)

    def _level(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, depth: int, tiles: TileConfig) -> torch.Tensor:
        lv = self.level
        B, M, K = a.shape
        N = b.shape[2]
        blocks = lv.blocks(M, K, N)
        blk_m, blk_k, blk_n = blocks
        if depth == 1 and self.options.schedule == "fused":
            return lv.gemm("fused_gemm", a, b, c, blocks, tiles.gemm, self.options.tf32)
        if depth == 1 and self.options.schedule == "fused_operands":
            prods = torch.empty((B * lv.rank, blk_m, blk_n), dtype=a.dtype, device=a.device)
            lv.gemm("product_gemm", a, b, prods, blocks, tiles.gemm, self.options.tf32)
            return lv.combine_c(prods, c, tiles.combine)
        s = lv.combine("combine_a", a, blk_m, blk_k, tiles.combine)
        t = lv.combine("combine_b", b, blk_k, blk_n, tiles.combine)
        if depth == 1:
            prods = torch.matmul(s, t)  # the leaf: one batched vendor GEMM over all R products
        else:
            prods = self._level(s, t, torch.empty((B * lv.rank, blk_m, blk_n), dtype=a.dtype, device=a.device),
                                depth - 1, tiles)
        return lv.combine_c(prods, c, tiles.combine)

    def _autotune(self, a3: torch.Tensor, b3: torch.Tensor) -> TileConfig:
        """Time each candidate (failures count as infinitely slow); cache the winner per complete key."""
        cands = self.options.candidates
        if a3.device.type != "cuda" or len(cands) == 1:
            return cands[0]
        key = (torch.cuda.get_device_name(a3.device), torch.__version__, a3.dtype, tuple(a3.shape), tuple(b3.shape),
               a3.stride(), b3.stride(), self.options, torch.backends.cuda.matmul.allow_tf32)
        hit = self._tuned.get(key)
        if hit is not None:
            return hit
        # one warm-up (compiles) and the median of 3: enough to rank tiles that differ by >5 %
        times = [time_cuda(lambda cfg=cfg: self._run(a3, b3, cfg), warmup=1, reps=3) for cfg in cands]
        best = cands[min(range(len(cands)), key=times.__getitem__)]
        if math.isinf(min(times)):
            raise RuntimeError(f"no tile configuration ran for {self.factorization.label()} ({self.options})")
        self._tuned[key] = best
        return best


def time_cuda(fn: Callable[[], object], warmup: int = 2, reps: int = 5) -> float:
    """Median milliseconds of ``fn`` on the current CUDA stream, synchronised; ``inf`` if it raises."""
    try:
        return median_ms(fn, warmup, reps, device="cuda")
    except Exception:  # noqa: BLE001 - a candidate that fails to compile or launch is scored, not fatal
        return math.inf


def triton_matmul(f: Factorization, **options) -> TritonMatmul:
    """Shorthand: ``triton_matmul(strassen, levels=2, schedule="fused")``."""
    return TritonMatmul(f, TritonOptions(**options))


def _emit_files(f: Factorization, levels: int = 1, source: str = "", flatten: bool = False, **_ignored) -> list:
    """The registry's ``emit``: the one generated module the runtime would load (levels nest at run time)."""
    g = f
    if flatten:
        for _ in range(levels - 1):
            g = kron(g, f)
    return [emit(g, factor_file=source)]


#: the registry's entry (pyproject ``[project.entry-points."fastmm.backends"]`` points here)
BACKEND = register_backend(Backend(
    "triton", "generated Triton kernels: streaming combinations, output combination, product GEMM with "
              "operand sums in its loads, fused GEMM with the w*acc epilogue (schedules streaming | "
              "fused_operands | fused); CUDA GPUs, or CPU under TRITON_INTERPRET=1",
    _emit_files, triton_matmul, devices=("cuda", "cpu-interpreter"),
    dtypes=("float32", "float16", "bfloat16", "float64"),
    options=("schedule", "flatten", "tf32", "tiles", "candidates"), schedules=SCHEDULES, tiles=CANDIDATES,
    # the bottom level's operand sums are formed in the GEMM's tile loads ("fused_operands",
    # "fused"), and "fused" adds W[q,r]·acc into the c-blocks in its epilogue: that traffic never
    # goes through memory
    traffic={"fused_operands": CombinationTraffic(a=0.0, b=0.0),
             "fused": CombinationTraffic(a=0.0, b=0.0, c=0.0)}))


__all__ = ["CANDIDATES", "CombineTile", "GemmTile", "SCHEDULES", "TileConfig", "TritonLevel", "TritonMatmul",
           "TritonOptions", "cache_dir", "load_module", "time_cuda", "triton_matmul"]
