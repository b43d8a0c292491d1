"""Which means runs the fused schedule's combination tables fastest on this CPU (docs/cpu.md).

For one level of an algorithm at block size ``bs`` (N = 2·bs for <2,2,2>), each side's table
(``compiler.ir.schedule.fused``, as the torch module prints it) is run by:

- ``c-ext``: ``kernels.cpu_fused.combine`` (the C/OpenMP extension, one tiled pass);
- ``torch-passes``: one torch call per term into preallocated buffers (each entry written to
  memory, as the materialized schedule's ``torch.add(..., out=)``/``add_`` passes do);
- ``numba``: the same table by a ``numba.njit(parallel=True)`` kernel (prange over rows, the
  entries of a row chunk in a small local buffer), on a stacked copy of the blocks;

interleaved (A-B-C, repeated), median per means. The figure is the minimal traffic (each src
read once, each dst written once) divided by the time: effective GB/s.

    PYTHONPATH=. python bench/combine_means.py --algorithm winograd --bs 2048 --dtype float32 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import compiler
from kernels import cpu_fused


def tables(algorithm: str) -> list:
    mm = compiler.compile(algorithm, levels=1, cutoff=1, schedule="fused")
    mod = mm.module
    return [(name, getattr(mod, name)) for name in ("_A_TABLE", "_B_TABLE", "_C_TABLE") if hasattr(mod, name)]


def torch_passes(table, srcs, dsts, tmp):
    """Each entry into memory (its dst, or a temporary), one torch pass per term."""
    vals = []
    for k, terms in enumerate(table.entries):
        out = [dsts[d] for e, d, _ in table.outputs if e == k]
        buf = out[0] if out and table.dsts[[d for e, d, _ in table.outputs if e == k][0]] not in table.srcs else tmp[k]
        (s0, c0), rest = terms[0], terms[1:]
        x = srcs[s0] if s0 < len(srcs) else vals[s0 - len(srcs)]
        if rest:
            s1, c1 = rest[0]
            y = srcs[s1] if s1 < len(srcs) else vals[s1 - len(srcs)]
            if c0 == 1:
                torch.add(x, y, alpha=c1, out=buf)
            else:
                torch.mul(x, c0, out=buf)
                buf.add_(y, alpha=c1)
            for s, c in rest[1:]:
                buf.add_(srcs[s] if s < len(srcs) else vals[s - len(srcs)], alpha=c)
        else:
            torch.mul(x, c0, out=buf)
        vals.append(buf)
    for k, d, acc in table.outputs:
        if vals[k].data_ptr() != dsts[d].data_ptr():
            dsts[d].add_(vals[k]) if acc else dsts[d].copy_(vals[k])


def numba_kernel():
    import numba

    @numba.njit(parallel=True, fastmath=False, cache=False)
    def run(src, dst, starts, tsrc, tcoef, oent, odst, nent, tc):
        nsrc, rows, cols = src.shape
        for i in numba.prange(rows):
            tile = np.empty((nent, tc), dtype=src.dtype)
            for j0 in range(0, cols, tc):
                w = min(tc, cols - j0)
                for e in range(nent):
                    for k in range(starts[e], starts[e + 1]):
                        s, c = tsrc[k], tcoef[k]
                        if k == starts[e]:
                            if s < nsrc:
                                for j in range(w):
                                    tile[e, j] = c * src[s, i, j0 + j]
                            else:
                                for j in range(w):
                                    tile[e, j] = c * tile[s - nsrc, j]
                        else:
                            if s < nsrc:
                                for j in range(w):
                                    tile[e, j] += c * src[s, i, j0 + j]
                            else:
                                for j in range(w):
                                    tile[e, j] += c * tile[s - nsrc, j]
                for o in range(oent.shape[0]):
                    for j in range(w):
                        dst[odst[o], i, j0 + j] = tile[oent[o], j]
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithm", default="winograd")
    ap.add_argument("--bs", type=int, default=2048)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-numba", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    dt = getattr(torch, args.dtype)
    rows = []
    nb = None if args.no_numba else numba_kernel()
    for name, table in tables(args.algorithm):
        srcs = [torch.randn(1, args.bs, args.bs, dtype=dt) for _ in table.srcs]
        # a dst named like a src is that src (a c-block holding a product, then its output)
        dsts = [srcs[table.srcs.index(d)] if d in table.srcs else torch.empty(1, args.bs, args.bs, dtype=dt)
                for d in table.dsts]
        tmp = [torch.empty(1, args.bs, args.bs, dtype=dt) for _ in table.entries]
        means = {"c-ext": lambda: cpu_fused.combine(table, srcs, dsts),
                 "torch-passes": lambda: torch_passes(table, srcs, dsts, tmp)}
        if nb is not None:
            S = torch.stack([s[0] for s in srcs]).numpy()
            D = np.empty((len(dsts), args.bs, args.bs), dtype=S.dtype)
            starts = np.array([0] + list(np.cumsum([len(e) for e in table.entries])), dtype=np.int64)
            tsrc = np.array([s for e in table.entries for s, _ in e], dtype=np.int64)
            tcoef = np.array([c for e in table.entries for _, c in e], dtype=S.dtype)
            oent = np.array([k for k, _, _ in table.outputs], dtype=np.int64)
            odst = np.array([d for _, d, _ in table.outputs], dtype=np.int64)
            numba_args = (S, D, starts, tsrc, tcoef, oent, odst, len(table.entries), 512)
            means["numba"] = lambda: nb(*numba_args)
        times: dict[str, list] = {k: [] for k in means}
        for fn in means.values():
            fn()  # warm-up (numba compiles here)
        for _ in range(args.repeats):
            for k, fn in means.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        nbytes = (len(table.srcs) + len(table.dsts)) * args.bs * args.bs * srcs[0].element_size()
        for k, ts in times.items():
            med = statistics.median(ts)
            rows.append({"table": name, "means": k, "bs": args.bs, "dtype": args.dtype, "seconds": med,
                         "GB/s": nbytes / med / 1e9, "srcs": len(table.srcs), "dsts": len(table.dsts),
                         "entries": len(table.entries), "threads": torch.get_num_threads()})
            print(f"{args.algorithm} {name} bs={args.bs} {args.dtype} {k:13s} {med * 1e3:8.2f} ms  "
                  f"{nbytes / med / 1e9:6.2f} GB/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
