"""The runtime's view of the compiler's backends: which can run here, and how to build one.

The compiler owns the one registry of backends (``compiler.codegen.backends``); each entry says which
devices and dtypes it supports. This module only asks it, so any registered backend shows up in the
planner without a change here. ``kernels`` registers the Triton and CUDA backends when imported
(Triton itself is imported only when a kernel is built). Built executors are memoised per plan
(the compiler also caches generated modules).
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import torch

import kernels  # noqa: F401  (registers the Triton and CUDA backends)
from compiler.algebra.factors import Factorization
from compiler.codegen.backends import BackendNotImplemented, CombinationTraffic, get_backend, registered_names
from compiler.codegen.emit_altbasis import stored_altbasis
from compiler.codegen.pipeline import compile as compile_
from fastmm.plans import STANDARD

Executor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    try:
        get_backend("torch")
    except Exception as exc:  # noqa: BLE001 - any failure means: no fast plans, torch.matmul only
        return f"the compiler's torch backend is not available ({type(exc).__name__}: {exc})"
    return None


def _runs_on(be, device_type: str, interpreted: bool) -> bool:
    """``device_type`` in the backend's devices; with ``interpreted``, "cpu-interpreter" (Triton)
    counts as a CPU while ``TRITON_INTERPRET=1`` is set (slow: only when a caller names the
    backend, never among the default candidates of a CPU product)."""
    if device_type in be.devices:
        return True
    return (interpreted and device_type == "cpu" and "cpu-interpreter" in be.devices
            and os.environ.get("TRITON_INTERPRET") == "1")


@functools.lru_cache(maxsize=16)
def available(device_type: str, dtype: torch.dtype, interpreted: bool = False) -> tuple[str, ...]:
    """Names of the compiler backends that can run ``dtype`` products on ``device_type``
    (``interpreted``: also those that run there only in an interpreter, see ``_runs_on``)."""
    if unavailable_reason() is not None:
        return ()
    dname = str(dtype).replace("torch.", "")
    names = []
    for name in registered_names():
        try:
            be = get_backend(name)
        except (BackendNotImplemented, ImportError):
            continue
        if _runs_on(be, device_type, interpreted) and (not be.dtypes or dname in be.dtypes) and be.make_callable:
            names.append(name)
    return tuple(names)


DEFAULT_SCHEDULE = "default"  # the plan label of a backend that takes no schedule option (CUDA)


def schedules(backend: str) -> tuple[str, ...]:
    """The schedules a backend declares (``Backend.schedules``, its default first); a backend that
    takes no schedule option offers one plan, labelled ``DEFAULT_SCHEDULE``."""
    return get_backend(backend).schedules or (DEFAULT_SCHEDULE,)


def tiles(backend: str) -> tuple:
    """The tile configurations a backend declares (``Backend.tiles``); empty: it takes none."""
    return get_backend(backend).tiles


def traffic(backend: str, schedule: str) -> CombinationTraffic:
    """The combination traffic ``backend`` declares for ``schedule`` (what the cost model prices)."""
    return get_backend(backend).traffic_of(schedule)


def alt_bases(backend: str) -> bool:
    """Whether ``backend`` declares that it compiles alternative-basis algorithms (``Backend.make_altbasis``)."""
    return get_backend(backend).alt_bases


def stored_basis(f: Factorization):
    """The stored alternative basis of ``f`` (``factors/altbasis.json``, matched by ``f``'s digest
    and proven once; ``emit_altbasis.stored_altbasis`` remembers the answer), or None."""
    return stored_altbasis(f)


def altbasis(f: Factorization, basis: str):
    """The ``AltBasis`` a plan's ``basis`` (a digest) names for ``f``; ValueError when ``f`` has no
    stored basis or its stored basis is another one (factors/altbasis.json changed)."""
    alt = stored_basis(f)
    if alt is None:
        raise ValueError(f"{f.name or f.label()} has no stored alternative basis (factors/altbasis.json; "
                         "python -m compiler.algebra.altbasis adds one): no alternative-basis plan for it")
    if alt.digest != basis:
        raise ValueError(f"{f.name or f.label()}: the plan's alternative basis {basis[:16]} is not the stored one "
                         f"({alt.digest[:16]}; factors/altbasis.json changed)")
    return alt


@functools.lru_cache(maxsize=128)
def build(f: Factorization, levels: int, backend: str, schedule: str, tf32: bool = False,
          tile=None, basis: str = STANDARD) -> Executor:
    """A callable (a, b) -> a @ b for 2-D or same-batch 3-D tensors running ``levels`` levels of ``f``.

    The plan has already decided how many levels pay, so the compiler's own cutoff is set to 1:
    every level is applied (with dynamic peeling for sizes the block shape does not divide).
    ``tf32``: fp32 products may use TF32 tensor cores (the caller passes torch's current fp32
    precision mode, ``uses_tf32``). The torch backend's leaves are torch.matmul and follow torch's
    setting by themselves; the Triton backend's own ``tl.dot`` is told explicitly. ``tile``: one
    of the backend's declared ``tiles`` (None: its default, or its own autotuner). ``basis``: a
    plan's ``Plan.basis``; an alternative basis (its digest) is compiled through the backend's
    ``make_altbasis`` (``compiler.compile(f, basis=alt)``), with the same schedule and cutoff.
    """
    be = get_backend(backend)
    if schedule not in schedules(backend):
        raise ValueError(f"the {backend} backend has no schedule {schedule!r}; it offers {', '.join(schedules(backend))}")
    if tile is not None and tile not in be.tiles:
        raise ValueError(f"the {backend} backend does not declare the tile {tile.label()}")
    options = {"schedule": schedule} if be.schedules else {}
    if tile is not None:
        options["tiles"] = tile
    if "cutoff" in be.options:
        options["cutoff"] = 1
    if "tf32" in be.options:
        options["tf32"] = tf32
    if basis != STANDARD:
        if not be.alt_bases:
            raise ValueError(f"the {backend} backend does not compile alternative bases (Backend.make_altbasis)")
        return compile_(f, backend=backend, levels=levels, basis=altbasis(f, basis), **options)
    return compile_(f, backend=backend, levels=levels, **options)


def uses_tf32(a: torch.Tensor) -> bool:
    """Whether torch.matmul would run this fp32 CUDA product on TF32 tensor cores right now."""
    return (a.dtype == torch.float32 and a.device.type == "cuda"
            and (torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"))
