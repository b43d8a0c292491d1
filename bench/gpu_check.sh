#!/usr/bin/env bash
# One command for a GPU machine: every GPU-marked test, then the benchmark sweep, results in OUTDIR.
#
#   bash bench/gpu_check.sh OUTDIR
#
# Needs only the machine's own torch, triton and cupy (plus jinja2/numpy, and matplotlib for the
# plot). Budgeted to finish in under 8 minutes on an H100: tests <= 200 s, sweep <= 230 s of
# measurements (killed at 260 s; rows are flushed as they finish), plot, summary.
# Without a CUDA GPU it does a DRY RUN: says so, checks its own inputs (imports, that the sweep
# script parses, that every kernel renders and the .cu files compile with nvcc -arch=sm_90 when
# nvcc is present, that the GPU tests are collected), writes DRY_RUN and the plan into OUTDIR,
# and exits 0 when all of that is fine.
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash bench/gpu_check.sh OUTDIR" >&2
    exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1" || exit 2
OUT="$(cd "$1" && pwd)"
cd "$REPO" || exit 2
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
LOG="$OUT/gpu_check.log"
: > "$LOG"
log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
fail=0
step() {  # step NAME CMD...: run, log the exit status, remember a failure
    local name=$1; shift
    log "$name: $*"
    "$@" >> "$LOG" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then log "$name: FAILED (exit $rc)"; fail=1; else log "$name: ok"; fi
    return $rc
}

"$PY" - > "$OUT/environment.txt" 2>&1 <<'PYEOF'
import datetime, platform, torch
print("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda)
for mod in ("triton", "cupy", "jinja2", "numpy", "matplotlib"):
    try:
        print(mod, __import__(mod).__version__)
    except Exception as e:  # recorded: a missing optional package is information, not a crash
        print(mod, "unavailable:", type(e).__name__, e)
print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
PYEOF
if [ $? -ne 0 ]; then log "cannot import torch: see $OUT/environment.txt"; exit 1; fi

if [ "$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')" != 1 ]; then
    log "no CUDA GPU on this machine: DRY RUN (checks the inputs, measures nothing)"
    step "sweep script parses" "$PY" -m py_compile bench/gpu_sweep.py
    step "sweep dry run (imports, kernels render, nvcc -arch=sm_90 if present, plan)" \
        "$PY" bench/gpu_sweep.py --out "$OUT" --dry-run
    step "GPU tests are collected" "$PY" -m pytest -m gpu --collect-only -q -p no:cacheprovider tests bench
    n_tests=$(grep -c "::" "$LOG" || true)
    {
        echo "DRY RUN on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ): no CUDA GPU, nothing measured."
        echo "GPU tests collected: $n_tests"
        echo "planned sweep rows: $(($(wc -l < "$OUT/gpu_sweep_plan.csv" 2>/dev/null || echo 1) - 1))"
        echo "checks: $([ $fail -eq 0 ] && echo all passed || echo SOME FAILED, see gpu_check.log)"
    } > "$OUT/DRY_RUN"
    cat "$OUT/DRY_RUN" | tee -a "$LOG"
    exit $fail
fi

log "GPU: $("$PY" -c 'import torch; print(torch.cuda.get_device_name())')"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
step "GPU tests" timeout 200 "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs tests bench \
    --junitxml "$OUT/gpu_tests.xml"
step "benchmark sweep" timeout 260 "$PY" bench/gpu_sweep.py --out "$OUT" --budget-s 230
step "plot" "$PY" bench/gpu_sweep.py --out "$OUT" --plot-only
"$PY" - "$OUT/gpu_sweep.csv" <<'PYEOF' | tee "$OUT/summary.txt" | tee -a "$LOG"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "ok"]
print(f"{len(rows)} measurements ok")
for mode in ("fp32", "fp64", "bf16", "tf32"):
    sub = [r for r in rows if r["mode"] == mode]
    if sub:
        best = max(sub, key=lambda r: float(r["speedup"]))
        print(f"{mode}: best {float(best['speedup']):.3f}x torch.matmul at {best['M']}x{best['K']}x{best['N']} "
              f"({best['algorithm']} L{best['levels']} {best['backend']}/{best['schedule']}, rel_err {best['rel_err']})")
PYEOF
log "done: results in $OUT (exit $fail)"
exit $fail
