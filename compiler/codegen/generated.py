"""The one type of generated source, shared by every backend, and how it reaches the disk.

``GeneratedSource(text, filename, backend, program=None)``: the text of one generated file, a
file name that says what it holds, the backend that wrote it and, for the GPU backends, the
``GpuProgram`` it renders. ``write(folder)`` writes it atomically (a crash never leaves half a
file). ``source_filename(stem, text, suffix)`` keys a name by a hash of the text itself, so two
different sources of one algorithm (CSE on and off, other options) never share a name or a cache
entry.

Public API: ``GeneratedSource``, ``write_atomically(folder, filename, text)``, ``source_filename``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GeneratedSource:
    """A generated source file (see module docstring)."""

    text: str
    filename: str
    backend: str
    program: Any = None  # compiler.codegen.gpu_lowering.GpuProgram for the GPU backends

    def write(self, folder: Path) -> Path:
        """Write atomically into ``folder``."""
        return write_atomically(Path(folder), self.filename, self.text)


def write_atomically(folder: Path, filename: str, text: str) -> Path:
    """Write ``text`` to ``folder/filename`` through a temporary file and a rename."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def source_filename(stem: str, text: str, suffix: str) -> str:
    """``{stem}_{first 12 hex digits of sha256(text)}{suffix}``."""
    return f"{stem}_{hashlib.sha256(text.encode()).hexdigest()[:12]}{suffix}"
