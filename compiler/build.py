"""python -m compiler.build FILE: compile factorizations into kernel modules and print a report.

    python -m compiler.build FILE [--backend torch|triton|cuda|all] [--levels L] [--only NAME]
                                  [--out DIR] [--json] [--schedule materialized|streaming] [--cutoff C]
                                  [--cse-effort default|high|rational] [--jobs J] [--altbasis]
                                  [--compare-rational]

FILE is anything ``compiler.load`` reads (fastmm .npz/.json, AlphaTensor's npz files). Every real
factorization is verified exactly, lowered, CSE'd and emitted by each backend into ``--out``
(default ``kernels/generated/``). The table has one row per factorization: name, shape, rank,
field, additions naive → after CSE (one level, block additions), the stability factor (one level),
and the files written. ``--json`` prints the same as one JSON object per line (keys ``name``,
``shape``, ``rank``, ``field``, ``additions_naive``, ``additions_cse``, ``stability``, ``outputs``,
plus ``skipped``/``errors`` when something was not built). ``--altbasis`` adds the sparsest
alternative basis found (``compiler.algebra.altbasis``, proven exactly): the core's additions and
the transforms' additions per level, as ``core + transforms`` (key ``altbasis``).
CSE keeps every temporary integral for an integral algorithm (bit-exact kernels);
``--compare-rational`` also runs the rational CSE and notes ``(rational N)`` where it would need
fewer additions (key ``additions_rational``); ``--cse-effort rational`` builds with it.
Every emitted program passes translation validation (``compiler.codegen.validate``) first.

FILE may also be a ``fastmm-altbasis`` JSON file (``factors/altbasis.json``, written by
``python -m compiler.algebra.altbasis``): each stored alternative-basis algorithm is proven on load
and compiled by ``compiler.codegen.emit_altbasis`` (torch backend); the table then shows, per level
and in block additions, the plain algorithm naive → CSE, the core naive → CSE, and the transforms
Φ+Ψ+Υ⁻¹ (level 1 out of place | each deeper level in place). ``--json`` keys: ``core_naive``,
``core_cse``, ``transforms_outer``, ``transforms_inner`` (per side), ``integral``.

Entries are built by ``--jobs`` worker processes (default: the CPUs this process may use, at most
4), largest first; rows are printed in file order. ``--cse-effort default`` bounds the CSE per
entry (``compiler.ir.cse.EFFORTS``: all restarts and both orientations for small systems, one greedy
run in the natural orientation for AlphaTensor's large ones) so that all 93 AlphaTensor entries
build in under a minute; ``high`` lifts the bounds (minutes). Every run is seeded: same input,
same output.

Exit status: 0 when everything real was built (mod-2 schemes are skipped with the reason), 1 when
an entry was invalid or a backend could not emit it (said on stderr), 2 on bad input (a
one-line error).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

from compiler.codegen.backends import BackendNotImplemented, backend_names, get_backend
from compiler.algebra.factors import Factorization, FactorizationError
from compiler.algebra.formats import load

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "kernels" / "generated"


def _num(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def build_one(f: Factorization, backends: list[str], levels: int, out: Path, source: str,
              schedule: str, cutoff: int, cse_effort: str = "default", altbasis: bool = False,
              compare_rational: bool = False) -> dict:
    """Build one factorization with every backend; the report row as a dict."""
    row: dict = {"name": f.label(), "shape": list(f.shape), "rank": f.rank, "field": f.field,
                 "additions_naive": None, "additions_cse": None, "stability": None, "outputs": []}
    if f.field != "Q":
        row["skipped"] = f"valid only modulo 2 (field {f.field}): no real-arithmetic kernel"
        return row
    from compiler.codegen.emit_torch import TorchConfig, prepare
    from compiler.ir.program import IRError
    from compiler.algebra.stability import stability_factor
    config = TorchConfig(levels=levels, cutoff=cutoff, schedule=schedule, cse_effort=cse_effort)
    try:
        prepared = prepare(f, config)  # the CSE'd program is verified exactly: it computes A·B
    except IRError:
        res = f.verify()
        row["skipped"] = f"invalid: {res.describe()}" if not res else "invalid: the lowered program is wrong"
        return row
    plain, prog, _ = prepared
    row["additions_naive"] = plain.additions().total
    row["additions_cse"] = prog.additions().total
    if compare_rational:  # what rational temporaries would save: the price of integral CSE
        from compiler.ir.cse import cse_program
        row["additions_rational"] = cse_program(plain, effort="rational").additions().total
    row["stability"] = _num(stability_factor(f))
    if altbasis:
        row["altbasis"] = _altbasis_row(f)
    errors = []
    for name in backends:
        try:
            be = get_backend(name)
        except BackendNotImplemented as e:
            errors.append(f"{name}: {e}")
            continue
        opts = {"prepared": prepared, "cutoff": cutoff, "schedule": schedule,
                "cse_effort": cse_effort} if name == "torch" else {}
        try:
            files = be.emit(f, levels=levels, source=source, **opts)
        except (BackendNotImplemented, NotImplementedError) as e:
            errors.append(f"{name}: {e}")
            continue
        row["outputs"] += [str(g.write(out)) for g in files]
    if errors:
        row["errors"] = errors
    return row


def _altbasis_row(f: Factorization) -> dict | None:
    from compiler.algebra.altbasis import sparsify
    if not f.is_integral:
        return None
    alt = sparsify(f)
    return {"core": sum(alt.core_additions()), "transforms": sum(alt.transform_additions()),
            "core_abc": list(alt.core_additions()), "integral": alt.is_integral()}


def build_altbasis_one(alt, levels: int, out: Path, source: str, schedule: str, cutoff: int,
                       cse_effort: str = "default") -> dict:
    """Build one alternative-basis algorithm (``compiler.codegen.emit_altbasis``); the report row."""
    from compiler.codegen import emit_altbasis
    from compiler.codegen.emit_torch import TorchConfig, prepare
    f = alt.algorithm
    config = TorchConfig(levels=levels, cutoff=cutoff, schedule=schedule, cse_effort=cse_effort)
    plain, prog, _ = prepare(f, config)
    prep = emit_altbasis.prepare(alt, config)
    c = emit_altbasis.costs(prep)
    row = {"name": f"alt-{f.label()}", "shape": list(f.shape), "rank": f.rank, "field": f.field,
           "additions_naive": plain.additions().total, "additions_cse": prog.additions().total,
           "core_naive": c["core_naive"], "core_cse": c["core_cse"],
           "transforms_outer": c["transforms_outer"], "transforms_inner": c["transforms_inner"],
           "integral": alt.is_integral(), "outputs": []}
    gen = emit_altbasis.emit(alt, config, source, prep)
    row["outputs"].append(str(gen.write(out)))
    return row


def _altbasis_table(rows: list[dict]) -> str:
    head = ("name", "shape", "rank", "plain naive→CSE", "core naive→CSE", "transforms a+b+c: level 1 | deeper",
            "outputs")
    body = []
    for r in rows:
        o, i = r["transforms_outer"], r["transforms_inner"]
        body.append((r["name"] + ("" if r["integral"] else " (rational)"), "<{},{},{}>".format(*r["shape"]),
                     str(r["rank"]), f"{r['additions_naive']} → {r['additions_cse']}",
                     f"{r['core_naive']} → {r['core_cse']}",
                     f"{o['a']}+{o['b']}+{o['c']} | {i['a']}+{i['b']}+{i['c']}",
                     ", ".join(Path(x).name for x in r["outputs"])))
    widths = [max(len(x[k]) for x in [head] + body) for k in range(len(head) - 1)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(x, widths)) + "  " + x[-1] for x in [head] + body]
    lines.insert(1, "-" * min(120, len(lines[0])))
    return "\n".join(lines)


def _is_altbasis_file(path: str) -> bool:
    from compiler.algebra.altbasis import ALTBASIS_FORMAT
    p = Path(path)
    if p.suffix != ".json" or not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == ALTBASIS_FORMAT
    except (ValueError, AttributeError):
        return False


def _main_altbasis(args) -> int:
    """``python -m compiler.build factors/altbasis.json``: every stored alternative basis (proven on
    load), compiled into a torch module; the table shows per-level additions of the plain algorithm
    and of the core (naive → CSE), and the transforms' (level 1 out of place, each deeper level in place)."""
    from compiler.algebra.altbasis import load_altbasis
    t0 = time.perf_counter()
    try:
        items = load_altbasis(args.file)
    except (FactorizationError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.only:
        items = [a for a in items if args.only in (a.algorithm.name, a.algorithm.label(), f"alt-{a.algorithm.label()}")]
    if args.backend != "torch":
        print("error: alternative-basis algorithms are built for the torch backend only", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for alt in items:
        row = build_altbasis_one(alt, args.levels, out, str(args.file), args.schedule, args.cutoff, args.cse_effort)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(_altbasis_table(rows))
        print(f"\n{len(rows)} alternative-basis modules built into {out} in {time.perf_counter() - t0:.1f} s "
              f"(additions per level, in blocks)")
    return 0


def _default_jobs() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def _work(f: Factorization) -> int:
    """A size estimate for scheduling (largest first): nonzero coefficients."""
    return sum(f.nnz) if f.field == "Q" else 0


def build_all(fs: list[Factorization], jobs: int, **kw):
    """Rows of ``build_one`` in the order of ``fs``, yielded as soon as they (and all before them)
    are done; with ``jobs`` > 1 in worker processes, the largest entries submitted first."""
    if jobs <= 1 or len(fs) <= 1:
        for f in fs:
            yield build_one(f, **kw)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(fs)), mp_context=ctx) as pool:
        order = sorted(range(len(fs)), key=lambda i: -_work(fs[i]))
        futures = {i: pool.submit(build_one, fs[i], **kw) for i in order}
        for i in range(len(fs)):
            yield futures[i].result()


def _table(rows: list[dict]) -> str:
    alt = any("altbasis" in r for r in rows)
    head = ("name", "shape", "rank", "field", "additions naive→CSE") + (("alt core + transforms",) if alt else ()) \
        + ("stability", "outputs")
    body = []
    for r in rows:
        shape = "<{},{},{}>".format(*r["shape"])
        if r.get("skipped"):
            body.append((r["name"], shape, str(r["rank"]), r["field"], "-") + (("-",) if alt else ())
                        + ("-", f"skipped: {r['skipped']}"))
            continue
        outs = ", ".join(Path(o).name for o in r["outputs"]) or "-"
        if r.get("errors"):
            outs += "  [" + "; ".join(e.split(":", 1)[0] + ": not built" for e in r["errors"]) + "]"
        a = r.get("altbasis")
        alt_cell = (f"{a['core']} + {a['transforms']}" if a else "-",) if alt else ()
        rational = r.get("additions_rational")
        cse_cell = f"{r['additions_naive']} → {r['additions_cse']}" + (
            f" (rational {rational})" if rational is not None and rational < r["additions_cse"] else "")
        body.append((r["name"], shape, str(r["rank"]), r["field"], cse_cell) + alt_cell + (str(r["stability"]), outs))
    widths = [max(len(x[k]) for x in [head] + body) for k in range(len(head) - 1)]
    lines = []
    for x in [head] + body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(x, widths)) + "  " + x[-1])
    lines.insert(1, "-" * min(120, len(lines[0])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiler.build", description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--backend", default="torch", help="torch, triton, cuda or all (default torch)")
    ap.add_argument("--levels", type=int, default=1, help="default recursion levels of the modules (default 1)")
    ap.add_argument("--only", default=None, help="one entry: its name, or its shape for AlphaTensor files ('4,4,4')")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default kernels/generated/)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    ap.add_argument("--schedule", default="materialized", choices=("materialized", "streaming", "fused"))
    ap.add_argument("--cutoff", type=int, default=128, help="apply a level while min(M, K, N) >= cutoff")
    ap.add_argument("--cse-effort", default="default", choices=("default", "high", "rational"),
                    help="CSE effort per entry (default: bounded, all 93 AlphaTensor entries in < 1 min)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: usable CPUs, at most 4)")
    ap.add_argument("--compare-rational", action="store_true",
                    help="also run the rational CSE; the table notes entries where it needs fewer additions")
    ap.add_argument("--altbasis", action="store_true",
                    help="also search the sparsest alternative basis (core + transform additions per level)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse already printed a one-line usage error
        return int(e.code or 0) and 2
    known = backend_names()
    if args.backend != "all" and args.backend not in known:
        print(f"error: unknown backend {args.backend!r} (known: {', '.join(known)}, all)", file=sys.stderr)
        return 2
    if args.levels < 1 or args.cutoff < 0:
        print("error: --levels must be >= 1 and --cutoff >= 0", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 2
    backends = list(known) if args.backend == "all" else [args.backend]
    if _is_altbasis_file(args.file):
        return _main_altbasis(args)
    t0 = time.perf_counter()
    try:
        fs = load(args.file, args.only)
    except (FactorizationError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create {out}: {e.strerror}", file=sys.stderr)
        return 2
    rows = []
    jobs = _default_jobs() if args.jobs is None else args.jobs
    for row in build_all(fs, jobs, backends=backends, levels=args.levels, out=out, source=str(args.file),
                         schedule=args.schedule, cutoff=args.cutoff, cse_effort=args.cse_effort,
                         altbasis=args.altbasis, compare_rational=args.compare_rational):
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(_table(rows))
        built = sum(1 for r in rows if r["outputs"])
        print(f"\n{built} of {len(rows)} built into {out} in {time.perf_counter() - t0:.1f} s "
              f"({jobs} job{'s' if jobs > 1 else ''}, CSE effort {args.cse_effort})")
    for e in sorted({e for r in rows for e in r.get("errors", [])}):
        print(f"note: {e}", file=sys.stderr)
    failed = any(r.get("errors") or r.get("skipped", "").startswith("invalid") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
