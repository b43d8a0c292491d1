"""fastmm.matmul's C front (fastmm/_fastpath.c) against its Python implementation.

The front decides one case in C (two positional tensors, no keywords, ``a.numel()`` below
reject_below²: torch.matmul) and passes everything else to ``fastmm.runtime._matmul_py``. These
tests check that the two entry points cannot be told apart: same results, same errors, same
torch.compile behaviour.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import fastmm
from fastmm import runtime

BUILT = importlib.util.find_spec("fastmm._fastpath") is not None
needs_front = pytest.mark.skipif(not BUILT or os.environ.get("FASTMM_PURE_PYTHON") == "1",
                                 reason="fastmm._fastpath not built (no C compiler at install) or FASTMM_PURE_PYTHON=1")


def _ints(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=g).float()


@needs_front
def test_front_is_the_c_function_with_the_python_signature_and_doc():
    assert type(fastmm.matmul) is type(len) and fastmm.matmul is not runtime._matmul_py
    assert inspect.signature(fastmm.matmul) == inspect.signature(runtime._matmul_py).replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty)
                    for p in inspect.signature(runtime._matmul_py).parameters.values()],
        return_annotation=inspect.Signature.empty)
    assert fastmm.matmul.__doc__.startswith(inspect.getdoc(runtime._matmul_py))


CALLS = [
    # (a shape, b shape, kwargs): small (C decides), keywords and large (Python decides)
    ((64, 64), (64, 64), {}), ((5,), (5,), {}), ((2, 3, 4), (4, 5), {}), ((0, 3), (3, 2), {}),
    ((1023, 1024), (1024, 3), {}), ((40, 41), (41, 42), {"algorithm": "strassen"}),
    ((40, 41), (41, 42), {"levels": 1}), ((3, 4), (4, 5), {"config": fastmm.DEFAULT_CONFIG}),
]


@pytest.mark.parametrize("shape_a,shape_b,kwargs", CALLS)
def test_front_and_python_give_the_same_result(shape_a, shape_b, kwargs):
    a, b = _ints(shape_a), _ints(shape_b, seed=1)
    # Small-integer data: exact in fp32 on every plan, so the results are equal bit for bit.
    assert torch.equal(fastmm.matmul(a, b, **kwargs), runtime._matmul_py(a, b, **kwargs))
    assert torch.equal(fastmm.matmul(a, b, **kwargs), torch.matmul(a, b))


def test_keywords_for_the_operands_work_like_the_python_function():
    a, b = _ints((4, 5)), _ints((5, 6), seed=1)
    assert torch.equal(fastmm.matmul(a=a, b=b), torch.matmul(a, b))
    assert torch.equal(fastmm.matmul(a, b=b), torch.matmul(a, b))


BAD_CALLS = [
    ((torch.ones(3, 4), torch.ones(5, 6)), {}),          # shape mismatch: torch's RuntimeError
    (([1.0, 2.0], torch.ones(2)), {}),                   # a not a tensor: torch's TypeError
    ((torch.ones(2), [1.0, 2.0]), {}),                   # b not a tensor
    ((torch.ones(2, 2),), {}),                           # missing b
    ((torch.ones(2, 2), torch.ones(2, 2), 3), {}),       # too many positionals
    ((torch.ones(2, 2), torch.ones(2, 2)), {"bogus": 1}),  # unknown keyword
    ((torch.ones(()), torch.ones(3)), {}),               # 0-D operand
]


@pytest.mark.parametrize("args,kwargs", BAD_CALLS)
def test_front_and_python_raise_the_same_errors(args, kwargs):
    with pytest.raises(Exception) as theirs:
        runtime._matmul_py(*args, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        fastmm.matmul(*args, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_tensor_subclass_goes_through_torch_function_as_with_torch_matmul():
    seen = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(getattr(func, "__name__", str(func)))
            return super().__torch_function__(func, types, args, kwargs or {})

    a = _ints((8, 8)).as_subclass(Logged)
    out = fastmm.matmul(a, _ints((8, 8), seed=1))
    assert type(out) is Logged and "matmul" in seen


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_pure_python_switch():
    proc = _run("""
        import fastmm, fastmm.runtime as rt
        assert fastmm.matmul is rt._matmul_py, fastmm.matmul
    """, FASTMM_PURE_PYTHON="1")
    assert proc.returncode == 0, proc.stderr


@needs_front
def test_compile_works_when_dynamo_was_imported_before_fastmm():
    # The polyfill is registered by a post-import hook; with dynamo already imported it must be
    # registered at once. (tests/test_custom_op.py covers dynamo imported after fastmm.)
    proc = _run("""
        import torch, torch._dynamo
        import fastmm
        assert type(fastmm.matmul) is type(len)
        f = torch.compile(lambda x, y: fastmm.matmul(x, y) + 1, fullgraph=True, backend="eager")
        a = torch.randint(-3, 4, (33, 34)).float()
        b = torch.randint(-3, 4, (34, 35)).float()
        assert torch.equal(f(a, b), a @ b + 1)
    """)
    assert proc.returncode == 0, proc.stderr
