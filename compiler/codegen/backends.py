"""The one registry of code-generation backends.

A ``Backend`` says what it is (``name``, ``description``, ``devices``, ``dtypes``) and how to
``emit(f, levels=..., **options) -> list[file]`` (objects with ``.filename``, ``.text`` and
``.write(folder) -> Path``) and, optionally, how to ``make_callable(f, levels=..., **options)``,
returning ``(a, b) -> a @ b``.

Public API: ``Backend``, ``register_backend(backend)``, ``get_backend(name)``, ``backend_names()``,
``BackendNotImplemented``.

The torch backend is registered here. Other backends register themselves from their own modules
(issue #4: Triton and CUDA): ``get_backend("triton")`` first imports the modules listed in
``PLUGIN_MODULES["triton"]`` (each may call ``register_backend`` at import); if none registers
the name, it raises ``BackendNotImplemented`` with a one-line reason instead of guessing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from compiler.algebra.factors import Factorization


class BackendNotImplemented(NotImplementedError):
    """A backend that is known by name but not (yet) available here."""


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    emit: Callable[..., list[Any]]
    make_callable: Callable[..., Callable] | None = None
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())  # keyword options emit/make_callable accept


_REGISTRY: dict[str, Backend] = {}

#: modules that register a backend when imported (the GPU backends live in their own files)
PLUGIN_MODULES: dict[str, tuple[str, ...]] = {
    "triton": ("compiler.codegen.emit_triton", "kernels.triton_backend"),
    "cuda": ("compiler.codegen.emit_cuda", "kernels.cuda_backend"),
}
KNOWN = ("torch", "triton", "cuda")


def register_backend(backend: Backend) -> Backend:
    """Add (or replace) a backend under ``backend.name``."""
    _REGISTRY[backend.name] = backend
    return backend


def backend_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys(KNOWN + tuple(_REGISTRY)))


def get_backend(name: str) -> Backend:
    if name in _REGISTRY:
        return _REGISTRY[name]
    errors = []
    for mod in PLUGIN_MODULES.get(name, ()):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            errors.append(f"{mod}: {e}")
        if name in _REGISTRY:
            return _REGISTRY[name]
    if name in PLUGIN_MODULES:
        raise BackendNotImplemented(
            f"the {name} backend is not implemented yet (issue #4 registers it with "
            f"compiler.codegen.backends.register_backend); nothing registered it"
            + (f" ({'; '.join(errors)})" if errors else ""))
    raise BackendNotImplemented(f"unknown backend {name!r}; known: {', '.join(backend_names())}")


# -- the torch backend ------------------------------------------------------------------------------
def _torch_emit(f: Factorization, levels: int = 1, source: str = "", prepared=None, **options) -> list[Any]:
    from compiler.codegen.emit_torch import TorchConfig, emit
    return [emit(f, TorchConfig(levels=levels, **options), source, prepared)]


def _torch_callable(f: Factorization, levels: int = 1, **options) -> Callable:
    from compiler.codegen.pipeline import compile_torch
    return compile_torch(f, levels=levels, **options)


register_backend(Backend(
    "torch", "Python module of torch calls: BLAS/cuBLAS leaves (baddbmm), dynamic peeling, any device",
    _torch_emit, _torch_callable, devices=("cpu", "cuda"), dtypes=("float32", "float64", "float16", "bfloat16"),
    options=("cutoff", "schedule", "cse", "restarts", "cse_effort")))
