"""CUDA emitter: one level of a factorization → CUDA C combination kernels for one dtype.

The text comes from ``templates/cuda_module.jinja`` (macros in ``cuda_macros.jinja``), rendered with
the same strict environment as the Triton emitter. A file holds three ``extern "C"`` kernels,
``<name>_<dtype>_combine_a`` / ``_combine_b`` (streaming linear combinations) and ``_combine_c``
(output combination); the leaf products are cuBLAS calls made by the launcher
(``kernels/cuda_backend.py``), which compiles the text at run time with CuPy (NVRTC). The files
need no headers, so they compile unchanged with NVRTC and with ``nvcc -arch=sm_90``.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.codegen.emit_torch import environment
from compiler.codegen.generated import GeneratedSource, source_filename
from compiler.codegen.provenance import fastmm_version, options_text, template_hash
from compiler.algebra.factors import Factorization
from compiler.codegen.gpu_lowering import GpuProgram, lower


@dataclass(frozen=True)
class CudaType:
    """How one torch dtype is stored (``scalar``) and summed (``acc``) in the generated C."""

    name: str
    scalar: str
    acc: str


# fp16 and bf16 travel as raw 16-bit words and are summed in fp32 (one rounding per stored value)
CUDA_TYPES: dict[str, CudaType] = {
    "float32": CudaType("float32", "float", "float"),
    "float64": CudaType("float64", "double", "double"),
    "float16": CudaType("float16", "unsigned short", "float"),
    "bfloat16": CudaType("bfloat16", "unsigned short", "float"),
}


def emit(f: Factorization | GpuProgram, dtype: str = "float32", name: str | None = None,
         factor_file: str = "", cse: bool = True) -> GeneratedSource:
    """Render the CUDA kernels of one level of ``f`` for ``dtype`` (a key of ``CUDA_TYPES``)."""
    if dtype not in CUDA_TYPES:
        raise ValueError(f"dtype must be one of {sorted(CUDA_TYPES)}, got {dtype!r}")
    program = f if isinstance(f, GpuProgram) else lower(f, name, cse=cse, factor_file=factor_file)
    text = environment().get_template("cuda_module.jinja").render(
        p=program, t=CUDA_TYPES[dtype], fastmm_version=fastmm_version(),
        template_hash=template_hash("cuda_module.jinja"), options=options_text({"cse": program.cse, "dtype": dtype}))
    return GeneratedSource(text, source_filename(program.name, text, f"_{dtype}.cu"), "cuda", program)


def kernel_names(program: GpuProgram, dtype: str) -> dict[str, str]:
    """The C names of the kernels in ``emit(program, dtype)``, by kind."""
    return {kind: f"{program.name}_{dtype}_{kind}" for kind in ("combine_a", "combine_b", "combine_c")}
