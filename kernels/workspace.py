"""Workspaces kept between calls on CPU: no fresh pages to fault in on every product.

A generated torch module allocates all its workspace once per call, before the recursion
(``_workspace`` in ``templates/torch_module.jinja``). On CPU a large ``torch.empty`` is fresh
memory from the kernel (glibc serves big blocks by ``mmap`` and returns them on free), so every
call first faults in and zeroes every page of it. Measured on a 2-core AVX2 EPYC (torch 2.13):
first touch of 134 MB took 41 ms against 5.7 ms for a second pass over the same memory, and one
Strassen 2-level fused call at 4096³ fp32 faulted in 80 000 pages (≈ 320 MB, ≈ 0.1 s of a 0.92 s
call). BLAS libraries keep their workspace for the same reason (cuBLAS's workspace); so does this
module, on CPU only (CUDA's caching allocator already reuses device memory, stream-ordered).

``for_call(owner, key, build, a, b)`` (what a generated module calls) returns the workspace
``build()`` made for ``(owner, key)`` on an earlier call of the same thread where the call may
reuse one (``reusable``), keeping it if the budget allows (``kept``), and a fresh ``build()``
otherwise. What is kept is bounded:

- at most ``budget()`` bytes in all (``FASTMM_WORKSPACE_MB``, default a quarter of the physical
  memory, at most 4096 MB; ``0`` keeps nothing and every call allocates, as before), least
  recently used evicted first; a workspace larger than the budget is never kept;
- per thread: two threads never share one (their calls may overlap); a finished thread's
  workspaces are dropped at the next one kept;
- never reused where reuse could change a result or an error: under ``torch.compile`` tracing,
  with autograd recording (an operand requires grad), or across inference mode (an inference
  tensor cannot be written outside it); those calls allocate per call.

``release()`` (also ``fastmm.release_workspaces()``) frees everything kept, in every thread.
``kept_bytes()`` says how much is held now.

``empty(shape, dtype, device)`` is ``torch.empty`` for the workspace: on Linux CPU a block of at
least 4 MiB is advised for transparent huge pages (``madvise(MADV_HUGEPAGE)``, which takes effect
where ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``). The workspace
is kept between calls, so its pages are faulted in once. Measured on a 2-core AVX2 EPYC: first
touch of 512 MB took 0.105 s in 4 KiB pages against 0.04 s in huge pages, and huge pages cut the
TLB misses of a leaf reading a view with leading dimension 8192 (0.1905 → 0.1866 s per 2048³ fp64
product). Elsewhere (CUDA, macOS, Windows, tracing, small blocks) it is plain ``torch.empty``.

``result(shape, dtype, device)`` is plain ``torch.empty``, never advised, for the result of every
call: fresh memory the caller owns, faulted in by the leaf products that first write it, as
torch.matmul's own result is. Advised, its huge pages cost more than they save wherever free
memory is fragmented, as after any other large allocation was freed: where ``defrag`` is
``madvise`` (this EPYC's default) a fault in an advised region compacts memory synchronously, in
the leaf that faults it. Measured there (fp64 8192³, Strassen ⊗ Strassen fused, each call right
after a torch.matmul): the four leaves that first wrote a 2048-row band of an advised result
took 0.33–0.35 s against 0.18 s for the others, and whole calls took 9.54–9.70 s advised against
9.11–9.21 s plain (zero-filling it first on torch's threads: 9.13–9.65 s plain, 9.63–9.91 s advised).
Right after another fastmm call, whose freed huge pages lay ready, the two were equal (8.97–9.23 s
against 9.05–9.18 s).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections import OrderedDict
from typing import Any, Callable

import torch

DEFAULT_CAP_MB = 4096

_lock = threading.Lock()
# (thread ident, owner, key, inference mode) -> (workspace, nbytes); least recently used first
_kept: "OrderedDict[tuple, tuple[Any, int]]" = OrderedDict()


HUGE_PAGE = 2 << 20          # bytes of one x86-64/arm64 transparent huge page
_MADV_HUGEPAGE = 14           # <sys/mman.h> on Linux
_madvise: Any = None          # libc's madvise, looked up on first use (False: unavailable)


def _libc_madvise() -> Any:
    global _madvise
    if _madvise is None:
        _madvise = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
                _madvise = fn
            except (OSError, AttributeError):
                pass
    return _madvise


def advise_huge_pages(t: torch.Tensor) -> bool:
    """Advise the whole 2 MiB pages inside ``t``'s memory for transparent huge pages (Linux CPU).

    Only for memory the caller just allocated and owns; a hint, never an error: returns whether
    the kernel took it. Pages already faulted in stay as they are.
    """
    if t.device.type != "cpu" or torch.compiler.is_compiling() or type(t) is not torch.Tensor:
        return False  # (a subclass such as a tracer's fake tensor has no memory of its own to advise)
    fn = _libc_madvise()
    if not fn:
        return False
    start = t.data_ptr()
    nbytes = t.untyped_storage().nbytes()
    lo = -(-start // HUGE_PAGE) * HUGE_PAGE
    hi = (start + nbytes) // HUGE_PAGE * HUGE_PAGE
    return hi > lo and fn(lo, hi - lo, _MADV_HUGEPAGE) == 0


def empty(shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty(shape)``, advised for huge pages where it is a CPU block of ≥ 4 MiB (module docstring)."""
    t = torch.empty(shape, dtype=dtype, device=device)
    if t.device.type == "cpu" and t.numel() * t.element_size() >= 2 * HUGE_PAGE:
        advise_huge_pages(t)
    return t


def result(shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty(shape)`` for the result of a call: never advised for huge pages (module docstring)."""
    return torch.empty(shape, dtype=dtype, device=device)


def budget() -> int:
    """Bytes that may be kept in all: ``FASTMM_WORKSPACE_MB`` (read on every call), else the default."""
    env = os.environ.get("FASTMM_WORKSPACE_MB", "").strip()
    if env:
        try:
            mb = float(env)
        except ValueError:
            raise ValueError(f"FASTMM_WORKSPACE_MB must be a number of megabytes, got {env!r}") from None
        if mb < 0:
            raise ValueError(f"FASTMM_WORKSPACE_MB must be ≥ 0, got {env!r}")
        return int(mb * 2**20)
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        phys = 4 * DEFAULT_CAP_MB * 2**20
    return min(DEFAULT_CAP_MB * 2**20, phys // 4)


def _nbytes(ws: Any) -> int:
    if isinstance(ws, torch.Tensor):
        return ws.numel() * ws.element_size()
    if isinstance(ws, (list, tuple)):
        return sum(_nbytes(w) for w in ws)
    raise TypeError(f"a workspace is tensors in (nested) lists/tuples, got {type(ws).__name__}")


def reusable(device: torch.device, *operands: torch.Tensor) -> bool:
    """Whether a call on ``device`` with these operands may reuse a kept workspace (module docstring)."""
    if torch.device(device).type != "cpu":
        return False
    if torch.compiler.is_compiling():
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        return False
    return True


def kept(owner: object, key: tuple, build: Callable[[], Any]) -> Any:
    """The workspace of ``(owner, key)`` this thread kept, or ``build()``, kept if the budget allows.

    ``key`` must say everything ``build`` depends on (shapes, dtype, device, levels, …); the thread
    and inference mode are added here. The caller checks ``reusable`` first.
    """
    full = (threading.get_ident(), owner, key, torch.is_inference_mode_enabled())
    with _lock:
        hit = _kept.get(full)
        if hit is not None:
            _kept.move_to_end(full)
            return hit[0]
    ws = build()
    size = _nbytes(ws)
    cap = budget()
    if size > cap:
        return ws
    with _lock:
        alive = {t.ident for t in threading.enumerate()}
        for k in [k for k in _kept if k[0] not in alive]:  # threads gone: their workspaces go too
            del _kept[k]
        held = sum(s for _, s in _kept.values())
        while _kept and held + size > cap:
            _, (_, s) = _kept.popitem(last=False)
            held -= s
        _kept[full] = (ws, size)
    return ws


def for_call(owner: object, key: tuple, build: Callable[[], Any], a: torch.Tensor, b: torch.Tensor) -> Any:
    """The workspace of one ``a @ b`` call: ``kept(owner, key, build)`` where the call may reuse
    one (``reusable``: CPU, not traced, no autograd recording), else a fresh ``build()``."""
    return kept(owner, key, build) if reusable(a.device, a, b) else build()


def release() -> int:
    """Free every kept workspace, in every thread; returns the bytes released."""
    with _lock:
        freed = sum(s for _, s in _kept.values())
        _kept.clear()
    return freed


def kept_bytes() -> int:
    """Bytes of workspace held now, in all threads."""
    with _lock:
        return sum(s for _, s in _kept.values())
