"""Triton emitter: one level of a factorization → a Python module of ``@triton.jit`` kernels.

The text comes from ``templates/triton_module.jinja`` (macros in ``triton_macros.jinja``) rendered
with ``StrictUndefined``; this module only builds the render context (``compiler.codegen.gpu_lowering``)
and names the result. The emitted module holds five kernels: ``<name>_combine_a`` / ``_combine_b``
(streaming linear combinations), ``_combine_c`` (output combination), ``_product_gemm`` (leaf GEMM
with the operand sums in its loads) and ``_fused_gemm`` (operand sums in the loads and w·acc into
every c-block in the epilogue). Launching them is the kernels layer's job
(``kernels/triton_backend.py``); this layer imports no triton.
"""

from __future__ import annotations



from compiler.codegen.emit_torch import environment
from compiler.codegen.generated import GeneratedSource, source_filename
from compiler.codegen.provenance import fastmm_version, options_text, template_hash
from compiler.algebra.factors import Factorization
from compiler.codegen.gpu_lowering import GpuProgram, lower



def emit(f: Factorization | GpuProgram, name: str | None = None, factor_file: str = "",
         cse: bool = True) -> GeneratedSource:
    """Render the Triton module of one level of ``f``; ``name`` overrides the kernel prefix.

    ``factor_file`` (the file ``f`` was read from) goes into the provenance header; ``cse=False``
    writes every combination out in full (no shared temporaries).
    """
    program = f if isinstance(f, GpuProgram) else lower(f, name, cse=cse, factor_file=factor_file)
    text = environment().get_template("triton_module.jinja").render(
        p=program, fastmm_version=fastmm_version(), template_hash=template_hash("triton_module.jinja"),
        options=options_text({"cse": program.cse}))
    compile(text, program.name, "exec")  # the module must at least parse; fail here, not at launch
    return GeneratedSource(text, source_filename(program.name, text, "_triton.py"), "triton", program)
