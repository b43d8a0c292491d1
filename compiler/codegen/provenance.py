"""What the header of every generated file says about how it was made.

Every backend's header carries, besides the factorization (name, source, sha256): the fastmm
version, a hash of the templates that rendered it, the options it was emitted with and its
addition counts, so that a generated file found on disk says which generator, templates and
options made it. The file names are keyed by a hash of the whole text
(``compiler.codegen.generated.source_filename``), so any of these changing gives a new name.

Public API: ``fastmm_version()``, ``template_hash(name)``, ``options_text(options)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2.meta

# the repository root (a checkout) or site-packages (an installed wheel): fastmm/ sits beside compiler/
_VERSION_FILE = Path(__file__).resolve().parents[2] / "fastmm" / "_version.py"


@lru_cache(maxsize=1)
def fastmm_version() -> str:
    """The version written in ``fastmm/_version.py``, read as text: the compiler layer never imports
    ``fastmm`` (tests/test_import_contract.py). Falls back to the installed metadata, then "unknown"."""
    try:
        found = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', _VERSION_FILE.read_text(), re.M)
        if found:
            return found.group(1)
    except OSError:
        pass
    try:
        return importlib.metadata.version("fastmm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=None)
def template_hash(name: str, env: jinja2.Environment | None = None) -> str:
    """sha256 (first 16 hex digits) of template ``name`` and of every template it imports or
    includes, transitively (the macro files): what a change to any of them changes. Cached per
    process (templates are read once per process, as the environment does)."""
    if env is None:
        from compiler.codegen.emit_torch import environment
        env = environment()
    h = hashlib.sha256()
    for part in _templates_of(env, name):
        source = env.loader.get_source(env, part)[0]
        h.update(f"{part}\0{len(source)}\0".encode())
        h.update(source.encode())
    return h.hexdigest()[:16]


def _templates_of(env: jinja2.Environment, name: str) -> list[str]:
    """``name`` and the templates it references, transitively, each once, sorted."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        part = todo.pop()
        if part in seen:
            continue
        seen.add(part)
        source = env.loader.get_source(env, part)[0]
        todo.extend(ref for ref in jinja2.meta.find_referenced_templates(env.parse(source)) if ref)
    return sorted(seen)


def options_text(options: Any) -> str:
    """``k=v, ...`` of a config dataclass's fields (or a dict), in their order."""
    items = dataclasses.asdict(options).items() if dataclasses.is_dataclass(options) else dict(options).items()
    return ", ".join(f"{k}={v}" for k, v in items)
