"""CPU benchmark of the torch backend against torch.matmul (same process, dtype, threads).

pytest-benchmark (``pytest bench/bench_torch_backend.py --benchmark-only``): one benchmark for
``torch.matmul`` and one for the compiled algorithm per (N, dtype, levels); compare the groups.

Standalone, for the README table (interleaved runs, median of per-run speed ratios):

    python bench/bench_torch_backend.py --sizes 2048 4096 8192 --dtypes float32 float64 \\
        --levels 1 2 --algorithm winograd --repeats 5 --json results.json

Speed is ``t(torch.matmul) / t(fastmm)`` (>1: faster), after one warm-up call each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import compiler

SIZES = [2048, 4096, 8192]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: one level of Winograd is applied while min(M, K, N) >= CUTOFF; below 1024 the 7 half-size GEMMs
#: of a 2-core CPU lose more to the additions than they save (N=1024 fp32 measured ~1.0x here)
CUTOFF = 1024


def _fast(algorithm: str, levels: int):
    return compiler.compile(algorithm, levels=levels, cutoff=CUTOFF, schedule="materialized")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("n", SIZES)
def test_torch_matmul(benchmark, n, dtype):
    a = torch.randn(n, n, dtype=DTYPES[dtype])
    b = torch.randn(n, n, dtype=DTYPES[dtype])
    benchmark.group = f"N={n} {dtype}"
    benchmark.pedantic(torch.matmul, args=(a, b), rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("n", SIZES)
def test_fastmm_winograd(benchmark, n, dtype, levels):
    a = torch.randn(n, n, dtype=DTYPES[dtype])
    b = torch.randn(n, n, dtype=DTYPES[dtype])
    mm = _fast("winograd", levels)
    benchmark.group = f"N={n} {dtype}"
    benchmark.extra_info["levels"] = levels
    benchmark.pedantic(mm, args=(a, b), rounds=3, warmup_rounds=1)


REPO = Path(__file__).resolve().parents[1]
#: AlphaTensor's real factorizations, in shared/ beside the repository (as CI lays it out)
ALPHATENSOR_R = REPO.parent / "shared" / "data" / "alphatensor" / "factorizations_r.npz"


def test_build_alphatensor_all(benchmark, tmp_path):
    """``python -m compiler.build factorizations_r.npz``: all 93 entries, a fresh process each round
    (imports, loading, CSE, emission, writing: what a clean checkout's first run costs). The issue's
    target is under 60 s on the 2-core CI machine; see the README for the measured figure and load."""
    if not ALPHATENSOR_R.exists():
        pytest.skip(f"AlphaTensor's factor file not found at {ALPHATENSOR_R}")
    cmd = [sys.executable, "-m", "compiler.build", str(ALPHATENSOR_R), "--out", str(tmp_path / "generated")]

    def build():
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "93 of 93 built" in proc.stdout
        return proc.stdout

    benchmark.extra_info["loadavg"] = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else None
    benchmark.pedantic(build, rounds=1, iterations=1)


def measure(algorithm: str, sizes, dtypes, levels_list, repeats: int) -> list[dict]:
    """Interleaved timing: each repeat times torch.matmul then every level count, same inputs."""
    rows = []
    for n in sizes:
        for dt in dtypes:
            a = torch.randn(n, n, dtype=DTYPES[dt])
            b = torch.randn(n, n, dtype=DTYPES[dt])
            fns = {0: torch.matmul} | {L: _fast(algorithm, L) for L in levels_list}
            for f in fns.values():  # warm-up (workspace allocation paths, BLAS threads)
                f(a, b)
            times: dict[int, list[float]] = {k: [] for k in fns}
            for _ in range(repeats):
                for k, f in fns.items():
                    t0 = time.perf_counter()
                    f(a, b)
                    times[k].append(time.perf_counter() - t0)
            ref = torch.matmul(a.double(), b.double()) if n <= 4096 else None
            for L in levels_list:
                ratios = [t0 / t1 for t0, t1 in zip(times[0], times[L])]
                err = None
                if ref is not None:
                    err = float(((fns[L](a, b).double() - ref).abs().max() / ref.abs().max()).item())
                rows.append({"n": n, "dtype": dt, "levels": L, "algorithm": algorithm,
                             "t_matmul_s": statistics.median(times[0]), "t_fastmm_s": statistics.median(times[L]),
                             "speedup_median_ratio": statistics.median(ratios), "ratios": ratios,
                             "max_rel_err_vs_fp64": err})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--algorithm", default="winograd")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or
            platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cutoff": CUTOFF,
            "schedule": "materialized",
            "loadavg": open("/proc/loadavg").read().split()[:3] if platform.system() == "Linux" else None}
    print(json.dumps(meta), flush=True)
    rows = measure(args.algorithm, args.sizes, args.dtypes, args.levels, args.repeats)
    if platform.system() == "Linux":
        meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    print("\n| N | dtype | levels | torch.matmul (s) | fastmm (s) | speedup |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['dtype']} | {r['levels']} | {r['t_matmul_s']:.3f} | {r['t_fastmm_s']:.3f} | "
              f"{r['speedup_median_ratio']:.3f}× |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
