"""Every backend's generated text says how it was made: the fastmm version, the hash of the
templates that rendered it, the options it was emitted with and its addition counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compiler.algebra.library import library_algorithm
from compiler.codegen import emit_cuda, emit_torch, emit_triton
from compiler.codegen.emit_torch import TorchConfig, environment
from compiler.codegen.gpu_lowering import lower
from compiler.codegen.provenance import fastmm_version, options_text, template_hash
from compiler.ir.cse import cse_program
from compiler.ir.lower import lower as lower_ir

REPO = Path(__file__).resolve().parents[1]


def test_version_is_read_from_the_one_file_without_importing_fastmm():
    namespace: dict = {}
    exec((REPO / "fastmm" / "_version.py").read_text(), namespace)
    assert fastmm_version() == namespace["__version__"]


def test_template_hash_covers_the_macro_files(tmp_path):
    import jinja2
    for name in ("a.jinja", "b.jinja"):
        (tmp_path / name).write_text("x")
    (tmp_path / "m.jinja").write_text('{% import "macros.jinja" as m %}{{ m.f() }}')
    (tmp_path / "macros.jinja").write_text("{% macro f() %}1{% endmacro %}")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)))
    before = template_hash("m.jinja", env)
    (tmp_path / "macros.jinja").write_text("{% macro f() %}2{% endmacro %}")
    template_hash.cache_clear()
    assert template_hash("m.jinja", env) != before
    assert template_hash("a.jinja", env) != template_hash("b.jinja", env)  # the name counts too


def _emitted(backend: str, alg: str):
    """(text, template, options text, (additions naive, additions emitted)) for one backend."""
    f = library_algorithm(alg)
    naive = lower_ir(f).additions().total
    after = cse_program(lower_ir(f)).additions().total
    if backend == "torch":
        config = TorchConfig(cutoff=64, schedule="streaming")
        return emit_torch.emit(f, config).text, "torch_module.jinja", options_text(config), (naive, after)
    if backend == "triton":
        return emit_triton.emit(f).text, "triton_module.jinja", "cse=True", (naive, after)
    program = lower(f, cse=False)
    return (emit_cuda.emit(program, "float16").text, "cuda_module.jinja", "cse=False, dtype=float16",
            (naive, naive))


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
@pytest.mark.parametrize("alg", ["strassen", "winograd"])
def test_header_carries_version_template_hash_options_and_additions(backend, alg):
    text, template, options, (naive, emitted) = _emitted(backend, alg)
    header = "\n".join(text.splitlines()[:12])
    assert f"fastmm {fastmm_version()}" in header or f"fastmm:        {fastmm_version()}" in header
    assert re.search(rf"templates sha256 {template_hash(template, environment())}\b", header)
    assert f"{options}" in header and "options" in header
    assert re.search(rf"\b{naive} naive, {emitted} (after CSE|emitted)", header), header
    if alg == "winograd" and backend != "cuda":
        assert emitted == 15 and naive > emitted  # the counts are the real ones, not placeholders
