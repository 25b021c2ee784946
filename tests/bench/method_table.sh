#!/usr/bin/env bash
# The issue-4 table: stories260K at W2 and W3, group 32 and per-channel, one calibration set for
# every method (128 x 512 tokens of TinyStories train text, seed 42), perplexity on the TinyStories
# validation sample (windows of 512): RTN, AWQ, OmniQuant (LWC; 40 epochs at W2 with the
# augmented loss, 20 at W3), TesseraQ with AWQ init and with OmniQuant init (paper20 schedule,
# STEPS Adam steps per PAR iteration, batch 4). The runs are independent and go in parallel
# (JOBS at a time); every run's wall time is reported.
#
#   tests/bench/method_table.sh BUILD_DIR DATA_DIR DEVICE [STEPS] [JOBS]
# e.g. tests/bench/method_table.sh build-gpu .gpu-deps/data cuda 250 8
# TABLE_BITS="2" limits the table to those weight bits (default "2 3").
# TABLE_ONLY=REGEX runs only the matching runs (names like tq_awq-w3-g32, omniquant-w2-g0).
# OQ_EPOCHS=N overrides OmniQuant's epochs (a quick smoke run of this script).
set -uo pipefail
BUILD=${1:?build dir}; DATA=${2:?data dir}; DEVICE=${3:?device}; STEPS=${4:-250}; JOBS=${5:-4}
TESSERA=$BUILD/app/tessera
MODEL=$DATA/models/stories260K/stories260K.bin
CALIB=$DATA/text/tinystories/train-sample.txt
EVAL=$DATA/text/tinystories/sample.txt
WORK=${TABLE_WORK:-$(mktemp -d)}
mkdir -p "$WORK"
EPOCHS_ARG=${OQ_EPOCHS:+--epochs $OQ_EPOCHS}

run_one() {  # name method wbits group [extra args...]
  local name=$1 method=$2 bits=$3 group=$4; shift 4
  local t0=$(date +%s.%N)
  "$TESSERA" quantize --model "$MODEL" --calib "$CALIB" --method "$method" --wbits "$bits" --group "$group" \
    --samples 128 --seq-len 512 --seed 42 --device "$DEVICE" --out "$WORK/$name" --eval "$EVAL" --json "$@" \
    > "$WORK/$name.json" 2> "$WORK/$name.log"
  local rc=$?
  echo "$name rc=$rc $(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s" >&2
}
export -f run_one
export TESSERA MODEL CALIB EVAL WORK DEVICE

jobs_list() {
  for b in ${TABLE_BITS:-2 3}; do
    for g in 32 0; do
      echo "rtn-w$b-g$g rtn $b $g"
      echo "awq-w$b-g$g awq $b $g"
      echo "omniquant-w$b-g$g omniquant $b $g $EPOCHS_ARG"
      echo "tq_awq-w$b-g$g tesseraq $b $g --init awq --par-schedule paper20 --par-steps $STEPS"
      echo "tq_omniquant-w$b-g$g tesseraq $b $g --init omniquant --par-schedule paper20 --par-steps $STEPS $EPOCHS_ARG"
    done
  done
}
# Longest jobs first so that the parallel runs finish together.
# (sed: xargs -L joins a line that ends in a blank with the next one)
jobs_list | sed 's/ *$//' | grep -E "^(${TABLE_ONLY:-.*}) " | sort -r -t' ' -k2,2 | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _

FP=$("$TESSERA" eval --model "$MODEL" --text "$EVAL" --device "$DEVICE" --json 2>/dev/null | python3 -c 'import json,sys; print("%.4f" % json.loads(sys.stdin.readlines()[-1])["ppl"])')
python3 - "$WORK" "$FP" "$STEPS" "$DEVICE" "${TABLE_BITS:-2 3}" "${OQ_EPOCHS:-}" <<'PY'
import json, os, sys
work, fp, steps, device = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
oq_epochs = sys.argv[6]
bits = [int(b) for b in sys.argv[5].split()]
def res(name):
    try:
        with open(os.path.join(work, name + ".json")) as f:
            j = json.loads(f.read().strip().splitlines()[-1])
        return j["ppl"], j["seconds"]
    except Exception:
        return None, None
print(f"stories260K, calibration 128 x 512 TinyStories train (seed 42), eval TinyStories sample (windows of 512), FP ppl {fp}, device {device}")
oq = f"{oq_epochs} epochs" if oq_epochs else "40 epochs (W2) / 20 epochs (W3)"
print(f"OmniQuant: {oq}, augmented loss at W2; TesseraQ: paper20 x {steps} steps, batch 4")
print()
methods = ["rtn", "awq", "omniquant", "tq_awq", "tq_omniquant"]
print("| setting | RTN | AWQ | OmniQuant | TesseraQ (AWQ init) | TesseraQ (OmniQuant init) | TesseraQ best < every baseline |")
print("|---|---|---|---|---|---|---|")
for b in bits:
    for g in (32, 0):
        vals = [res(f"{m}-w{b}-g{g}") for m in methods]
        cells = ["%.2f (%.0f s)" % v if v[0] is not None else "failed" for v in vals]
        ok = "n/a"
        if all(v[0] is not None for v in vals):
            ok = "yes" if min(vals[3][0], vals[4][0]) < min(v[0] for v in vals[:3]) else "NO"
        label = f"W{b} " + ("g32" if g else "per-channel")
        print(f"| {label} | " + " | ".join(cells) + f" | {ok} |")
PY
