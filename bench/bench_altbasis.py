"""Alternative-basis Winograd against plain Winograd and torch.matmul on the torch backend (CPU).

    PYTHONPATH=. python bench/bench_altbasis.py [--size 4096] [--dtype float32] [--levels 1 2] [--reps 5]

For each level count: plain Winograd (``compiler.compile("winograd")``) and its alternative basis
(``factors/altbasis.json``, ``compiler.compile_altbasis``), each timed A-B-A against torch.matmul in
the same process (a torch.matmul call before and after every candidate call; the ratio of each
triple is mean(matmul) / candidate, and the median over ``--reps`` triples is reported), after one
warm-up call each. The time split comes from one extra call per candidate: the alternative-basis
module's phases are timed separately (Φ and Ψ transforms, the core, Υ⁻¹), and torch.profiler
splits one call of the core (or of the plain module) into its leaf products (``aten::addmm``/
``baddbmm``) and the rest of that call's wall time, its combinations (the split's phases are
single calls: on a shared machine they need not add up to the median time). TF32 is off (CPU). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import compiler
from compiler.algebra.altbasis import load_altbasis

REPO = Path(__file__).resolve().parents[1]
PRODUCT_OPS = ("aten::addmm", "aten::addmm_", "aten::baddbmm", "aten::baddbmm_", "aten::mm", "aten::bmm")


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _profile_products(fn) -> tuple[float, float]:
    """(seconds in leaf GEMMs, wall seconds) of one profiled call of ``fn``: the split of one call,
    so that a busy machine cannot make the products of one call exceed the time of another."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
    return sum(e.cpu_time_total for e in prof.key_averages() if e.key in PRODUCT_OPS) / 1e6, wall


def _alt_split(fn, a, b) -> dict:
    mod, L = fn.module, fn.levels
    x, y = a.unsqueeze(0), b.unsqueeze(0)
    _, M, K = x.shape
    N = y.shape[2]
    L, M0, K0, N0 = mod._levels(M, K, N, L, fn.cutoff)
    new = lambda *s: torch.empty(s, dtype=a.dtype)  # noqa: E731
    xt, yt, ct, out = new(1, M0, K0), new(1, K0, N0), new(1, M0, N0), new(1, M, N)
    ws = mod._workspace(1, M0, K0, N0, L, 0, a.dtype, a.device)
    t_ab = _time(lambda: (mod._transform_a(x[:, :M0, :K0], xt, L), mod._transform_b(y[:, :K0, :N0], yt, L)))
    core = lambda: mod._mm(xt, yt, ct, 1, 0, L, 0, ws, 0, None)  # noqa: E731
    t_prod, t_core = _profile_products(core)
    t_c = _time(lambda: mod._inverse_c(ct, out[:, :M0, :N0], L))
    return {"transforms_ab_s": t_ab, "inverse_c_s": t_c, "core_s": t_core, "core_products_s": t_prod,
            "core_combinations_s": max(t_core - t_prod, 0.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    n = args.size
    a, b = torch.randn(n, n, dtype=dtype, generator=g), torch.randn(n, n, dtype=dtype, generator=g)
    alt = next(x for x in load_altbasis(REPO / "factors" / "altbasis.json") if x.algorithm.name == "winograd-2x2x2-r7")
    cands = {}
    for L in args.levels:
        cands[f"winograd L={L}"] = compiler.compile("winograd", levels=L)
        cands[f"alt-winograd L={L}"] = compiler.compile_altbasis(alt, levels=L)
    torch.matmul(a, b)
    rows = []
    for name, fn in cands.items():
        fn(a, b)  # warm-up
        ratios, times, base = [], [], []
        for _ in range(args.reps):
            t0 = _time(lambda: torch.matmul(a, b))
            t1 = _time(lambda: fn(a, b))
            t2 = _time(lambda: torch.matmul(a, b))
            ratios.append((t0 + t2) / 2 / t1)
            times.append(t1)
            base += [t0, t2]
        row = {"candidate": name, "ratio_median": statistics.median(ratios), "time_s": statistics.median(times),
               "matmul_s": statistics.median(base)}
        if name.startswith("alt"):
            row.update(_alt_split(fn, a, b))
        else:
            row["products_s"], wall = _profile_products(lambda: fn(a, b))
            row["combinations_s"] = max(wall - row["products_s"], 0.0)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{n}³ {args.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'candidate':18s} {'time s':>7s} {'matmul s':>8s} {'ratio':>6s}   split (s)")
    for r in rows:
        if "core_s" in r:
            split = (f"transforms Φ+Ψ {r['transforms_ab_s']:.3f}, Υ⁻¹ {r['inverse_c_s']:.3f}; core {r['core_s']:.3f} ="
                     f" products {r['core_products_s']:.3f} + combinations {r['core_combinations_s']:.3f}")
        else:
            split = f"products {r['products_s']:.3f} + combinations {r['combinations_s']:.3f}"
        print(f"{r['candidate']:18s} {r['time_s']:7.3f} {r['matmul_s']:8.3f} {r['ratio_median']:6.3f}   {split}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
