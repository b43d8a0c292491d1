"""``compiler.compile``: factorization (or factor file) → a callable ``(a, b) -> a @ b``.

Public API:

- ``compile(algorithm, backend="torch", levels=1, cutoff=128, schedule="materialized", name=None)``
  where ``algorithm`` is a ``Factorization``, a library name (``"strassen"``), or a path to any
  file ``compiler.load`` reads (``name`` picks one entry; AlphaTensor keys such as ``"4,4,4"`` work).
  For the torch backend the callable is ``matmul`` of the very module text the CLI writes
  (``compiler.codegen.emit_torch.emit``); it also carries ``.module``, ``.source`` and ``.factorization``.
- ``compile(..., basis=AltBasis | "auto")``: the alternative-basis algorithm instead (torch backend;
  ``compile_altbasis(alt, levels, cutoff, schedule, cse)``, ``compiler.codegen.emit_altbasis``); only
  backends that declare ``alt_bases`` (the torch backend).
- ``resolve(algorithm, name=None) -> Factorization``.

Compiled modules are cached in-process per (factorization object, options), so the runtime can call
``compile`` freely; the factorization is verified exactly once, before its first compilation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from compiler.algebra.factors import Factorization, FactorizationError
from compiler.algebra.formats import load
from compiler.algebra.library import library_algorithm
from compiler.codegen.backends import (Backend, BackendNotImplemented, CombinationTraffic, get_backend, register_backend,
                                      registered_names)
from compiler.codegen.emit_torch import TorchConfig, emit, prepare
from compiler.codegen.emit_torch import load as load_module
from compiler.ir.cse import DEFAULT_RESTARTS
from compiler.ir.schedule import KINDS


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
    return library_algorithm(str(algorithm))


# (id(f), schedule, cse, restarts) -> (f, prepared); f is kept so that its id stays valid. Keyed by
# id, not by f: hashing a Factorization computes its digest, seconds for AlphaTensor's largest.
_PREPARED: dict[tuple, tuple] = {}
_MODULES: dict[tuple, tuple] = {}


def _prepared(f: Factorization, schedule: str, cse: bool, restarts: int):
    key = (id(f), schedule, cse, restarts)
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not f:
        f.require_real().require_valid()
        hit = (f, prepare(f, TorchConfig(schedule=schedule, cse=cse, restarts=restarts)))
        _PREPARED[key] = hit
    return hit[1]


def _torch_module(f: Factorization, cutoff: int, schedule: str, cse: bool, restarts: int, levels: int):
    key = (id(f), cutoff, schedule, cse, restarts, levels)
    hit = _MODULES.get(key)
    if hit is None or hit[0] is not f:
        config = TorchConfig(levels=levels, cutoff=cutoff, schedule=schedule, cse=cse, restarts=restarts)
        gen = emit(f, config, prepared=_prepared(f, schedule, cse, restarts))
        hit = (f, load_module(gen), gen)
        _MODULES[key] = hit
    return hit[1], hit[2]


def compile_torch(f: Factorization, levels: int = 1, cutoff: int = 128, schedule: str = "materialized",
                  cse: bool = True, restarts: int | None = None) -> Callable:
    f.require_real()
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


def compile_altbasis(alt, levels: int = 1, cutoff: int = 128, schedule: str = "materialized",
                     cse: bool = True) -> Callable:
    """A callable ``(a, b) -> a @ b`` running the alternative-basis algorithm ``alt`` (an ``AltBasis``)
    on the torch backend: transforms, sparse core and inverse transform at ``levels`` levels
    (``compiler.codegen.emit_altbasis``; cached per ``alt`` object and options)."""
    from compiler.codegen.emit_altbasis import build_altbasis
    return build_altbasis(alt, levels=levels, schedule=schedule, cutoff=cutoff, cse=cse)


def compile(algorithm, backend: str = "torch", levels: int = 1, name: str | None = None, basis=None,
            **options) -> Callable:
    """A callable ``(a, b) -> a @ b`` running ``algorithm`` on ``backend`` (see module docstring).

    ``basis``: None (the standard basis, the default), an ``AltBasis`` of ``algorithm``, or
    ``"auto"`` (the sparsest found, ``compiler.algebra.altbasis.sparsify``): the alternative-basis
    module, built by the backend's ``make_altbasis`` (the torch backend's is ``compile_altbasis``)."""
    f = resolve(algorithm, name)
    f.require_real()
    if basis is not None:
        from compiler.algebra.altbasis import AltBasis, sparsify
        if not get_backend(backend).alt_bases:
            raise BackendNotImplemented(f"the {backend} backend does not compile alternative bases (Backend.make_altbasis); "
                                        f"they are emitted for: {', '.join(n for n in registered_names() if get_backend(n).alt_bases)}")
        alt = sparsify(f) if isinstance(basis, str) and basis == "auto" else basis
        if not isinstance(alt, AltBasis):
            raise TypeError(f"basis must be None, an AltBasis or 'auto', got {basis!r}")
        if alt.algorithm != f:
            raise FactorizationError(f"the alternative basis {alt.name} is not one of {f.label()}")
        return get_backend(backend).make_altbasis(alt, levels=levels, **options)
    be = get_backend(backend)
    if be.make_callable is None:
        raise BackendNotImplemented(f"the {backend} backend emits files but gives no callable")
    return be.make_callable(f, levels=levels, **options)


# -- the torch backend (registered here: it needs the pipeline above, and the registry needs nothing) --
def _torch_emit(f: Factorization, levels: int = 1, source: str = "", prepared=None, **options) -> list:
    return [emit(f, TorchConfig(levels=levels, **options), source, prepared)]


register_backend(Backend(
    "torch", "Python module of torch calls: BLAS/cuBLAS leaves (baddbmm), dynamic peeling, any device",
    _torch_emit, compile_torch, devices=("cpu", "cuda"), dtypes=("float32", "float64", "float16", "bfloat16"),
    options=("cutoff", "schedule", "cse", "restarts", "cse_effort"), schedules=KINDS,
    # "fused" reads each source block once and writes each destination once per side, where the
    # materialized passes read two blocks and write one per addition: for Winograd that is 8 of 12
    # blocks on the a and b sides and 11 of 21 on the c side, at every level (structural counts,
    # not timings; tuning by use measures the real plan)
    traffic={"fused": CombinationTraffic(a=8 / 12, b=8 / 12, c=11 / 21, upper=0.6)},
    make_altbasis=compile_altbasis))   # the core is an ordinary schedule of this backend's template
