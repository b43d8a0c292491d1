"""The runtime's view of the compiler's backends: which exist on this device, and how to build one.

The compiler (``compiler.compile``) owns the registry of backends; each backend says which
devices it supports. This module only asks it, so a backend registered later (Triton, CUDA)
shows up in the planner without a change here. Built executors are memoised per plan.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from compiler.factors import Factorization

Executor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _compile_fn():
    try:
        import compiler
    except ImportError:  # pragma: no cover - the compiler package is part of this repo
        return None
    return getattr(compiler, "compile", None)


def _registry() -> dict:
    try:
        from compiler import backends as reg  # type: ignore[attr-defined]
    except ImportError:
        return {}
    for name in ("BACKENDS", "REGISTRY", "registry"):
        table = getattr(reg, name, None)
        if isinstance(table, dict):
            return table
    return {}


def _supports(entry, device: torch.device) -> bool:
    for attr in ("supports", "supports_device", "available"):
        fn = getattr(entry, attr, None)
        if callable(fn):
            try:
                return bool(fn(device))
            except TypeError:
                return bool(fn())
    devices = getattr(entry, "devices", None)
    if devices is not None:
        return device.type in devices
    return device.type == "cpu"


def available(device: torch.device) -> tuple[str, ...]:
    """Compiler backends that can run on ``device`` (empty when the compiler has none yet)."""
    if _compile_fn() is None:
        return ()
    table = _registry()
    if not table:
        return ("torch",)            # the torch backend (BLAS leaves) runs wherever torch does
    return tuple(name for name, entry in table.items() if _supports(entry, device))


def unavailable_reason() -> str | None:
    return None if _compile_fn() is not None else "compiler.compile is not available (compiler issue #3)"


@functools.lru_cache(maxsize=128)
def build(f: Factorization, levels: int, backend: str, schedule: str) -> Executor:
    """A callable (a, b) -> a @ b for 2-D tensors running ``levels`` levels of ``f``."""
    compile_ = _compile_fn()
    if compile_ is None:
        raise RuntimeError(unavailable_reason())
    try:
        return compile_(f, backend=backend, levels=levels, schedule=schedule)
    except TypeError:
        return compile_(f, backend=backend, levels=levels)
