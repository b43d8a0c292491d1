"""The torch backend: generated modules multiply exactly, for every algorithm, level and awkward shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import compiler
from compiler.codegen.backends import BackendNotImplemented, get_backend
from compiler.codegen.emit_torch import TorchConfig, emit
from compiler.algebra.factors import FactorizationError
from compiler.algebra.library import library_algorithm
from compiler.algebra.stability import stability_factor

GOLDEN = Path(__file__).resolve().parent / "golden"
LIBRARY = ["naive", "strassen", "winograd", "laderman", "4x4x4", "strassen2",
           "strassen+naive-2x2x3-r11", "strassen2-2x2x4-r14", "laderman2-3x3x6-r46"]
SCHEDULES = ["materialized", "streaming", "fused"]


def small_ints(*shape, seed=0):
    # entries in [-3, 3]: every partial sum of the algorithms here stays far below 2**53, so float64
    # arithmetic is exact and the fast result must equal a @ b bit for bit
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=g).to(torch.float64)


def sizes_for(shape, levels):
    n, m, p = shape
    full = (n ** levels, m ** levels, p ** levels)
    return [
        tuple(2 * d for d in full),            # divisible at every level
        tuple(2 * d + 1 for d in full),        # one row/column to peel at the top
        (2 * full[0] + 3, full[1] + 2, 3 * full[2] - 1),  # odd, mixed remainders
        (1, full[1], full[2]),                 # a single row: no level applies
    ]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("name", LIBRARY)
def test_library_bit_exact(name, levels, schedule):
    f = library_algorithm(name)
    mm = compiler.compile(f, levels=levels, cutoff=1, schedule=schedule)
    for k, (M, K, N) in enumerate(sizes_for(f.shape, levels)):
        a, b = small_ints(M, K, seed=k), small_ints(K, N, seed=100 + k)
        assert torch.equal(mm(a, b), a @ b), (M, K, N)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_awkward_inputs(schedule):
    mm = compiler.compile("strassen", levels=2, cutoff=1, schedule=schedule)
    # prime sizes
    a, b = small_ints(13, 17), small_ints(17, 11)
    assert torch.equal(mm(a, b), a @ b)
    # empty dimensions
    assert mm(small_ints(0, 4), small_ints(4, 3)).shape == (0, 3)
    z = mm(small_ints(5, 0), small_ints(0, 3))
    assert z.shape == (5, 3) and not z.any()
    # non-contiguous operands (transposed views and strided slices)
    a, b = small_ints(20, 18), small_ints(22, 20)
    at, bt = a.t(), b.t()[:, ::1]
    assert torch.equal(mm(at, bt.t().t()), at @ bt)
    a2 = small_ints(40, 36)[::2, ::2]
    assert torch.equal(mm(a2, small_ints(18, 10)), a2 @ small_ints(18, 10))
    # batched 3-D
    a, b = small_ints(3, 12, 10), small_ints(3, 10, 14)
    assert torch.equal(mm(a, b), a @ b)
    with pytest.raises(ValueError):
        mm(small_ints(4, 5), small_ints(6, 4))


@pytest.mark.parametrize("dtype, base_tol", [
    # float64: unit roundoff 1.1e-16; the error bound grows with K and with the stability factor
    (torch.float64, 1e-15),
    # float32: unit roundoff 6e-8
    (torch.float32, 1e-6),
])
@pytest.mark.parametrize("name", ["strassen", "winograd", "laderman"])
def test_float_accuracy(name, dtype, base_tol):
    f = library_algorithm(name)
    levels = 2
    mm = compiler.compile(f, levels=levels, cutoff=1)
    g = torch.Generator().manual_seed(1)
    M = K = N = 4 * 9 + 1
    a = torch.randn(M, K, generator=g, dtype=torch.float64)
    b = torch.randn(K, N, generator=g, dtype=torch.float64)
    ref = a @ b
    got = mm(a.to(dtype), b.to(dtype)).to(torch.float64)
    scale = (a.abs() @ b.abs()).max()
    # Ballard et al.'s bound: error ≲ K · e^levels · u · ‖a‖‖b‖; base_tol carries u with slack 10×
    tol = base_tol * K * float(stability_factor(f)) ** levels * 10
    assert ((got - ref).abs().max() / scale) < tol
    # and it is genuinely a different computation from the classical one in float32
    assert torch.isfinite(got).all()


@pytest.mark.slow  # ~45 s of CPU (CSE of all 93 entries, 2 levels of <11,12,12;990>); minutes on a shared machine
def test_alphatensor_all_real_one_and_two_levels(alphatensor_real):
    """Every real AlphaTensor factorization, at 1 and 2 levels, bit-exact (streaming schedule: one
    batched product per level, so two levels of <11,12,12;990> are 2 batched calls)."""
    assert len(alphatensor_real) == 93
    for f in alphatensor_real:
        for levels in (1, 2):
            mm = compiler.compile(f, levels=levels, cutoff=1, schedule="streaming")
            n, m, p = f.shape
            M, K, N = n ** levels + 1, m ** levels + (levels == 1), p ** levels + 2
            a, b = small_ints(M, K, seed=levels), small_ints(K, N, seed=7)
            assert torch.equal(mm(a, b), a @ b), (f.label(), levels)


def test_alphatensor_materialized_one_level(alphatensor_real):
    # default tier: the entries up to rank 64 (the slow test above covers all 93 at 1 and 2 levels),
    # plus the smallest with a grid dimension >= 10, where block names once collided (a1_11 / a11_1)
    wide = min((f for f in alphatensor_real if max(f.shape) >= 10), key=lambda f: f.rank)
    for f in [f for f in alphatensor_real if f.rank <= 64] + [wide]:
        mm = compiler.compile(f, levels=1, cutoff=1, schedule="materialized")
        n, m, p = f.shape
        a, b = small_ints(2 * n + 1, 2 * m, seed=3), small_ints(2 * m, 2 * p + 1, seed=4)
        assert torch.equal(mm(a, b), a @ b), f.label()


def test_mod2_refused(alphatensor_mod2):
    with pytest.raises(FactorizationError, match="modulo 2"):
        compiler.compile(alphatensor_mod2[0])


def test_compile_from_file_and_name(tmp_path):
    path = library_algorithm("strassen")
    mm = compiler.compile(Path(__file__).resolve().parents[1] / "factors" / "2x2x2.npz", name="winograd-2x2x2-r7",
                          cutoff=1)
    a, b = small_ints(6, 6), small_ints(6, 6)
    assert torch.equal(mm(a, b), a @ b)
    assert mm.factorization.name == "winograd-2x2x2-r7"
    assert path.name == "strassen-2x2x2-r7"


def test_callable_uses_the_text_the_cli_writes():
    f = library_algorithm("strassen")
    mm = compiler.compile(f, levels=1, cutoff=128)
    assert mm.source == emit(f, TorchConfig(levels=1, cutoff=128)).text


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_gpu_backends_register_without_importing_kernels(backend):
    """The compiler alone finds the kernels' backends through the fastmm.backends entry points."""
    code = ("import sys, compiler; from compiler.codegen.backends import get_backend; "
            "assert 'kernels' not in sys.modules; "
            f"print(get_backend({backend!r}).name)")
    env = {**os.environ, "PYTHONPATH": str(Path(compiler.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == backend, proc.stderr


def test_unknown_backend_is_refused_by_name():
    with pytest.raises(BackendNotImplemented, match="unknown backend 'nope'"):
        get_backend("nope")


@pytest.mark.parametrize("name, stem", [("strassen", "strassen_torch"), ("laderman", "laderman_torch")])
def test_golden_module_text(name, stem):
    """The emitted module as text: a refactor that changes generated kernels shows up here.
    Regenerate with FASTMM_UPDATE_GOLDEN=1 after checking the diff."""
    text = emit(library_algorithm(name), TorchConfig(levels=1, cutoff=128)).text
    path = GOLDEN / f"{stem}.py.txt"
    if os.environ.get("FASTMM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    # provenance header and one comment per product and per output
    assert "# sha256:        " + library_algorithm(name).digest in text
    f = library_algorithm(name)
    for r in range(f.rank):
        assert f"    # M{r + 1} = " in text
    for i in range(f.shape[0]):
        for k in range(f.shape[2]):
            assert f"    # c{i + 1}{k + 1} = " in text


def test_file_names_are_keyed_by_the_source():
    """CSE on and off (different text) never share a file name, for the torch and the GPU emitters;
    the same options give the same name (the name is a hash of the text, not of the options)."""
    from compiler.codegen import emit_cuda, emit_triton
    from compiler.codegen.generated import GeneratedSource
    f = library_algorithm("winograd")
    on, off = emit(f, TorchConfig(cse=True)), emit(f, TorchConfig(cse=False))
    assert isinstance(on, GeneratedSource) and on.filename != off.filename
    assert on.filename == emit(f, TorchConfig(cse=True)).filename
    assert emit_triton.emit(f, cse=True).filename != emit_triton.emit(f, cse=False).filename
    assert emit_cuda.emit(f, "float32", cse=True).filename != emit_cuda.emit(f, "float32", cse=False).filename
