"""Turn saved benchmark runs into markdown tables and plots.

    python -m bench.report RESULTS.json [MORE.json ...] [--out DIR]

Reads pytest-benchmark JSON files written by ``pytest bench/ --benchmark-only
--benchmark-json=RESULTS.json``. Prints (and writes to ``DIR/report.md``) one table of speed
ratios, fastmm.matmul against torch.matmul per shape, and one table of accuracy per plan and
dtype; draws ``speedup_vs_size.png`` and ``error_vs_levels.png`` with matplotlib (the ``plot``
extra). The speedup column is the paired ratio recorded by bench_matmul.py (median over fastmm's
rounds of the torch.matmul rounds timed just before and after it / that fastmm round); the ratio of the two entries' separately timed medians is shown
next to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def _load(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        for bench in data.get("benchmarks", []):
            bench["_file"] = str(path)
            bench["_datetime"] = data.get("datetime", "")
            rows.append(bench)
    return rows


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def speed_rows(benchmarks: list[dict]) -> list[dict]:
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for b in benchmarks:
        impl = b.get("extra_info", {}).get("impl")
        if impl in ("torch.matmul", "fastmm.matmul"):
            groups[b["group"]][impl] = b
    rows = []
    for group, entries in groups.items():
        ours, theirs = entries.get("fastmm.matmul"), entries.get("torch.matmul")
        if ours is None:
            continue
        info = ours["extra_info"]
        calls = info.get("calls_per_round", 1)
        t_ours = ours["stats"]["median"] / calls
        t_theirs = theirs["stats"]["median"] / calls if theirs else None
        t_inter = info.get("torch_median_interleaved_s")
        rows.append({
            "device": info.get("device", "?"), "dtype": info.get("dtype", "?"), "n": info.get("n", 0),
            "precision": info.get("precision", "?"), "threads": info.get("threads", "?"),
            "torch_s": t_theirs, "torch_interleaved_s": t_inter / calls if t_inter else None, "fastmm_s": t_ours,
            "speedup": info.get("speedup"), "speedup_min": info.get("speedup_min"),
            "speedup_separate": (t_theirs / t_ours) if t_theirs else None,
            "rounds": ours["stats"].get("rounds"), "plan": info.get("plan", "?"), "load": info.get("loadavg_1m"),
            "torch_version": info.get("torch", "?"), "date": info.get("date", ""),
        })
    return sorted(rows, key=lambda r: (r["device"], r["dtype"], r["n"]))


def accuracy_rows(benchmarks: list[dict]) -> list[dict]:
    rows = [b["extra_info"] for b in benchmarks if b.get("extra_info", {}).get("impl") == "accuracy"]
    return sorted(rows, key=lambda r: (r["dtype"], r["algorithm"], r["levels"]))


def speed_table(rows: list[dict]) -> str:
    out = ["| device | dtype | N | torch.matmul | fastmm.matmul | speedup (paired rounds, median) "
           "| speedup (interleaved mins) | speedup (separate medians) | rounds | plan | load (1 min) |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        torch_t = r["torch_interleaved_s"] or r["torch_s"]
        sep = f"{r['speedup_separate']:.3f}×" if r["speedup_separate"] else "–"
        spd = f"**{r['speedup']:.3f}×**" if r["speedup"] else "–"
        spd_min = f"{r['speedup_min']:.3f}×" if r.get("speedup_min") else "–"
        load = f"{r['load']:.1f}" if r["load"] is not None else "–"
        out.append(f"| {r['device']} | {r['dtype']} ({r['precision']}) | {r['n']} | {_fmt_time(torch_t)} | "
                   f"{_fmt_time(r['fastmm_s'])} | {spd} | {spd_min} | {sep} | {r['rounds']} | `{r['plan']}` | {load} |")
    return "\n".join(out)


def accuracy_table(rows: list[dict]) -> str:
    out = ["| dtype | algorithm | levels | rel. error | torch.matmul error | ratio | predicted growth | bound "
           "| planner |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        out.append(f"| {r['dtype']} | {r['algorithm']} | {r['levels']} | {r['error']:.2e} | {r['torch_error']:.2e} | "
                   f"{r['error_ratio']:.2f} | {r['predicted_growth']:.3g} | {r['bound']:.3g} | "
                   f"{'allowed' if r['allowed'] else 'refused'} |")
    return "\n".join(out)


def plot(speed: list[dict], accuracy: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    if speed:
        fig, ax = plt.subplots(figsize=(6, 4))
        series = defaultdict(list)
        for r in speed:
            if r["speedup"]:
                series[f"{r['device']} {r['dtype']}"].append((r["n"], r["speedup"]))
        for label, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (square N×N @ N×N)")
        ax.set_ylabel("speedup vs torch.matmul")
        ax.set_title("fastmm.matmul speedup")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "speedup_vs_size.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    if accuracy:
        dtypes = sorted({r["dtype"] for r in accuracy})
        fig, axes = plt.subplots(1, len(dtypes), figsize=(4 * len(dtypes), 3.6), squeeze=False)
        for ax, dt in zip(axes[0], dtypes):
            rows = [r for r in accuracy if r["dtype"] == dt]
            for alg in sorted({r["algorithm"] for r in rows}):
                pts = sorted((r["levels"], r["error"]) for r in rows if r["algorithm"] == alg)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=alg)
            ax.axhline(rows[0]["torch_error"], color="black", ls="--", lw=0.8, label="torch.matmul")
            ax.set_yscale("log")
            ax.set_xlabel("levels")
            ax.set_title(dt)
        axes[0][0].set_ylabel("relative error vs float64")
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        path = out / "error_vs_levels.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="pytest-benchmark JSON files")
    parser.add_argument("--out", type=Path, default=None, help="folder for report.md and plots")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    benchmarks = _load(args.results)
    speed, accuracy = speed_rows(benchmarks), accuracy_rows(benchmarks)
    if not speed and not accuracy:
        print(f"no fastmm benchmark entries in {', '.join(map(str, args.results))}", file=sys.stderr)
        return 1
    out = args.out or args.results[0].with_name(args.results[0].stem + "_report")
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    if speed:
        first = speed[0]
        parts.append(f"### Speed: fastmm.matmul vs torch.matmul\n\n{first['device']}, torch {first['torch_version']}, "
                     f"{first['threads']} threads, {first['date']}\n\n" + speed_table(speed))
    if accuracy:
        parts.append("### Accuracy: normwise relative error vs a float64 reference\n\n" + accuracy_table(accuracy))
    text = "\n\n".join(parts) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    if not args.no_plots:
        for path in plot(speed, accuracy, out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
