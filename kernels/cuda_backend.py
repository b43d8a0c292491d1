"""Launching the CUDA C kernels that ``compiler.codegen.emit_cuda`` generates, through CuPy, on torch tensors.

``CudaMatmul`` runs the streaming schedule: ``combine_a``/``combine_b`` (generated CUDA C) write the
R operand pairs, the R leaf products run as one batched ``torch.matmul`` (cuBLAS), and
``combine_c`` writes every c-block. Levels nest exactly as in the Triton backend (the level below
multiplies the stacked operands of all R products at once). fp64 is a first-class dtype here.

The source is compiled at run time with ``cupy.RawModule`` (NVRTC), once per (factorization, dtype)
per process. Kernels are launched on torch's current stream on the torch tensors' own memory (CuPy
views through ``__cuda_array_interface__``, no copies; fp16/bf16 travel as int16 views, since the
generated C treats them as raw 16-bit words). CuPy is imported lazily: importing this module needs
neither CuPy nor a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from compiler.codegen.emit_cuda import emit, kernel_names
from compiler.codegen.generated import GeneratedSource
from compiler.algebra.factors import Factorization
from compiler.codegen.backends import Backend, register_backend
from kernels.operands import batched_operands

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
               torch.bfloat16: "bfloat16"}
# 256 threads per block, grid-stride loops capped at 65535 blocks per batch row: element-wise
# kernels reach full bandwidth at this shape on every recent NVIDIA part (the usual CUDA guidance).
THREADS = 256
MAX_BLOCKS = 65535


def nvrtc_options() -> tuple[str, ...]:
    return ("--std=c++17",)


@dataclass(frozen=True)
class CudaOptions:
    levels: int = 1

    def __post_init__(self) -> None:
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")


class CudaLevel:
    """The compiled kernels of one level for one dtype."""

    def __init__(self, f: Factorization, dtype: torch.dtype):
        import cupy  # lazily: only a GPU machine with CuPy gets here
        self.dtype_name = DTYPE_NAMES[dtype]
        self.source: GeneratedSource = emit(f, self.dtype_name)
        self.program = self.source.program
        self.n, self.m, self.p = self.program.shape
        self.rank = self.program.rank
        module = cupy.RawModule(code=self.source.text, options=nvrtc_options())
        self._k = {kind: module.get_function(name) for kind, name in kernel_names(self.program, self.dtype_name).items()}

    def blocks(self, M: int, K: int, N: int) -> tuple[int, int, int]:
        return -(-M // self.n), -(-K // self.m), -(-N // self.p)

    def _launch(self, kind: str, src: torch.Tensor, dst: torch.Tensor, rows: int, cols: int,
                blk_r: int, blk_c: int, strides: tuple[int, int, int], batch: int) -> None:
        import cupy
        import numpy as np
        per_block = blk_r * blk_c
        grid = (max(1, min(MAX_BLOCKS, -(-per_block // THREADS))), batch)
        args = (_cupy_view(src), _cupy_view(dst), *(np.int64(v) for v in (rows, cols, blk_r, blk_c, *strides)))
        with cupy.cuda.Device(src.device.index), \
                cupy.cuda.ExternalStream(torch.cuda.current_stream(src.device).cuda_stream):
            self._k[kind](grid, (THREADS,), args)

    def combine(self, kind: str, x: torch.Tensor, blk_r: int, blk_c: int) -> torch.Tensor:
        B, rows, cols = x.shape
        out = torch.empty((B * self.rank, blk_r, blk_c), dtype=x.dtype, device=x.device)
        self._launch(kind, x, out, rows, cols, blk_r, blk_c, x.stride(), B)
        return out

    def combine_c(self, prods: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        B, rows, cols = c.shape
        _, blk_r, blk_c = prods.shape
        self._launch("combine_c", prods, c, rows, cols, blk_r, blk_c, c.stride(), B)
        return c


def _cupy_view(t: torch.Tensor):
    """A CuPy array on ``t``'s memory (no copy); 16-bit floats as int16 (the C side reads raw words)."""
    import cupy
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    return cupy.asarray(t)


@lru_cache(maxsize=64)
def level_kernels(f: Factorization, dtype: torch.dtype) -> CudaLevel:
    return CudaLevel(f, dtype)


class CudaMatmul:
    """``c = a @ b`` with ``f`` applied ``options.levels`` times: generated CUDA combinations, cuBLAS leaves."""

    def __init__(self, f: Factorization, options: CudaOptions = CudaOptions()):
        f.require_real()
        self.factorization = f
        self.options = options

    def source(self, dtype: torch.dtype = torch.float32) -> GeneratedSource:
        return emit(self.factorization, DTYPE_NAMES[dtype])

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dtype != b.dtype or a.dtype not in DTYPE_NAMES:
            raise TypeError(f"a and b must share a dtype in {tuple(DTYPE_NAMES)}, got {a.dtype}, {b.dtype}")
        if a.device.type != "cuda" or b.device != a.device:
            raise ValueError(f"the CUDA backend needs both operands on one CUDA device, got {a.device}, {b.device}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"inner dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)}")
        batch, a3, b3, done = batched_operands(a, b)
        if done is not None:
            return done
        M, N = a.shape[-2], b.shape[-1]
        level = level_kernels(self.factorization, a.dtype)
        c = torch.empty((a3.shape[0], M, N), dtype=a.dtype, device=a.device)
        return self._level(level, a3, b3, c, self.options.levels).reshape(*batch, M, N)

    def _level(self, lv: CudaLevel, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, depth: int) -> torch.Tensor:
        B, M, K = a.shape
        blk_m, blk_k, blk_n = lv.blocks(M, K, b.shape[2])
        s = lv.combine("combine_a", a, blk_m, blk_k)
        t = lv.combine("combine_b", b, blk_k, blk_n)
        if depth == 1:
            prods = torch.matmul(s, t)  # the leaf: one batched cuBLAS GEMM over all R products
        else:
            prods = self._level(lv, s, t, torch.empty((B * lv.rank, blk_m, blk_n), dtype=a.dtype, device=a.device),
                                depth - 1)
        return lv.combine_c(prods, c)


def cuda_matmul(f: Factorization, **options) -> CudaMatmul:
    return CudaMatmul(f, CudaOptions(**options))


def _emit_files(f: Factorization, levels: int = 1, source: str = "", **_ignored) -> list:
    """The registry's ``emit``: one ``.cu`` file per dtype (levels nest at run time)."""
    return [emit(f, dtype, factor_file=source) for dtype in DTYPE_NAMES.values()]


#: the registry's entry (pyproject ``[project.entry-points."fastmm.backends"]`` points here)
BACKEND = register_backend(Backend(
    "cuda", "generated CUDA C combination kernels compiled with CuPy/NVRTC, cuBLAS leaf products "
            "(streaming schedule); CUDA GPUs",
    _emit_files, cuda_matmul, devices=("cuda",), dtypes=tuple(DTYPE_NAMES.values()), options=()))


__all__ = ["CudaLevel", "CudaMatmul", "CudaOptions", "cuda_matmul", "level_kernels", "nvrtc_options"]
