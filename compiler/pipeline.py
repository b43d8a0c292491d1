"""``compiler.compile``: factorization (or factor file) → a callable ``(a, b) -> a @ b``.

Public API:

- ``compile(algorithm, backend="torch", levels=1, cutoff=128, schedule="materialized", name=None)``
  where ``algorithm`` is a ``Factorization``, a library name (``"strassen"``), or a path to any
  file ``compiler.load`` reads (``name`` picks one entry; AlphaTensor keys such as ``"4,4,4"`` work).
  For the torch backend the callable is ``matmul`` of the very module text the CLI writes
  (``compiler.emit_torch.emit``); it also carries ``.module``, ``.source`` and ``.factorization``.
- ``resolve(algorithm, name=None) -> Factorization``.

Compiled modules are cached per (digest, options) in-process, so the runtime can call ``compile``
freely.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

from compiler.factors import Factorization, FactorizationError
from compiler.formats import load


def resolve(algorithm: Factorization | str | os.PathLike, name: str | None = None) -> Factorization:
    """A ``Factorization`` from itself, a file path (+ optional entry name) or a library name."""
    if isinstance(algorithm, Factorization):
        return algorithm
    path = Path(algorithm)
    if path.exists():
        fs = load(path, name) if name else load(path)
        if name is None and len(fs) != 1:
            raise FactorizationError(f"{path} holds {len(fs)} factorizations; pass name= (one of "
                                     f"{', '.join(f.label() for f in fs[:8])}{', ...' if len(fs) > 8 else ''})")
        return fs[0]
    from compiler.library import library_algorithm
    return library_algorithm(str(algorithm))


@lru_cache(maxsize=256)
def _torch_module(f: Factorization, cutoff: int, schedule: str, cse: bool, restarts: int, levels: int):
    from compiler.emit_torch import TorchConfig, emit
    from compiler.emit_torch import load as load_module
    gen = emit(f, TorchConfig(levels=levels, cutoff=cutoff, schedule=schedule, cse=cse, restarts=restarts))
    return load_module(gen), gen


def compile_torch(f: Factorization, levels: int = 1, cutoff: int = 128, schedule: str = "materialized",
                  cse: bool = True, restarts: int | None = None) -> Callable:
    from compiler.cse import DEFAULT_RESTARTS
    f.require_real().require_valid()
    mod, gen = _torch_module(f, cutoff, schedule, cse, DEFAULT_RESTARTS if restarts is None else restarts, levels)

    def matmul(a, b):
        return mod.matmul(a, b, levels=levels, cutoff=cutoff)

    matmul.module = mod
    matmul.source = gen.text
    matmul.filename = gen.filename
    matmul.factorization = f
    matmul.levels, matmul.cutoff, matmul.schedule = levels, cutoff, schedule
    matmul.__name__ = f"fastmm_{gen.filename[:-3]}"
    matmul.__doc__ = f"a @ b by {f.label()} ({levels} level(s), cutoff {cutoff}, {schedule} schedule)"
    return matmul


def compile(algorithm, backend: str = "torch", levels: int = 1, name: str | None = None, **options) -> Callable:
    """A callable ``(a, b) -> a @ b`` running ``algorithm`` on ``backend`` (see module docstring)."""
    from compiler.backends import BackendNotImplemented, get_backend
    f = resolve(algorithm, name)
    f.require_real()
    be = get_backend(backend)
    if be.make_callable is None:
        raise BackendNotImplemented(f"the {backend} backend emits files but gives no callable")
    return be.make_callable(f, levels=levels, **options)
