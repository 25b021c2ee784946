#!/usr/bin/env bash
# Issue 12's quality runs on stories260K, per-channel, in parallel on CUDA: TesseraQ with AWQ init,
# paper20 x 250 steps, calibration 128 x 256 from c4_validation_2k.jsonl, evaluation on
# tinystories/sample.txt with its \r removed (the official code's tokens).
#
#   bash tests/bench/quality_table.sh BUILD_DIR DATA_DIR WORK_DIR   # prints a markdown table
#
# BITS (default "2 3") and SEEDS (default "42 43") choose the runs, one row per bit width with the
# mean and sample standard deviation over the seeds. REPEAT_FIRST=1 runs the first (bits, seed)
# a second time and says whether the two perplexities are bit-identical (GPU reproducibility).
set -u -o pipefail
BUILD_DIR="$1" D="$2" work="$3"
BITS="${BITS:-2 3}" SEEDS="${SEEDS:-42 43}" REPEAT_FIRST="${REPEAT_FIRST:-0}"
exe="$BUILD_DIR/app/tessera"
rm -rf "$work"; mkdir -p "$work"
tr -d '\r' < "$D/text/tinystories/sample.txt" > "$work/sample-lf.txt"
run() {  # bits seed name
  "$exe" quantize --model "$D/models/stories260K/stories260K.bin" --calib "$D/text/c4/c4_validation_2k.jsonl" \
    --method tesseraq --init awq --wbits "$1" --group 0 --samples 128 --seq-len 256 --seed "$2" \
    --par-schedule paper20 --par-steps 250 --device cuda --out "$work/$3" --eval "$work/sample-lf.txt" \
    --json > "$work/$3.json" 2> "$work/$3.log"
}
pids=()
for bits in $BITS; do for seed in $SEEDS; do run "$bits" "$seed" "w$bits-s$seed" & pids+=($!); done; done
if [ "$REPEAT_FIRST" = 1 ]; then
  set -- $BITS; b="$1"; set -- $SEEDS; s="$1"
  run "$b" "$s" "repeat-w$b-s$s" & pids+=($!)
fi
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
python3 - "$work" "$BITS" "$SEEDS" <<'PY'
import glob, json, os, statistics, sys
w, bits, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def ppl(name):
    try:
        return json.load(open(os.path.join(w, name + ".json")))["ppl"]
    except Exception as e:
        return None
print("| setting | " + " | ".join("seed " + s for s in seeds) + " | mean | sd |")
print("|---|" + "---|" * (len(seeds) + 2))
for b in bits:
    vals = [ppl("w%s-s%s" % (b, s)) for s in seeds]
    ok = [v for v in vals if v is not None]
    cells = ["%.4f" % v if v is not None else "failed" for v in vals]
    mean = "%.4f" % statistics.mean(ok) if ok else "-"
    sd = "%.4f" % statistics.stdev(ok) if len(ok) > 1 else "-"
    print("| W%s per-channel | %s | %s | %s |" % (b, " | ".join(cells), mean, sd))
for f in sorted(glob.glob(os.path.join(w, "repeat-*.json"))):
    name = os.path.basename(f)[len("repeat-"):-len(".json")]
    a, r = ppl(name), ppl("repeat-" + name)
    print("\nrepeat of %s: %r vs %r: %s" % (name, a, r, "bit-identical" if a == r and a is not None else "DIFFERENT"))
PY
exit "$rc"
