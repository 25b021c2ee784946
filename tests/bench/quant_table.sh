#!/usr/bin/env bash
# Perplexity table for stories260K: FP, and RTN / AWQ at W8, W4, W3, W2 for group 32 and
# per-channel. Calibration: 128 windows of 512 tokens from TinyStories train text (seed 42);
# evaluation: the TinyStories validation sample, windows of 512.
#
#   tests/bench/quant_table.sh BUILD_DIR DATA_DIR DEVICE [BITS...] [-- GROUPS...]
# e.g. tests/bench/quant_table.sh build ../shared/data cpu
#      tests/bench/quant_table.sh build-gpu .gpu-deps/data cuda 3 -- 32
set -euo pipefail
BUILD=${1:?build dir}; DATA=${2:?data dir}; DEVICE=${3:?device}; shift 3
BITS=(); GROUPS_=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do BITS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
while [ $# -gt 0 ]; do GROUPS_+=("$1"); shift; done
[ ${#BITS[@]} -gt 0 ] || BITS=(8 4 3 2)
[ ${#GROUPS_[@]} -gt 0 ] || GROUPS_=(32 0)
TESSERA=$BUILD/app/tessera
MODEL=$DATA/models/stories260K/stories260K.bin
CALIB=$DATA/text/tinystories/train-sample.txt
[ -f "$CALIB" ] || CALIB=$DATA/text/tinystories/sample.txt
EVAL=$DATA/text/tinystories/sample.txt
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ppl() { python3 -c 'import json,sys; print("%.4f" % json.loads(sys.stdin.readlines()[-1])["ppl"])'; }

FP=$("$TESSERA" eval --model "$MODEL" --text "$EVAL" --device "$DEVICE" --json 2>/dev/null | ppl)
echo "stories260K, calibration $(basename "$CALIB") 128 x 512 (seed 42), eval $(basename "$EVAL") (windows of 512), device $DEVICE"
echo "FP ppl: $FP"
echo
echo "| bits | group | RTN ppl | AWQ ppl | AWQ <= RTN |"
echo "|---|---|---|---|---|"
for g in "${GROUPS_[@]}"; do
  for b in "${BITS[@]}"; do
    row=()
    for m in rtn awq; do
      out=$WORK/$m-w$b-g$g
      t0=$(date +%s)
      p=$("$TESSERA" quantize --model "$MODEL" --calib "$CALIB" --method "$m" --wbits "$b" --group "$g" \
           --samples 128 --seq-len 512 --seed 42 --device "$DEVICE" --out "$out" --eval "$EVAL" --json 2>/dev/null | ppl)
      row+=("$p")
      echo "  $m W$b g$g: ppl $p ($(( $(date +%s) - t0 )) s)" >&2
    done
    label=$([ "$g" = 0 ] && echo per-channel || echo "$g")
    ok=$(python3 -c "print('yes' if ${row[1]} <= ${row[0]} else 'NO')")
    echo "| W$b | $label | ${row[0]} | ${row[1]} | $ok |"
  done
done
