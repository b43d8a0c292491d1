"""The one registry of code-generation backends.

A ``Backend`` says what it is (``name``, ``description``, ``devices``, ``dtypes``, the keyword
``options`` and the ``schedules`` it accepts, the first being its default, how it compiles
alternative-basis algorithms (``make_altbasis``, None if it does not; ``alt_bases``), the ``tiles``
(``compiler.codegen.tiles.TileConfig``) its generated leaf kernels accept, and, per schedule, the
``traffic`` its linear combinations move, which is what the runtime's cost model prices) and how to
``emit(f, levels=..., **options) -> list[GeneratedSource]`` and, optionally, how to
``make_callable(f, levels=..., **options)``, returning ``(a, b) -> a @ b``.

The declaration is the whole contract: the planner builds only plans a backend declares (schedule,
tile, dtype, device, alternative basis) and the cost model reads its backend-specific terms from ``traffic``, so a
new backend or schedule needs nothing beyond its entry here.

Public API: ``Backend``, ``CombinationTraffic``, ``register_backend(backend)``, ``get_backend(name)``, ``backend_names()``,
``registered_names()``, ``BackendNotImplemented``.

The compiler holds only the registry. The torch backend is registered by
``compiler.codegen.pipeline``; the Triton and CUDA backends live in ``kernels`` and register
themselves from there: through the ``fastmm.backends`` entry points of the installed package
(``name = "module:BACKEND"``, loaded by ``get_backend`` on first use), and at import of their
modules (``fastmm`` imports ``kernels``). In a source checkout whose installed metadata lacks the
entry points, the same table is read from the checkout's ``pyproject.toml``. A name that no one
registers raises ``BackendNotImplemented`` with a one-line reason instead of guessing.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ENTRY_POINT_GROUP = "fastmm.backends"


class BackendNotImplemented(NotImplementedError):
    """A backend that is known by name but not available here."""


@dataclass(frozen=True)
class CombinationTraffic:
    """The share of a schedule's linear-combination memory traffic that really goes through memory.

    The cost model counts, per level, the blocks a materialized schedule reads and writes: the
    a-side and b-side operand sums and the c-side output sums. A schedule that forms the operand
    sums inside its leaf kernel's loads pays ``a = b = 0`` at the bottom level; one that adds the
    products into the c-blocks in the leaf's epilogue pays ``c = 0`` there; ``upper`` scales the
    levels above the bottom one. 1.0 everywhere is the materialized schedule.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 1.0
    upper: float = 1.0


MATERIALIZED_TRAFFIC = CombinationTraffic()


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    emit: Callable[..., list[Any]]
    make_callable: Callable[..., Callable] | None = None
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())  # keyword options emit/make_callable accept
    # the values ``schedule=`` accepts, the first being the default; empty: no schedule option
    schedules: tuple[str, ...] = ()
    # the tile configurations its generated leaf kernels accept (``TileConfig``), the first being
    # the default; empty: leaves are library calls and take no tile (a plan then carries None)
    tiles: tuple[Any, ...] = ()
    # per schedule, the combination traffic it pays (``CombinationTraffic``); absent: materialized
    traffic: dict[str, CombinationTraffic] = field(default_factory=dict)
    # how it compiles an alternative-basis algorithm, ``make_altbasis(alt, levels=..., **options)``
    # -> ``(a, b) -> a @ b`` (the transforms, the sparse core with the same ``schedules``, ``options``
    # and ``traffic``, the inverse transform); None: it compiles only the standard basis
    make_altbasis: Callable[..., Callable] | None = None

    @property
    def alt_bases(self) -> bool:
        """Whether it compiles alternative-basis algorithms (``compiler.compile(f, basis=...)``)."""
        return self.make_altbasis is not None

    def traffic_of(self, schedule: str) -> CombinationTraffic:
        return self.traffic.get(schedule, MATERIALIZED_TRAFFIC)


_REGISTRY: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add (or replace) a backend under ``backend.name``."""
    _REGISTRY[backend.name] = backend
    return backend


@functools.lru_cache(maxsize=1)
def entry_points() -> dict[str, str]:
    """``{name: "module:attribute"}`` of the declared backends (installed metadata, else pyproject.toml)."""
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if found:
        return found
    # a source checkout without (current) install metadata: the repository root is two levels above
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        table = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {})
        return dict(table.get(ENTRY_POINT_GROUP, {}))
    return {}


def registered_names() -> tuple[str, ...]:
    """Backends registered in this process so far (loads nothing)."""
    return tuple(_REGISTRY)


def backend_names() -> tuple[str, ...]:
    """Registered backends, then those declared by entry points but not loaded yet."""
    return tuple(dict.fromkeys(tuple(_REGISTRY) + tuple(entry_points())))


def _load(name: str, value: str) -> None:
    module, _, attr = value.partition(":")
    obj = importlib.import_module(module)      # the module may register itself at import
    if attr:
        for part in attr.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, Backend):
            register_backend(obj)


def get_backend(name: str) -> Backend:
    if name in _REGISTRY:
        return _REGISTRY[name]
    declared = entry_points()
    if name not in declared:
        raise BackendNotImplemented(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    try:
        _load(name, declared[name])
    except ImportError as e:
        raise BackendNotImplemented(f"the {name} backend ({declared[name]}) cannot be imported here: {e}") from e
    if name not in _REGISTRY:
        raise BackendNotImplemented(f"the {name} backend: {declared[name]} registered nothing under {name!r}")
    return _REGISTRY[name]
