#!/usr/bin/env bash
# Per-kernel GPU time of TesseraQ steps on the 7B-shaped block, measured by Nsight Compute:
#
#   bash installers/kernel-profile.sh BUILD_DIR OUT_FILE [STEPS] [extra bench options]
#
# Runs tessera_bench_tesseraq_step (first PAR iteration, bf16, CUDA kernels) with STEPS (default 2)
# steps bracketed by cudaProfilerStart/Stop, under `ncu --profile-from-start off` with the clocks
# left alone, and prints the kernels grouped by name: calls, total and mean time, share of the step.
# ncu serialises kernels, so the sum is the step's GPU work without overlap or launch gaps.
set -u -o pipefail
BUILD_DIR="$1" OUT_FILE="$2" STEPS="${3:-2}"
shift 3 2>/dev/null || shift $#
NCU="$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)"
if [ -z "$NCU" ]; then echo "ncu not found"; exit 20; fi
"$NCU" --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  "$BUILD_DIR/tests/bench/tessera_bench_tesseraq_step" --variants bf16 --iterations 1 --warmup 2 --steps 1 \
  --profile-steps "$STEPS" --samples 32 "$@" > "$OUT_FILE.csv" 2> "$OUT_FILE.stderr"
rc=$?
python3 - "$OUT_FILE.csv" "$STEPS" <<'PY' | tee "$OUT_FILE"
import csv, sys, collections
path, steps = sys.argv[1], int(sys.argv[2])
rows = []
with open(path) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") == "gpu__time_duration.sum":
        rows.append((r["Kernel Name"], float(r["Metric Value"].replace(",", ""))))  # ncu groups thousands
total = sum(t for _, t in rows)
by = collections.defaultdict(lambda: [0, 0.0])
for name, t in rows:
    short = name.split("(")[0][:90]
    by[short][0] += 1
    by[short][1] += t
print("kernels of %d step(s): %d launches, %.3f ms GPU time per step (ncu, serialised)" % (steps, len(rows), total / steps / 1e6))
print("| kernel | launches/step | ms/step | share |")
print("|---|---|---|---|")
for name, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:40]:
    print("| %s | %g | %.3f | %.1f%% |" % (name.replace("|", "/"), n / steps, t / steps / 1e6, 100 * t / total))
PY
exit "$rc"
