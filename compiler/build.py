"""python -m compiler.build FILE: compile factorizations into kernel modules and print a report.

    python -m compiler.build FILE [--backend torch|triton|cuda|all] [--levels L] [--only NAME]
                                  [--out DIR] [--json] [--schedule materialized|streaming] [--cutoff C]

FILE is anything ``compiler.load`` reads (fastmm .npz/.json, AlphaTensor's npz files). Every real
factorization is verified exactly, lowered, CSE'd and emitted by each backend into ``--out``
(default ``kernels/generated/``). The table has one row per factorization: name, shape, rank,
field, additions naive → after CSE (one level, block additions), the stability factor (one level),
and the files written. ``--json`` prints the same as one JSON object per line (keys ``name``,
``shape``, ``rank``, ``field``, ``additions_naive``, ``additions_cse``, ``stability``, ``outputs``,
plus ``skipped``/``errors`` when something was not built).

Exit status: 0 when everything real was built (mod-2 schemes are skipped with the reason), 1 when
an entry was invalid or a backend is not implemented yet (said on stderr), 2 on bad input (a
one-line error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

from compiler.backends import BackendNotImplemented, backend_names, get_backend
from compiler.factors import Factorization, FactorizationError
from compiler.formats import load

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "kernels" / "generated"


def _num(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def build_one(f: Factorization, backends: list[str], levels: int, out: Path, source: str,
              schedule: str, cutoff: int) -> dict:
    """Build one factorization with every backend; the report row as a dict."""
    row: dict = {"name": f.label(), "shape": list(f.shape), "rank": f.rank, "field": f.field,
                 "additions_naive": None, "additions_cse": None, "stability": None, "outputs": []}
    if f.field != "Q":
        row["skipped"] = f"valid only modulo 2 (field {f.field}): no real-arithmetic kernel"
        return row
    res = f.verify()
    if not res:
        row["skipped"] = f"invalid: {res.describe()}"
        return row
    from compiler.emit_torch import TorchConfig, prepare
    from compiler.stability import stability_factor
    config = TorchConfig(levels=levels, cutoff=cutoff, schedule=schedule)
    prepared = prepare(f, config)
    plain, prog, _ = prepared
    row["additions_naive"] = plain.additions().total
    row["additions_cse"] = prog.additions().total
    row["stability"] = _num(stability_factor(f))
    errors = []
    for name in backends:
        try:
            be = get_backend(name)
        except BackendNotImplemented as e:
            errors.append(f"{name}: {e}")
            continue
        opts = {"prepared": prepared, "cutoff": cutoff, "schedule": schedule} if name == "torch" else {}
        try:
            files = be.emit(f, levels=levels, source=source, **opts)
        except (BackendNotImplemented, NotImplementedError) as e:
            errors.append(f"{name}: {e}")
            continue
        row["outputs"] += [str(g.write(out)) for g in files]
    if errors:
        row["errors"] = errors
    return row


def _table(rows: list[dict]) -> str:
    head = ("name", "shape", "rank", "field", "additions naive→CSE", "stability", "outputs")
    body = []
    for r in rows:
        shape = "<{},{},{}>".format(*r["shape"])
        if r.get("skipped"):
            body.append((r["name"], shape, str(r["rank"]), r["field"], "-", "-", f"skipped: {r['skipped']}"))
            continue
        outs = ", ".join(Path(o).name for o in r["outputs"]) or "-"
        if r.get("errors"):
            outs += "  [" + "; ".join(e.split(":", 1)[0] + ": not built" for e in r["errors"]) + "]"
        body.append((r["name"], shape, str(r["rank"]), r["field"],
                     f"{r['additions_naive']} → {r['additions_cse']}", str(r["stability"]), outs))
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
    ap.add_argument("--schedule", default="materialized", choices=("materialized", "streaming"))
    ap.add_argument("--cutoff", type=int, default=128, help="apply a level while min(M, K, N) >= cutoff")
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
    backends = list(known) if args.backend == "all" else [args.backend]
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
    for f in fs:
        row = build_one(f, backends, args.levels, out, str(args.file), args.schedule, args.cutoff)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(_table(rows))
        built = sum(1 for r in rows if r["outputs"])
        print(f"\n{built} of {len(rows)} built into {out} in {time.perf_counter() - t0:.1f} s")
    for e in sorted({e for r in rows for e in r.get("errors", [])}):
        print(f"note: {e}", file=sys.stderr)
    failed = any(r.get("errors") or r.get("skipped", "").startswith("invalid") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
