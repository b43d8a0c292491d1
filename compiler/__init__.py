"""fastmm's compiler: factorizations (the algebra layer) and, above it, the IR and code generators.

Public entry points of the algebra layer: ``Factorization``, ``load`` (any supported file),
``save``, ``verify`` helpers, ``naive`` and the constructions. Nothing here imports torch,
triton or cupy.
"""

from compiler.algebra.constructions import change_basis, cyclic, direct_sum, kron, permute_shape, transpose
from compiler.algebra.factors import (Factorization, FactorizationError, Provenance, Verification, matmul_tensor,
                              naive, parse_shape)
from compiler.algebra.formats import FormatError, load, save

__all__ = [
    "Factorization", "FactorizationError", "FormatError", "Provenance", "Verification", "change_basis",
    "cyclic", "direct_sum", "kron", "load", "matmul_tensor", "naive", "parse_shape", "permute_shape",
    "save", "transpose",
]

# compiler layer: IR, lowering, CSE, schedules, then code generation and ``compile``
from compiler.ir.cse import cse_program  # noqa: E402
from compiler.ir.program import IRError, Node, Program  # noqa: E402
from compiler.ir.lower import lower, lower_levels  # noqa: E402
from compiler.ir.schedule import Schedule, make_schedule  # noqa: E402

__all__ += ["IRError", "Node", "Program", "Schedule", "cse_program", "lower", "lower_levels", "make_schedule"]
from compiler.codegen.backends import Backend, BackendNotImplemented, get_backend, register_backend  # noqa: E402
from compiler.codegen.pipeline import compile, compile_altbasis  # noqa: E402,A001  (compiler.compile(algorithm, ...))

__all__ += ["Backend", "BackendNotImplemented", "compile", "compile_altbasis", "get_backend", "register_backend"]
