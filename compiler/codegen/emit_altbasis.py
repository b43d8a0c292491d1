"""The torch emitter for alternative-basis algorithms: transforms, sparse core, inverse transform.

An ``AltBasis`` (``compiler.algebra.altbasis``) writes an algorithm as ``U = Φᵀ·Uc``,
``V = Ψᵀ·Vc``, ``W = Υ⁻¹·Wc``. L levels of it run as

    c = (Υ⁻¹)^⊗L · core_L(Φ^⊗L · a, Ψ^⊗L · b)

because the transforms are block-local linear maps that commute with the coarser levels'
combinations: every level's transform can be pulled out of the recursion and applied once, level by
level, to the whole operand (O(N² L) additions), and the *core* <Uc, Vc, Wc> recurses on the
transformed blocks, each of its products a core call one level down, BLAS at the leaves.

Where each part lives:

- the core is a bilinear map, lowered, CSE'd (``compiler.ir.cse``'s side CSE), scheduled and
  rendered exactly like an algorithm (``compiler.ir.lower``, ``compiler.ir.schedule``,
  ``emit_torch.render_steps``) into the functions of ``templates/torch_module.jinja``; its program
  is proven to compute ``core_tensor(alt)`` — the matmul tensor in the transformed bases, computed
  from Φ, Ψ, Υ and the definition of A·B, not from the core — (``compiler.ir.program.verify``
  with ``tensor=``);
- the transforms are ``compiler.ir.linmap`` programs (level 1 out of place from the operand into
  its one workspace, deeper levels in place there), rendered by ``templates/torch_altbasis.jinja``,
  which extends the plain template and replaces its ``matmul`` entry point;
- translation validation (``compiler.codegen.validate``): every rendered transform is run on random
  residue blocks against its matrix (``check_linear_ops``), the rendered core steps against the
  transformed tensor, and one whole level — rendered Φ and Ψ, rendered core, rendered Υ⁻¹ — against
  A·B (``check_altbasis``). The L-level module is then exact: each level's map is, and the core is
  exact over non-commuting blocks.

Shapes that n^L, m^L, p^L do not divide are *peeled* once at the top (classical strips, as the plain
template peels at each level): padding would copy both operands into larger buffers and multiply
zeros, and the workspace copy the transforms make anyway could hold the padding, but the strips
are thin GEMMs (at most n^L − 1 rows) that cost less than the padded core's extra products.

Public API: ``AltConfig``, ``core_tensor(alt)``, ``prepare(alt, config)``, ``emit(alt, config, source)``,
``build_altbasis(alt, levels=2, schedule="materialized", cutoff=128)`` (the callable the runtime
measures; cached per alt object and options; ``compiler.compile_altbasis`` is the same),
``stored_altbasis(f)`` (the stored basis of a factorization, or None), ``costs(prepared)``,
``linear_ops(linear_map)``.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from compiler.algebra.altbasis import AltBasis, altbasis_entries, decode_altbasis
from compiler.algebra.constructions import exact_inverse
from compiler.algebra.factors import Factorization, matmul_tensor, to_exact
from compiler.codegen.emit_torch import (TorchConfig, _combine_ops, _safe, block_name, environment, literal,
                                         load, module_context, render_steps)
from compiler.codegen.generated import GeneratedSource, source_filename
from compiler.codegen.validate import check_altbasis, check_linear_ops, check_torch_ops
from compiler.ir import linmap
from compiler.ir.cse import _side, effort_of  # the side CSE of cse_program, which also verifies A·B
from compiler.ir.lower import lower
from compiler.ir.program import Program, lin, mul, expand, verify
from compiler.ir.schedule import Combine, Ref, Schedule, Term, make_schedule

GENERATOR_VERSION = "fastmm-torch-altbasis-emit 1"
AltConfig = TorchConfig  # the same options: levels, cutoff, schedule, cse, restarts, cse_effort


def core_tensor(alt: AltBasis) -> np.ndarray:
    """The bilinear map the core must compute: T ×₁ Φ⁻ᵀ ×₂ Ψ⁻ᵀ ×₃ Υ with T the matmul tensor
    (exact). From U = ΦᵀUc, V = ΨᵀVc, W = Υ⁻¹Wc: Σ_r U⊗V⊗W = T exactly when Σ_r Uc⊗Vc⊗Wc is this."""
    n, m, p = alt.algorithm.shape
    T = np.asarray(matmul_tensor(n, m, p), dtype=object)
    pa = np.asarray(exact_inverse(alt.phi), dtype=object)    # Φ⁻¹: its transpose acts on index 1
    pb = np.asarray(exact_inverse(alt.psi), dtype=object)
    pc = np.asarray(alt.upsilon, dtype=object)
    t = np.tensordot(pa.T, T, axes=([1], [0]))                              # [q, j, k]
    t = np.tensordot(pb.T, t, axes=([1], [1])).transpose(1, 0, 2)           # [q, s, k]
    t = np.tensordot(pc, t, axes=([1], [2])).transpose(1, 2, 0)             # [q, s, l]
    return to_exact(t)


def _core_factorization(alt: AltBasis) -> Factorization:
    """The core's coefficients in the ``Factorization`` container, only for ``lower``: it is NOT a
    matmul algorithm (never ``require_valid``'d); ``core_tensor`` says what it computes."""
    f = alt.algorithm
    return Factorization(f.shape, alt.Uc, alt.Vc, alt.Wc, "Q", f"{f.name}-core", f.provenance)


def _cse_core(plain: Program, tensor: np.ndarray, config: TorchConfig) -> Program:
    """``cse_program`` for a bilinear map: the same three side CSEs, verified against ``tensor``."""
    eff = effort_of(config.cse_effort)
    left = _side([q.args[0] for q in plain.products], config.restarts, 0, eff)
    right = _side([q.args[1] for q in plain.products], config.restarts, 0, eff)
    new_prod = {q: mul(left[q.args[0]], right[q.args[1]]) for q in plain.products}
    outs_in = [lin((new_prod[leaf], c) for leaf, c in expand(o).items()) for o in plain.outputs]
    outs = _side(outs_in, config.restarts, 0, eff)
    prog = Program(plain.shape, tuple(new_prod[q] for q in plain.products), tuple(outs[o] for o in outs_in),
                   plain.name, plain.digest, plain.source)
    return verify(prog, tensor)


@dataclass(frozen=True)
class Prepared:
    """Everything the emitter renders, proven: the core's plain and CSE'd programs and schedule, and
    the transforms' linear-map programs (out of place for level 1, in place below)."""

    alt: AltBasis
    tensor: np.ndarray
    plain: Program
    program: Program
    schedule: Schedule
    maps: dict  # side -> (out_of_place LinearMap, in_place LinearMap)


def prepare(alt: AltBasis, config: TorchConfig = TorchConfig()) -> Prepared:
    alt.verify()
    tensor = core_tensor(alt)
    plain = lower(_core_factorization(alt), check=False)
    verify(plain, tensor)
    prog = _cse_core(plain, tensor, config) if config.cse else plain
    maps = {side: (linmap.out_of_place(T), linmap.in_place(T))
            for side, T in (("a", alt.phi), ("b", alt.psi), ("c", alt.upsilon_inv))}
    return Prepared(alt, tensor, plain, prog, make_schedule(prog, config.schedule), maps)


def linear_ops(lm: linmap.LinearMap) -> list[dict]:
    """A linear map's steps as template operations over ``X[j]`` (read only) and ``Y[i]``."""
    ops: list[dict] = []
    for st in lm.steps:
        src = "Y" if lm.inplace else "X"
        terms = tuple(Term(Ref(src, j), Fraction(c)) for j, c in st.terms)
        if lm.inplace and st.scale == -1 and any(t.coef == 1 for t in terms):
            # y = x − y in one pass (torch.sub(x, y, out=y): the output aliases an input exactly,
            # which elementwise ops allow), then the other terms
            first = next(t for t in terms if t.coef == 1)
            ops.append({"op": "sub", "dst": f"Y[{st.dst}]", "x": str(first.src), "y": f"Y[{st.dst}]"})
            rest = tuple(t for t in terms if t is not first)
            if rest:
                ops += _combine_ops(Combine(Ref("Y", st.dst), rest, True), str)
            continue
        if lm.inplace and st.scale != 1:
            ops.append({"op": "scale_", "dst": f"Y[{st.dst}]", "alpha": literal(Fraction(st.scale))})
        ops += _combine_ops(Combine(Ref("Y", st.dst), terms, lm.inplace), str)
    return ops


def costs(prep: Prepared) -> dict:
    """Additions: the core per level (naive, after CSE) beside the plain algorithm's, and the
    transforms' per level (out of place: the first level; in place: each deeper one)."""
    return {"core_naive": prep.plain.additions().total, "core_cse": prep.program.additions().total,
            "transforms_outer": {s: prep.maps[s][0].additions for s in "abc"},
            "transforms_inner": {s: prep.maps[s][1].additions for s in "abc"}}


def _names(shape):
    return lambda side, i, j: block_name(side, i, j, shape)


def emit(alt: AltBasis, config: TorchConfig = TorchConfig(), source: str = "",
         prepared: Prepared | None = None) -> GeneratedSource:
    """Render the alternative-basis torch module (see module docstring), after translation validation."""
    prep = prepared or prepare(alt, config)
    f = alt.algorithm
    n, m, p = f.shape
    steps = render_steps(prep.schedule)
    label = f"alt-{f.label()}"
    names = _names(f.shape)
    check_torch_ops(f.shape, prep.program.rank, steps, f"{label} core ({prep.schedule.kind} schedule)", names,
                    tensor=prep.tensor)
    rendered = {s: (linear_ops(prep.maps[s][0]), linear_ops(prep.maps[s][1])) for s in "abc"}
    grids = {"a": (n, m), "b": (m, p), "c": (n, p)}
    for s, T in (("a", alt.phi), ("b", alt.psi), ("c", alt.upsilon_inv)):
        check_linear_ops(rendered[s][0], T, False, f"{label}: the level-1 {s}-transform")
        check_linear_ops(rendered[s][1], T, True, f"{label}: the in-place {s}-transform")
    check_altbasis(f.shape, prep.program.rank, steps, {s: rendered[s][0] for s in "abc"}, names, label,
                   prep.tensor)
    symbols = {"a": ("transform_a", "Φ", "the a-blocks"), "b": ("transform_b", "Ψ", "the b-blocks"),
               "c": ("inverse_c", "Υ⁻¹", "the core's result")}
    maps = [{"fn": symbols[s][0], "symbol": symbols[s][1], "what": symbols[s][2], "r": grids[s][0],
             "c": grids[s][1], "outer": rendered[s][0], "inner": rendered[s][1]} for s in "abc"]
    transforms = {s: f"{prep.maps[s][0].additions} additions at level 1, {prep.maps[s][1].additions} in place "
                     f"at each deeper level" for s in "abc"}
    ctx = module_context(f, config, source, prep.plain, prep.program, prep.schedule, steps,
                         template="torch_altbasis.jinja")
    ctx["name"] = f"{f.label()} core"
    ctx["generator"] = f"{ctx['generator']} + {GENERATOR_VERSION}"
    text = environment().get_template("torch_altbasis.jinja").render(
        **ctx, alt_name=label, maps=maps, transforms=transforms)
    builtins.compile(text, "<generated>", "exec")  # must parse: fail here, not at call time
    filename = source_filename(_safe(label), text, f"_torch_altbasis_{prep.schedule.kind}.py")
    return GeneratedSource(text, filename, "torch")


STORED_PATH = Path(__file__).resolve().parents[2] / "factors" / "altbasis.json"


@lru_cache(maxsize=4)
def _entries(path: str) -> tuple[dict, ...]:
    return tuple(altbasis_entries(path))


_PROVEN: dict[tuple[str, str], AltBasis | None] = {}


def stored_altbasis(f: Factorization, path: str | Path = STORED_PATH) -> AltBasis | None:
    """The stored alternative basis of ``f`` (``factors/altbasis.json``, matched by the digest of the
    exact coefficients), or None: the runtime's way to find one. Only entries of ``f``'s shape and
    rank are decoded, and only the match is proven (once per process: 10–300 ms here, where proving the
    whole file took about a second on the first large product); the answer is remembered, so a
    later call is one dictionary lookup."""
    key = (str(path), f.digest)
    if key not in _PROVEN:
        found = None
        for d in (_entries(str(path)) if Path(path).is_file() else ()):
            if tuple(d["shape"]) == tuple(f.shape) and d.get("rank") == f.rank:
                alt = decode_altbasis(d)
                if alt.algorithm.digest == f.digest:
                    found = alt.verify()
                    break
        _PROVEN[key] = found
    return _PROVEN[key]


_MODULES: dict[tuple, tuple] = {}


def build_altbasis(alt: AltBasis, levels: int = 2, schedule: str = "materialized", cutoff: int = 128,
                   cse: bool = True) -> Callable:
    """A callable ``(a, b) -> a @ b`` running ``alt`` (cached per alt object and options), with
    ``.module``, ``.source``, ``.filename``, ``.altbasis``, ``.levels``, ``.cutoff``, ``.schedule``."""
    config = TorchConfig(levels=levels, cutoff=cutoff, schedule=schedule, cse=cse)
    key = (id(alt), levels, schedule, cutoff, cse)
    hit = _MODULES.get(key)
    if hit is None or hit[0] is not alt:
        gen = emit(alt, config)
        hit = (alt, load(gen), gen)
        _MODULES[key] = hit
    _, mod, gen = hit

    def matmul(a, b):
        return mod.matmul(a, b, levels=levels, cutoff=cutoff)

    matmul.module, matmul.source, matmul.filename = mod, gen.text, gen.filename
    matmul.altbasis, matmul.factorization = alt, alt.algorithm
    matmul.levels, matmul.cutoff, matmul.schedule = levels, cutoff, schedule
    matmul.__name__ = f"fastmm_{gen.filename[:-3]}"
    matmul.__doc__ = f"a @ b by alt-{alt.algorithm.label()} ({levels} level(s), cutoff {cutoff}, {schedule} schedule)"
    return matmul
