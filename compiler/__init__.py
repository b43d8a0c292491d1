"""fastmm's compiler: factorizations (the algebra layer) and, above it, the IR and code generators.

Public entry points of the algebra layer: ``Factorization``, ``load`` (any supported file),
``save``, ``verify`` helpers, ``naive`` and the constructions. Nothing here imports torch,
triton or cupy.
"""

from compiler.constructions import change_basis, cyclic, direct_sum, kron, permute_shape, transpose
from compiler.factors import (Factorization, FactorizationError, Provenance, Verification, matmul_tensor,
                              naive, parse_shape)
from compiler.formats import FormatError, load, save

__all__ = [
    "Factorization", "FactorizationError", "FormatError", "Provenance", "Verification", "change_basis",
    "cyclic", "direct_sum", "kron", "load", "matmul_tensor", "naive", "parse_shape", "permute_shape",
    "save", "transpose",
]
