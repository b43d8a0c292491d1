"""Kernels layer: hand-written Triton/CUDA building blocks and ``kernels/generated/`` (compiler output).

GPU-only modules (triton, cupy) are imported lazily, so ``import kernels`` works without a GPU.
Importing ``kernels`` registers its Triton and CUDA backends with the compiler's registry
(``compiler.codegen.backends``); the ``fastmm.backends`` entry points do the same for a user of
the compiler alone.
"""

from kernels import cuda_backend, triton_backend  # noqa: F401  (each registers its backend at import)
