"""The torch emitter: a factorization → the text of a Python module multiplying torch tensors.

Public API:

- ``TorchConfig(levels=1, cutoff=128, schedule="materialized", cse=True, restarts=...)``: what to emit.
- ``emit(f, config, source="") -> GeneratedSource`` (``compiler.codegen.generated``; its file name
  carries a hash of the text, so CSE on and off never share one): renders ``templates/torch_module.jinja``
  (``StrictUndefined``) from the schedule (``compiler.ir.schedule``) of the CSE'd program, after
  translation validation (``compiler.codegen.validate``: the rendered operations, workspace reuse
  and in-place updates included, run on random exact blocks must give A·B); the file
  carries a provenance header (source, name, sha256, generator and fastmm versions, template hash,
  options, additions; ``compiler.codegen.provenance``) and one comment per product and per output.
- ``load(generated) -> module``: executes the generated text as a module (what ``compiler.compile``
  returns ``module.matmul`` of, and the same text the CLI writes).

Python decides here (which torch call realises each combination step, literal coefficients);
the template only loops over the decided operations.
"""

from __future__ import annotations

import builtins
import re
import types
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import jinja2

from compiler.ir.cse import DEFAULT_RESTARTS, cse_program, effort_of
from compiler.algebra.factors import Factorization
from compiler.ir.program import Program
from compiler.ir.lower import lower
from compiler.ir.schedule import (KINDS, ROW_ALIAS_BYTES, ROW_PAD_BYTES, BatchedProduct, Combine, Fused, Product, Ref,
                                  Schedule, make_schedule)
from compiler.codegen.generated import GeneratedSource, source_filename
from compiler.codegen.provenance import fastmm_version, options_text, template_hash
from compiler.codegen.validate import check_torch_ops

GENERATOR_VERSION = "fastmm-torch-emit 1"
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class TorchConfig:
    """``levels``: default recursion depth of the emitted ``matmul``; ``cutoff``: a level is applied
    while min(M, K, N) >= cutoff; ``schedule``: "materialized", "streaming" or "fused" (see
    compiler.ir.schedule; "fused" runs each side's combinations as one ``kernels.cpu_fused`` call)."""

    levels: int = 1
    cutoff: int = 128
    schedule: str = "materialized"
    cse: bool = True
    restarts: int = DEFAULT_RESTARTS
    cse_effort: str = "default"  # see compiler.ir.cse.EFFORTS

    def __post_init__(self) -> None:
        if self.levels < 0:
            raise ValueError(f"levels must be >= 0, got {self.levels}")
        if self.cutoff < 0:
            raise ValueError(f"cutoff must be >= 0, got {self.cutoff}")
        if self.schedule not in KINDS:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(KINDS)}")
        effort_of(self.cse_effort)  # raises on an unknown effort name


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    """The one jinja2 environment of every emitter: strict (a missing name is an error)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def literal(c: Fraction) -> str:
    """An exact Python literal where one exists: integers, dyadic rationals as floats (exact)."""
    c = Fraction(c)
    if c.denominator == 1:
        return str(c.numerator)
    d = c.denominator
    if d & (d - 1) == 0 and abs(c.numerator) < 2**53:
        return repr(float(c))  # a dyadic rational with a small numerator is exact in binary
    return f"({c.numerator} / {c.denominator})"


def block_name(side: str, i: int, j: int, shape: tuple[int, int, int]) -> str:
    """``a12`` (1-based, as in the papers); ``a1_12`` once a grid dimension reaches 10, so that
    a[0][10] and a[10][0] cannot both be ``a111``."""
    return f"{side}{i + 1}{j + 1}" if max(shape) < 10 else f"{side}{i + 1}_{j + 1}"


def _blocks(program: Program) -> list[dict]:
    n, m, p = program.shape
    grids = (("a", n, m, "bm", "bk"), ("b", m, p, "bk", "bn"), ("c", n, p, "bm", "bn"))
    return [{"name": block_name(side, i, j, program.shape), "side": side, "i": i, "j": j, "rows": rows,
             "cols": cols} for side, r, c, rows, cols in grids for i in range(r) for j in range(c)]


def _namer(program: Program):
    n, m, p = program.shape
    cols = {"a": m, "b": p, "c": p}

    def name(ref: Ref) -> str:
        if ref.space in cols:
            i, j = divmod(ref.index, cols[ref.space])
            return block_name(ref.space, i, j, program.shape)
        return f"{ref.space}[{ref.index}]"
    return name


def _combine_ops(step: Combine, name) -> list[dict]:
    dst = name(step.dst)
    terms = [(name(t.src), t.coef) for t in step.terms]
    ops: list[dict] = []

    def acc(x: str, c: Fraction) -> None:
        if c == 1:
            ops.append({"op": "add_", "dst": dst, "x": x})
        elif c == -1:
            ops.append({"op": "sub_", "dst": dst, "x": x})
        else:
            ops.append({"op": "axpy_", "dst": dst, "x": x, "alpha": literal(c)})

    if step.accumulate:
        for x, c in terms:
            acc(x, c)
        return ops
    (x, c0), rest = terms[0], terms[1:]
    if not rest:
        ops.append({"op": "copy", "dst": dst, "x": x} if c0 == 1 else
                   {"op": "scale", "dst": dst, "x": x, "alpha": literal(c0)})
        return ops
    (y, c1), rest = rest[0], rest[1:]
    if c0 == 1 and c1 == 1:
        ops.append({"op": "add", "dst": dst, "x": x, "y": y})
    elif c0 == 1 and c1 == -1:
        ops.append({"op": "sub", "dst": dst, "x": x, "y": y})
    elif c0 == 1:
        ops.append({"op": "axpy", "dst": dst, "x": x, "y": y, "alpha": literal(c1)})
    else:
        ops.append({"op": "scale", "dst": dst, "x": x, "alpha": literal(c0)})
        acc(y, c1)
    for z, c in rest:
        acc(z, c)
    return ops


def fused_op(step: Fused, name, table: str) -> dict:
    """A ``Fused`` step as the operation the template prints and validation runs: ``srcs`` and
    ``dsts`` (buffer names, each once), ``entries`` (per entry ``[(source index, literal), ...]``,
    a source past the srcs being entry ``index - len(srcs)``), ``outputs`` ``(entry, dst index,
    accumulate)`` and ``notes`` (per entry, what it computes)."""
    srcs: list[str] = []
    for terms in step.entries:
        for t in terms:
            if t.src.space != "e" and name(t.src) not in srcs:
                srcs.append(name(t.src))
    dsts: list[str] = []
    for _, dst, _ in step.outputs:
        if name(dst) not in dsts:
            dsts.append(name(dst))
    entries = [[(len(srcs) + t.src.index if t.src.space == "e" else srcs.index(name(t.src)), literal(t.coef))
                for t in terms] for terms in step.entries]
    outputs = [(k, dsts.index(name(dst)), bool(acc)) for k, dst, acc in step.outputs]
    notes = list(step.notes) + [""] * (len(entries) - len(step.notes))
    return {"op": "fused", "table": table, "srcs": srcs, "dsts": dsts, "entries": entries, "outputs": outputs,
            "notes": notes}


def render_steps(schedule: Schedule) -> list[dict]:
    """The schedule as template steps: ``{"comment", "ops"}``; output comments where a c-block completes."""
    program = schedule.program
    name = _namer(program)
    n, m, p = program.shape
    last_write: dict[int, int] = {}
    for k, st in enumerate(schedule.steps):
        dsts = [o[1] for o in st.outputs] if isinstance(st, Fused) else [getattr(st, "dst", None)]
        for dst in dsts:
            if dst is not None and dst.space == "c":
                last_write[dst.index] = k
    done_at: dict[int, list[str]] = {}
    for q, k in last_write.items():
        done_at.setdefault(k, []).append(schedule.comments.get(("c", block_name("c", q // p, q % p, program.shape)), ""))
    out: list[dict] = []
    for k, st in enumerate(schedule.steps):
        if isinstance(st, Product):
            comment = schedule.comments.get(("M", st.index), f"M{st.index + 1}")
            ops = [{"op": "product", "dst": name(st.dst), "x": name(st.lhs), "y": name(st.rhs),
                    "alpha": literal(st.alpha), "beta": 1 if st.accumulate else 0}]
        elif isinstance(st, BatchedProduct):
            comment, ops = st.comment, [{"op": "batched"}]
        elif isinstance(st, Fused):
            op = fused_op(st, name, f"_{st.side.upper()}_TABLE")
            out.append({"comment": st.comment, "ops": [op], "intent": None,
                        "intents": [(op["dsts"][d], st.intent[o]) for o, (_, d, _) in enumerate(op["outputs"])]})
            for line in done_at.get(k, []):
                out.append({"comment": f"{line}  (complete)", "ops": []})
            continue
        else:
            comment = st.comment
            if st.dst.space == "S":
                comment = schedule.comments.get(("M", st.dst.index), comment)
            ops = _combine_ops(st, name)
        intent = getattr(st, "intent", ())
        out.append({"comment": comment, "ops": ops, "intent": (name(st.dst), intent) if intent else None})
        for line in done_at.get(k, []):
            out.append({"comment": f"{line}  (complete)", "ops": []})
    return out


def prepare(f: Factorization, config: TorchConfig) -> tuple[Program, Program, Schedule]:
    """(plain program, CSE'd program, schedule) for one level of ``f``.

    Verified exactly once: the CSE'd program (``cse_program`` checks that it computes A·B, which
    also proves the lowering, whose products are ``f``'s columns), or the plain one without CSE."""
    plain = lower(f, check=not config.cse)
    prog = cse_program(plain, config.restarts, effort=config.cse_effort) if config.cse else plain
    return plain, prog, make_schedule(prog, config.schedule)


def _tables(steps: list[dict]) -> list[dict]:
    """The fused steps' tables, printed once at module level (``kernels.cpu_fused.Table``)."""
    out = []
    for s in steps:
        for op in s["ops"]:
            if op["op"] == "fused":
                out.append({"name": op["table"], "comment": s["comment"], "srcs": op["srcs"], "dsts": op["dsts"],
                            "entries": [{"terms": e, "note": note} for e, note in zip(op["entries"], op["notes"])],
                            "outputs": op["outputs"]})
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "algorithm"


def module_context(f: Factorization, config: TorchConfig, source: str, plain: Program, prog: Program,
                   sched: Schedule, steps: list[dict], template: str = "torch_module.jinja") -> dict:
    """Everything ``torch_module.jinja`` renders, for ``emit`` and for templates that extend it
    (``torch_altbasis.jinja``, whose core is ``prog``)."""
    n, m, p = prog.shape
    plan = sched.plan
    plan_text = f"{plan.wa} a-, {plan.wb} b-, {plan.wc + plan.scratch} c-blocks" + (
        f" + {f.rank} stacked blocks per side" if plan.stacked else "")
    return dict(
        generator=GENERATOR_VERSION, source=source or (f.provenance.source if f.provenance else "") or "(in memory)",
        name=f.label(), n=n, m=m, p=p, rank=prog.rank, digest=f.digest, kind=sched.kind, plan=plan,
        plan_text=plan_text, additions_naive=plain.additions().total, additions_cse=prog.additions().total,
        levels=config.levels, cutoff=config.cutoff, steps=steps, blocks=_blocks(prog), tables=_tables(steps),
        fastmm_version=fastmm_version(), template_hash=template_hash(template), options=options_text(config),
        row_alias=ROW_ALIAS_BYTES, row_pad=ROW_PAD_BYTES)


def emit(f: Factorization, config: TorchConfig = TorchConfig(), source: str = "",
         prepared: tuple[Program, Program, Schedule] | None = None) -> GeneratedSource:
    """Render the torch module of ``f`` (see module docstring); ``prepared``: ``prepare(f, config)``."""
    plain, prog, sched = prepared or prepare(f, config)
    steps = render_steps(sched)
    # translation validation: the very operations the template prints, run on random exact blocks
    check_torch_ops(f.shape, prog.rank, steps, f"{f.label()} ({sched.kind} schedule)",
                    lambda side, i, j: block_name(side, i, j, f.shape))
    text = environment().get_template("torch_module.jinja").render(
        **module_context(f, config, source, plain, prog, sched, steps))
    builtins.compile(text, "<generated>", "exec")  # must parse: fail here, not at call time
    filename = source_filename(_safe(f.label()), text, f"_torch_{sched.kind}.py")  # keyed by the text
    return GeneratedSource(text, filename, "torch")


def load(generated: GeneratedSource, path: str | None = None) -> types.ModuleType:
    """Execute generated text as a fresh module (``path`` names it in tracebacks)."""
    mod = types.ModuleType(generated.filename[:-3])
    mod.__file__ = path or f"<fastmm generated {generated.filename}>"
    exec(builtins.compile(generated.text, mod.__file__, "exec"), mod.__dict__)
    return mod
