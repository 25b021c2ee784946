#!/usr/bin/env bash
# Issue 12's quality runs on stories260K, per-channel W2/W3 x seeds 42/43, in parallel on CUDA:
# TesseraQ with AWQ init, paper20 x 250 steps, calibration 128 x 256 from c4_validation_2k.jsonl,
# evaluation on tinystories/sample.txt with its \r removed (the official code's tokens).
#
#   bash tests/bench/quality_table.sh BUILD_DIR DATA_DIR WORK_DIR   # prints a markdown table
set -u -o pipefail
BUILD_DIR="$1" D="$2" work="$3"
exe="$BUILD_DIR/app/tessera"
rm -rf "$work"; mkdir -p "$work"
tr -d '\r' < "$D/text/tinystories/sample.txt" > "$work/sample-lf.txt"
pids=()
for bits in 2 3; do for seed in 42 43; do
  "$exe" quantize --model "$D/models/stories260K/stories260K.bin" --calib "$D/text/c4/c4_validation_2k.jsonl" \
    --method tesseraq --init awq --wbits "$bits" --group 0 --samples 128 --seq-len 256 --seed "$seed" \
    --par-schedule paper20 --par-steps 250 --device cuda --out "$work/w$bits-s$seed" --eval "$work/sample-lf.txt" \
    --json > "$work/w$bits-s$seed.json" 2> "$work/w$bits-s$seed.log" &
  pids+=($!)
done; done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
python3 - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
print("| setting | seed 42 | seed 43 |\n|---|---|---|")
for bits in (2, 3):
    row = []
    for seed in (42, 43):
        try:
            r = json.load(open(os.path.join(w, "w%d-s%d.json" % (bits, seed))))
            row.append("%.4f (%.0f s)" % (r["ppl"], r["seconds"]))
        except Exception as e:
            row.append("failed: %s" % e)
    print("| W%d per-channel | %s | %s |" % (bits, row[0], row[1]))
PY
exit "$rc"
