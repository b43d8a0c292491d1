"""GPU benchmark sweep: generated Triton/CUDA kernels (and the torch backend) against ``torch.matmul``.

    python bench/gpu_sweep.py --out DIR [--budget-s 300] [--sizes 2048,4096,8192,16384] [--dry-run]

For every precision mode (fp32 with TF32 off, TF32, bf16, fp64), every shape (square N = 2048 …
16384 and a few rectangular ones) and every variant (algorithm × levels × schedule × backend) it
times the variant and ``torch.matmul`` in the same process on the same inputs: warm-up, then the
median of ``--reps`` synchronised CUDA-event timings. Each row also records the variant's error
against the baseline result (max |Δ| / max |baseline|), so a speedup never hides a wrong answer.
Results go to ``DIR/gpu_sweep.csv`` (one row per measurement, with device, versions and date) and
``DIR/speedup_vs_size.png`` (speedup over ``torch.matmul`` against N, one panel per precision mode,
as in AlphaTensor's Fig. 5). A time budget keeps the whole sweep within ``--budget-s``: rows that
would start after it are written with status ``skipped: budget``.

``--dry-run`` (what ``bench/gpu_check.sh`` does without a GPU): check imports, render every
variant's kernels (Triton modules parse; CUDA files compile with ``nvcc -arch=sm_90`` when nvcc is
on PATH), and write the plan (every row the real sweep would measure) to ``DIR/gpu_sweep_plan.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Mode:
    """A precision mode: the tensor dtype and whether TF32 is allowed (baseline and variants alike)."""

    name: str
    dtype: str
    tf32: bool


@dataclass(frozen=True)
class Variant:
    algorithm: str
    levels: int
    backend: str     # triton | cuda | torch
    schedule: str    # streaming | fused_operands | fused (triton); streaming (cuda); materialized (torch)

    @property
    def label(self) -> str:
        return f"{self.algorithm} L{self.levels} {self.backend}/{self.schedule}"


MODES = (Mode("fp32", "float32", False), Mode("fp64", "float64", False), Mode("bf16", "bfloat16", False),
         Mode("tf32", "float32", True))
SQUARE = (2048, 4096, 8192, 16384)
RECTANGULAR = ((4096, 16384, 4096), (16384, 4096, 16384), (8192, 16384, 2048))
VARIANTS = (
    Variant("winograd", 1, "triton", "streaming"),
    Variant("winograd", 1, "triton", "fused"),
    Variant("winograd", 2, "triton", "streaming"),
    Variant("winograd", 2, "triton", "fused"),
    Variant("strassen", 1, "triton", "fused_operands"),
    Variant("winograd", 1, "cuda", "streaming"),
    Variant("winograd", 2, "cuda", "streaming"),
    Variant("winograd", 1, "torch", "materialized"),
)
# Triton's fp64 tl.dot is a weak path (no fp64 tensor-core MMA through Triton): in fp64 only the
# variants whose leaf GEMM is cuBLAS run.
FP64_SCHEDULES = ("streaming", "materialized")
# A variant whose result differs from torch.matmul's by more than this (max |Δ| / max |c|) is
# recorded as "wrong", never as a speedup. Bounds: a few roundings of the mode's unit roundoff times
# the growth of one or two fast levels (Strassen-like: ~10x per level); bf16's 2**-8 makes 5e-2.
MAX_REL_ERR = {"fp64": 1e-11, "fp32": 1e-4, "tf32": 2e-2, "bf16": 5e-2}
FIELDS = ("date", "device", "torch", "triton", "cupy", "mode", "dtype", "tf32", "M", "K", "N", "algorithm", "levels",
          "backend", "schedule", "ms", "baseline_ms", "speedup", "tflops", "baseline_tflops", "rel_err", "status")


def plan(sizes: tuple[int, ...], rectangular: bool = True) -> list[tuple[Mode, tuple[int, int, int], Variant]]:
    """Every measurement, mode by mode; largest squares first (the targets are at N = 16384), so a
    budget that runs out drops the small and rectangular shapes, not the headline ones."""
    shapes = [(n, n, n) for n in sorted(sizes, reverse=True)] + (list(RECTANGULAR) if rectangular else [])
    rows = []
    for mode in MODES:
        for shape in shapes:
            for v in VARIANTS:
                if mode.dtype == "float64" and v.schedule not in FP64_SCHEDULES:
                    continue
                rows.append((mode, shape, v))
    return rows


def versions() -> dict[str, str]:
    import torch
    out = {"torch": torch.__version__, "triton": "-", "cupy": "-"}
    for mod in ("triton", "cupy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001 - recorded, not fatal: a backend may be absent
            out[mod] = f"unavailable ({type(e).__name__})"
    return out


def make_variant(v: Variant, mode: Mode):
    import compiler.codegen.pipeline as pipeline
    opts = {}
    if v.backend == "triton":
        opts = {"schedule": v.schedule, "tf32": mode.tf32}
    elif v.backend == "torch":
        opts = {"schedule": v.schedule}
    return pipeline.compile(v.algorithm, backend=v.backend, levels=v.levels, **opts)


def time_ms(fn, warmup: int, reps: int, device: str = "cuda") -> float:
    """Median milliseconds of ``fn`` after ``warmup`` calls: CUDA events, synchronised (wall clock on CPU)."""
    from kernels.timing import median_ms
    return median_ms(fn, warmup, reps, device)


def run(out: Path, sizes: tuple[int, ...], budget_s: float, warmup: int, reps: int, rectangular: bool,
        device: str = "cuda") -> Path:
    import torch
    dev = torch.cuda.get_device_name() if device == "cuda" else f"CPU smoke run ({platform.machine()}), not a benchmark"
    ver = versions()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    rows_plan = plan(sizes, rectangular)
    # each mode may use up to its share of the budget plus whatever earlier modes left unused
    mode_end = {m: t0 + budget_s * (k + 1) / len(MODES) for k, m in enumerate(MODES)}
    path = out / "gpu_sweep.csv"
    callables: dict = {}
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        current = None
        for mode, (M, K, N), v in rows_plan:
            base = {"date": date, "device": dev, **ver, "mode": mode.name, "dtype": mode.dtype, "tf32": mode.tf32,
                    "M": M, "K": K, "N": N, "algorithm": v.algorithm, "levels": v.levels, "backend": v.backend,
                    "schedule": v.schedule}
            if time.monotonic() > mode_end[mode]:
                w.writerow({**base, "status": "skipped: budget"})
                continue
            torch.backends.cuda.matmul.allow_tf32 = mode.tf32  # the baseline runs in the same mode
            torch.backends.cudnn.allow_tf32 = mode.tf32
            key = (mode, M, K, N)
            if current is None or current[0] != key:
                current = None
                if device == "cuda":
                    torch.cuda.empty_cache()
                g = torch.Generator(device=device).manual_seed(0)
                dtype = getattr(torch, mode.dtype)
                a = torch.randn(M, K, device=device, dtype=dtype, generator=g)
                b = torch.randn(K, N, device=device, dtype=dtype, generator=g)
                ref = torch.matmul(a, b)
                base_ms = time_ms(lambda: torch.matmul(a, b), warmup, reps, device)
                current = (key, a, b, ref, base_ms)
            _, a, b, ref, base_ms = current
            flops = 2.0 * M * K * N
            try:
                fn = callables.get((v, mode))
                if fn is None:
                    fn = callables[(v, mode)] = make_variant(v, mode)
                c = fn(a, b)  # also compiles and autotunes
                err = ((c.double() - ref.double()).abs().max() / ref.double().abs().max()).item()
                del c
                ms = time_ms(lambda: fn(a, b), warmup, reps, device)
                ok = err <= MAX_REL_ERR[mode.name]
                w.writerow({**base, "ms": f"{ms:.4f}", "baseline_ms": f"{base_ms:.4f}", "speedup": f"{base_ms / ms:.4f}",
                            "tflops": f"{flops / ms / 1e9:.2f}", "baseline_tflops": f"{flops / base_ms / 1e9:.2f}",
                            "rel_err": f"{err:.3e}",
                            "status": "ok" if ok else f"wrong: rel_err > {MAX_REL_ERR[mode.name]:g}"})
            except Exception as e:  # noqa: BLE001 - one failing variant must not lose the sweep
                w.writerow({**base, "baseline_ms": f"{base_ms:.4f}", "status": f"error: {type(e).__name__}: {e}"[:300]})
            fh.flush()
    return path


def plot(csv_path: Path, png: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install '.[plot]')", file=sys.stderr)
        return None
    rows = [r for r in csv.DictReader(csv_path.open()) if r["status"] == "ok" and r["M"] == r["K"] == r["N"]]
    modes = [m.name for m in MODES]
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 4), sharey=True)
    device = rows[0]["device"] if rows else "no GPU rows"
    labels = sorted({(r["algorithm"], r["levels"], r["backend"], r["schedule"]) for r in rows})
    colors = {lab: f"C{k % 10}" for k, lab in enumerate(labels)}  # one colour per variant in every panel
    for ax, mode in zip(axes, modes):
        sub = [r for r in rows if r["mode"] == mode]
        for lab in labels:
            pts = sorted((int(r["N"]), float(r["speedup"])) for r in sub
                         if (r["algorithm"], r["levels"], r["backend"], r["schedule"]) == lab)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[lab],
                        label=f"{lab[0]} L{lab[1]} {lab[2]}/{lab[3]}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{mode}")
        ax.set_xlabel("N (square)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("speedup over torch.matmul")
    from matplotlib.lines import Line2D
    proxies = [Line2D([], [], color=colors[lab], marker="o", label=f"{lab[0]} L{lab[1]} {lab[2]}/{lab[3]}")
               for lab in labels]
    fig.legend(handles=proxies, fontsize=7, loc="center right")
    fig.suptitle(f"fastmm vs torch.matmul on {device}")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(png, dpi=120)
    return png


def dry_run(out: Path, sizes: tuple[int, ...], rectangular: bool) -> int:
    """No GPU: check what the real run needs, render every kernel, write the plan. 0 when all is well."""
    problems = []
    import torch  # noqa: F401 - the sweep cannot run without it
    import jinja2  # noqa: F401
    for mod in ("triton", "matplotlib"):
        try:
            __import__(mod)
        except ImportError as e:
            problems.append(f"import {mod}: {e}")
    from compiler.codegen.emit_cuda import CUDA_TYPES
    from compiler.codegen.emit_cuda import emit as emit_cuda
    from compiler.codegen.emit_triton import emit as emit_triton
    from compiler.algebra.library import library_algorithm
    import compiler.codegen.backends as backends
    for name in ("torch", "triton", "cuda"):
        try:
            backends.get_backend(name)
        except Exception as e:  # noqa: BLE001
            problems.append(f"backend {name}: {e}")
    nvcc = shutil.which("nvcc")
    algs = sorted({v.algorithm for v in VARIANTS})
    with tempfile.TemporaryDirectory() as tmp:
        cu = []
        for alg in algs:
            f = library_algorithm(alg)
            emit_triton(f)  # parses the module (compile(..., "exec")) or raises
            cu += [emit_cuda(f, d).write(Path(tmp)) for d in sorted(CUDA_TYPES)]
        if nvcc:
            proc = subprocess.run([nvcc, "-arch=sm_90", "-cubin", *[p.name for p in cu]], cwd=tmp,
                                  capture_output=True, text=True)
            if proc.returncode:
                problems.append(f"nvcc: {proc.stderr[-2000:]}")
            print(f"nvcc -arch=sm_90: {len(cu)} CUDA files {'compiled' if not proc.returncode else 'FAILED'}")
        else:
            print("nvcc not on PATH: CUDA files rendered, not compiled")
    rows = plan(sizes, rectangular)
    path = out / "gpu_sweep_plan.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("mode", "dtype", "tf32", "M", "K", "N", "algorithm", "levels", "backend", "schedule"))
        for mode, (M, K, N), v in rows:
            w.writerow((mode.name, mode.dtype, mode.tf32, M, K, N, v.algorithm, v.levels, v.backend, v.schedule))
    print(f"plan: {len(rows)} measurements ({len(MODES)} modes x shapes x variants) -> {path}")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the CSV and the plot")
    ap.add_argument("--sizes", default=",".join(map(str, SQUARE)), help="square sizes N (comma-separated)")
    ap.add_argument("--no-rectangular", action="store_true", help="skip the rectangular shapes")
    ap.add_argument("--budget-s", type=float, default=300.0, help="stop starting new rows after this many seconds")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dry-run", action="store_true", help="no GPU: check inputs, render kernels, write the plan")
    ap.add_argument("--plot-only", action="store_true", help="only redraw the plot from DIR/gpu_sweep.csv")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run the measuring code path on CPU tensors (Triton under TRITON_INTERPRET=1) at tiny "
                         "sizes: proves the CSV/plot path, measures nothing meaningful")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.plot_only:
        png = plot(out / "gpu_sweep.csv", out / "speedup_vs_size.png")
        return 0 if png else 1
    if args.dry_run:
        return dry_run(out, sizes, not args.no_rectangular)
    import torch
    device = "cpu" if args.cpu_smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: use --dry-run (or --cpu-smoke)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    path = run(out, sizes, args.budget_s, args.warmup, args.reps, not args.no_rectangular, device)
    png = plot(path, out / "speedup_vs_size.png")
    print(f"wrote {path}{' and ' + str(png) if png else ''} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
