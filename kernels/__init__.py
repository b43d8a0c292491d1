"""Kernels layer: hand-written Triton/CUDA building blocks and ``kernels/generated/`` (compiler output).

GPU-only modules (triton, cupy) are imported lazily, so ``import kernels`` works without a GPU.
"""
