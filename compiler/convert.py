"""``python -m compiler.convert IN OUT [--format FMT] [--key NAME] [--shape n,m,p]``: convert factors.

Reads any format that ``compiler.algebra.formats.load`` knows (fastmm npz/JSON, AlphaTensor npz,
arbenson/fast-matmul text, ternary_flip_graph text, the fmm.univ-lille.fr catalogue's Maple tensor
files), proves every scheme exactly, and writes OUT in the format named by ``--format`` or by OUT's
name (.npz fastmm, factorizations_*.npz / *alphatensor*.npz AlphaTensor, .json, .fmm fast-matmul,
.txt flip-graph, .mpl FMM catalogue). A file of many schemes converts whole to a format that holds many; ``--key`` picks one (its name, or its shape '4,4,4' as AlphaTensor keys them),
which the single-scheme text formats need. One line per scheme: name, shape, rank, nonzeros.
Exit 0 on success, 1 if a scheme is invalid (nothing is written), 2 if a file cannot be read or written.
"""

from __future__ import annotations

import argparse
import sys

from compiler.algebra.factors import FactorizationError, parse_shape
from compiler.algebra.formats import FORMATS, load, save_as


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiler.convert", description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--format", choices=FORMATS, help="output format (default: from OUT's name)")
    ap.add_argument("--from", dest="src_format", choices=FORMATS, help="input format (default: detected)")
    ap.add_argument("--key", help="convert only this scheme: its name or its shape '4,4,4'")
    ap.add_argument("--shape", help="block shape n,m,p of a fast-matmul file whose name does not say it")
    args = ap.parse_args(argv)
    try:
        shape = parse_shape(args.shape) if args.shape else None
        fs = load(args.input, name=args.key, fmt=args.src_format, shape=shape)
    except FactorizationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.key is not None and len(fs) > 1:
        print(f"error: {args.input}: {len(fs)} schemes match {args.key!r}; name one", file=sys.stderr)
        return 2
    for f in fs:
        res = f.verify()
        if not res:
            print(f"error: {args.input}: {f.label()} {f.shape_str} rank {f.rank} is invalid: {res.describe()}",
                  file=sys.stderr)
            return 1
    try:
        out = save_as(args.output, fs, args.format)
    except FactorizationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for f in fs:
        print(f"{f.label():<32} {f.shape_str:<10} rank {f.rank:<4} {f.field:<3} "
              f"nnz {'/'.join(map(str, f.nnz))} ({sum(f.nnz)})  -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
