"""``python -m compiler.verify FILE [FILE...]``: exact verification of every factorization in files.

One line per factorization: name, shape, rank, field, nonzeros, VALID/INVALID with the first
failing tensor entry. Exit 0 if all are valid, 1 if any is invalid, 2 if any file is unreadable.
A scheme stored as real that is only valid modulo 2 is reported as such.
"""

from __future__ import annotations

import argparse
import sys

from compiler.algebra.factors import Factorization, FactorizationError
from compiler.algebra.formats import load
from compiler.algebra.records import best_known


def describe(f: Factorization) -> tuple[bool, str]:
    res = f.verify()
    status = res.describe()
    if not res and f.field == "Q" and f.is_integral and f.verify("Z2"):
        status += " — valid only modulo 2: a mod-2 scheme presented as real"
    rec = best_known(f.shape, f.field)
    gap = "" if rec is None else f" (record {rec.rank})"
    nnz = "/".join(map(str, f.nnz))
    return bool(res), f"{f.label():<32} {f.shape_str:<10} rank {f.rank:<4}{gap:<14} {f.field:<3} nnz {nnz:<14} {status}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiler.verify", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    code = 0
    for path in args.files:
        try:
            fs = load(path)
        except FactorizationError as e:
            print(f"error: {e}", file=sys.stderr)
            code = 2
            continue
        for f in fs:
            ok, line = describe(f)
            print(f"{path}: {line}")
            if not ok and code == 0:
                code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
