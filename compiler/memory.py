"""Peak extra memory of the torch backend's schedules: ``python -m compiler.memory``.

The rendered module allocates all its workspace once, before the recursion (``_workspace``: every
level's slots; on CPU kept between calls by ``kernels.workspace``, within ``FASTMM_WORKSPACE_MB``,
so a repeated product faults in no fresh pages); nothing else is allocated by fastmm inside the recursion
(the BLAS leaves may pack internally, as torch.matmul does). ``peak_extra(...)`` is that size
(``compiler.ir.schedule.workspace_elements``, tested equal to what ``_workspace`` allocates), in
bytes and as a fraction of the operands and result (A + B + C), in the CPU layout: a block row
that is a multiple of 4 KiB long is padded by 64 bytes (``compiler.ir.schedule.row_stride``; CUDA
blocks are dense: 0.4 % smaller at 2048-wide fp64 blocks, 1.6 % at 4 KiB-wide ones). The fused schedule's C kernel adds
one tile buffer per thread (entries × 512 elements: under 100 KiB for these algorithms).

    python -m compiler.memory --size 8192 --dtype float32 --levels 1 2 3 \\
        --algorithms strassen winograd laderman 4x4x4

Public API: ``MemoryRow``, ``peak_extra(f, schedule, M, K, N, levels, itemsize)``, ``table(...)``, ``main``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from compiler.algebra.factors import Factorization
from compiler.algebra.library import library_algorithm
from compiler.ir.cse import cse_program
from compiler.ir.lower import lower
from compiler.ir.schedule import KINDS, make_schedule, workspace_elements

ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


@dataclass(frozen=True)
class MemoryRow:
    algorithm: str
    schedule: str
    levels: int
    bytes: int
    fraction: float  # of A + B + C

    def line(self) -> str:
        return f"{self.algorithm:28s} {self.schedule:13s} {self.levels:6d} {self.bytes / 2**20:12.1f} {self.fraction:8.3f}"


def peak_extra(f: Factorization, schedule: str, M: int, K: int, N: int, levels: int, itemsize: int,
               cutoff: int = 1, _program=None) -> tuple[int, float]:
    """(bytes, fraction of A+B+C) of the workspace of one ``M×K @ K×N`` call, ``levels`` levels."""
    prog = _program or cse_program(lower(f))
    sched = make_schedule(prog, schedule)
    extra = workspace_elements(sched, M, K, N, levels, cutoff, itemsize=itemsize) * itemsize
    return extra, extra / ((M * K + K * N + M * N) * itemsize)


def table(algorithms, levels, size: int, dtype: str = "float32", schedules=KINDS) -> list[MemoryRow]:
    rows = []
    for name in algorithms:
        f = library_algorithm(name)
        prog = cse_program(lower(f))
        for kind in schedules:
            for lv in levels:
                b, frac = peak_extra(f, kind, size, size, size, lv, ITEMSIZE[dtype], _program=prog)
                rows.append(MemoryRow(f.label(), kind, lv, b, frac))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiler.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="square size N (N×N @ N×N)")
    ap.add_argument("--dtype", default="float32", choices=tuple(ITEMSIZE))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--algorithms", nargs="+", default=["strassen", "winograd", "laderman", "4x4x4"])
    ap.add_argument("--schedules", nargs="+", default=list(KINDS), choices=KINDS)
    args = ap.parse_args(argv)
    print(f"peak extra memory of one {args.size}³ {args.dtype} call (workspace, allocated once; on CPU kept between calls)")
    print(f"{'algorithm':28s} {'schedule':13s} {'levels':>6s} {'extra MiB':>12s} {'÷(A+B+C)':>8s}")
    for row in table(args.algorithms, args.levels, args.size, args.dtype, args.schedules):
        print(row.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
