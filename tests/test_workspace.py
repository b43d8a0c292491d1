"""Workspaces kept between calls (kernels.workspace): reused, bounded, per thread, never where unsafe."""

from __future__ import annotations

import threading

import pytest
import torch

import compiler
from compiler.algebra.library import library_algorithm
from kernels import workspace


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("FASTMM_WORKSPACE_MB", raising=False)
    workspace.release()
    yield
    workspace.release()


def _ints(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=g).to(torch.float64)


def _new(n=4):
    return lambda: (torch.empty(n, dtype=torch.float32), [torch.empty(n, dtype=torch.float64)])


def test_the_same_thread_and_key_get_the_same_workspace():
    owner = object()
    first = workspace.kept(owner, (1, 2), _new())
    assert workspace.kept(owner, (1, 2), _new()) is first
    assert workspace.kept(owner, (1, 3), _new()) is not first
    assert workspace.kept(object(), (1, 2), _new()) is not first
    assert workspace.kept_bytes() == 3 * (4 * 4 + 4 * 8)


def test_threads_never_share_a_workspace():
    owner, got = object(), []
    mine = workspace.kept(owner, (7,), _new())
    t = threading.Thread(target=lambda: got.append(workspace.kept(owner, (7,), _new())))
    t.start()
    t.join()
    assert got[0] is not mine
    # the finished thread's workspace is dropped when the next one is kept
    workspace.kept(owner, (8,), _new())
    assert workspace.kept_bytes() == 2 * (4 * 4 + 4 * 8)


def test_the_budget_bounds_what_is_kept(monkeypatch):
    monkeypatch.setenv("FASTMM_WORKSPACE_MB", str(3 * 48 / 2**20))  # room for three 48-byte workspaces
    owner = object()
    kept = [workspace.kept(owner, (i,), _new()) for i in range(4)]
    assert workspace.kept_bytes() == 3 * 48
    assert workspace.kept(owner, (0,), _new()) is not kept[0]   # least recently used went first
    assert workspace.kept(owner, (3,), _new()) is kept[3]
    monkeypatch.setenv("FASTMM_WORKSPACE_MB", "0")
    workspace.release()
    assert workspace.kept(owner, (9,), _new()) is not workspace.kept(owner, (9,), _new())
    assert workspace.kept_bytes() == 0


def test_bad_budget_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FASTMM_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="FASTMM_WORKSPACE_MB"):
        workspace.budget()
    monkeypatch.setenv("FASTMM_WORKSPACE_MB", "-1")
    with pytest.raises(ValueError, match="≥ 0"):
        workspace.budget()


def test_inference_mode_gets_its_own_workspace():
    owner = object()
    outside = workspace.kept(owner, (1,), _new())
    with torch.inference_mode():
        inside = workspace.kept(owner, (1,), _new())
    assert inside is not outside
    assert workspace.kept(owner, (1,), _new()) is outside


def test_reuse_is_refused_where_it_is_unsafe():
    a = torch.ones(2, 2)
    assert workspace.reusable("cpu", a, a)
    assert not workspace.reusable("cuda", a, a)
    g = torch.ones(2, 2, requires_grad=True)
    assert not workspace.reusable("cpu", g, a)
    with torch.no_grad():
        assert workspace.reusable("cpu", g, a)


@pytest.mark.parametrize("schedule", ["materialized", "fused"])
def test_a_module_keeps_its_workspace_and_stays_exact(schedule):
    """Calls of several shapes, back and forth, with the workspace reused: every result exact."""
    mm = compiler.compile("winograd", levels=2, cutoff=1, schedule=schedule)
    shapes = [(64, 48, 80), (37, 66, 29), (64, 48, 80), (2, 37, 66, 29)]
    for i, shape in enumerate(shapes):
        *batch, m, k, n = shape
        a, b = _ints(*batch, m, k, seed=i), _ints(*batch, k, n, seed=i + 10)
        assert torch.equal(mm(a, b), a @ b), shape
    held = workspace.kept_bytes()
    assert held > 0
    a, b = _ints(64, 48), _ints(48, 80, seed=1)
    mm(a, b)
    assert workspace.kept_bytes() == held   # the same shape again allocates nothing new
    assert workspace.release() == held and workspace.kept_bytes() == 0


def test_inference_mode_calls_then_normal_calls_work():
    mm = compiler.compile("strassen", levels=1, cutoff=1)
    a, b = _ints(16, 16), _ints(16, 16, seed=3)
    with torch.inference_mode():
        assert torch.equal(mm(a, b), a @ b)
    assert torch.equal(mm(a, b), a @ b)


def test_an_alternative_basis_module_keeps_its_buffers_and_stays_exact():
    from compiler.algebra.library import library_algorithm

    mm = compiler.compile(library_algorithm("winograd"), levels=2, cutoff=1, basis="auto")
    for i, (m, k, n) in enumerate([(36, 20, 44), (37, 21, 45), (36, 20, 44)]):
        a, b = _ints(m, k, seed=i), _ints(k, n, seed=i + 5)
        assert torch.equal(mm(a, b), a @ b), (m, k, n)
    held = workspace.kept_bytes()
    assert held > 0
    mm(_ints(36, 20), _ints(20, 44, seed=2))
    assert workspace.kept_bytes() == held


def test_for_call_keeps_only_where_the_call_may_reuse():
    owner, a = object(), torch.ones(2, 2)
    kept = workspace.for_call(owner, (1,), _new(), a, a)
    assert workspace.for_call(owner, (1,), _new(), a, a) is kept
    g = torch.ones(2, 2, requires_grad=True)
    assert workspace.for_call(owner, (1,), _new(), g, a) is not kept   # autograd records: fresh


def _huge_pages_mode() -> str:
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return "absent"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else "absent"


def test_empty_is_torch_empty_with_a_huge_page_hint():
    t = workspace.empty((3, 1024, 1024), torch.float32, torch.device("cpu"))  # 12 MiB
    assert t.shape == (3, 1024, 1024) and t.dtype == torch.float32 and t.is_contiguous()
    small = workspace.empty((4, 5), torch.float64, torch.device("cpu"))  # below 4 MiB: no hint
    assert small.shape == (4, 5)
    meta = workspace.empty((2048, 2048), torch.float32, torch.device("meta"))  # not CPU: plain empty
    assert meta.device.type == "meta" and not workspace.advise_huge_pages(meta)
    took = workspace.advise_huge_pages(t)
    if _huge_pages_mode() in ("madvise", "always"):
        assert took  # Linux with THP: the kernel accepts the advice for the 2 MiB pages inside t
    t.fill_(1.5)
    assert t.sum().item() == 1.5 * t.numel()


def test_empty_under_a_fake_tensor_tracer_touches_no_memory():
    import warnings

    from torch._subclasses.fake_tensor import FakeTensorMode

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a data_ptr() of a fake tensor warns: it must not be reached
        with FakeTensorMode():
            t = workspace.empty((2048, 2048), torch.float32, torch.device("cpu"))
            assert t.shape == (2048, 2048) and not workspace.advise_huge_pages(t)


def test_modules_allocate_through_kernels_workspace():
    """The workspace of every torch module comes from ``workspace.empty`` (huge pages on Linux
    CPU) and the result from ``workspace.result`` (never advised); a module whose text called
    torch.empty itself would lose that silently."""
    for schedule in ("materialized", "streaming", "fused"):
        text = compiler.compile("strassen", levels=2, cutoff=1, schedule=schedule).source
        assert "torch.empty" not in text and "_workspaces.empty(" in text
        assert text.count("_workspaces.result(") == 1 and "out = _workspaces.result((B, M, N)" in text
    alt = compiler.compile("winograd", levels=1, cutoff=1, basis="auto").source
    assert "torch.empty" not in alt and alt.count("_workspaces.result(") == 1


def test_result_is_plain_torch_empty():
    t = workspace.result((3, 4), torch.float64, torch.device("cpu"))
    assert t.shape == (3, 4) and t.dtype == torch.float64 and t.is_contiguous()


@pytest.mark.parametrize("schedule", ["materialized", "streaming", "fused"])
@pytest.mark.parametrize("algorithm,levels", [("strassen", 2), ("winograd", 1), ("4x4x4", 1)])
def test_padded_workspace_rows_are_bit_exact(algorithm, levels, schedule):
    """Rows of 4 KiB multiples (fp64 blocks 512 wide) are padded on CPU (``row_stride``); every
    schedule reads and writes those blocks through their strides: exact on small integers."""
    mm = compiler.compile(algorithm, levels=levels, cutoff=1, schedule=schedule)
    k = {"4x4x4": 4}.get(algorithm, 2) ** levels * 512
    a, b = _ints(8, k, seed=1), _ints(k, k + 3, seed=2)  # N: padded core, a peeled strip
    ws = mm.module._workspace(1, 8, k, k + 3, levels, 1, torch.float64, "cpu")
    assert any(t.stride(-2) != t.shape[-1] for level in ws for t in level)
    assert torch.equal(mm(a, b), a @ b)


@pytest.mark.parametrize("schedule", ["materialized", "streaming", "fused"])
def test_padded_rows_outside_the_library_are_bit_exact(schedule):
    """The same on algorithms the library does not hold: Strassen under a random unimodular change
    of basis (entries up to 20), and its Kronecker product with Winograd (<4,4,4;49>), one level,
    fp64 blocks 512 wide (padded). Entries in [-1, 1] and K = 1024 or 2048 keep every partial sum
    far below 2**53 (``stored_bound``), so float64 is exact."""
    import numpy as np
    from _exactness import EXACT_INTEGERS, random_unimodular, stored_bound

    s = library_algorithm("strassen")
    changed = compiler.change_basis(s, *(random_unimodular(np.random.default_rng(7), d, 20) for d in s.shape))
    for f in (changed, compiler.kron(changed, library_algorithm("winograd"))):
        k = f.shape[1] * 512
        assert stored_bound(f, 1, k, 1) <= EXACT_INTEGERS["float64"]
        mm = compiler.compile(f, levels=1, cutoff=1, schedule=schedule)
        g = torch.Generator().manual_seed(5)
        a = torch.randint(-1, 2, (8, k), generator=g).double()
        b = torch.randint(-1, 2, (k, f.shape[2] * 512 + 1), generator=g).double()
        ws = mm.module._workspace(1, 8, k, b.shape[1], 1, 1, torch.float64, "cpu")
        assert any(t.stride(-2) != t.shape[-1] for level in ws for t in level)
        assert torch.equal(mm(a, b), a @ b), (f.label(), schedule)


def test_padded_alternative_basis_is_bit_exact():
    """The alternative-basis module's transform buffers get the padded rows as well."""
    from compiler.codegen.emit_altbasis import stored_altbasis

    alt = stored_altbasis(library_algorithm("winograd"))
    mm = compiler.compile("winograd", levels=2, cutoff=1, schedule="materialized", basis=alt)
    a, b = _ints(16, 2048, seed=3), _ints(2048, 1024, seed=4)
    assert torch.equal(mm(a, b), a @ b)
    (xt, yt, ct, _), = [ws for ws, _ in workspace._kept.values()]  # kept by the call (CPU, no autograd)
    assert xt.stride(-2) == 2048 + 8 and yt.stride(-2) == 1024 + 8 and ct.stride(-2) == 1024 + 8
