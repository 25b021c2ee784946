#!/usr/bin/env bash
# Export table for stories260K: RTN runs at the given bit widths with group 32, each exported in
# every format the run can be held in (`tessera export --formats`), at --dtype fp32 and fp16; for
# each export its size on disk, the self-check line and the perplexity of the export re-imported
# with `tessera eval --model` next to the run's own (`tessera eval --run`). Unavailable formats are
# listed with their reason.
#
#   tests/bench/export_table.sh BUILD_DIR DATA_DIR [BITS...]      (default bits: 4 2)
set -euo pipefail
BUILD=${1:?build dir}; DATA=${2:?data dir}; shift 2
BITS=("$@"); [ ${#BITS[@]} -gt 0 ] || BITS=(4 2)
TESSERA=$BUILD/app/tessera
MODEL=$DATA/models/stories260K/stories260K.bin
CALIB=$DATA/text/tinystories/train-sample.txt
EVAL=$DATA/text/tinystories/sample.txt
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ppl() { python3 -c 'import json,sys; print("%.9f" % json.loads(sys.stdin.readlines()[-1])["ppl"])'; }
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readlines()[-1])[sys.argv[1]])' "$1"; }

for B in "${BITS[@]}"; do
  RUN=$WORK/w$B
  "$TESSERA" quantize --model "$MODEL" --calib "$CALIB" --out "$RUN" --method rtn --wbits "$B" --group 32 \
    --samples 4 --seq-len 64 --json >/dev/null 2>&1
  RUN_PPL=$("$TESSERA" eval --run "$RUN" --text "$EVAL" --json 2>/dev/null | ppl)
  echo "### W$B g32 RTN: run ppl $RUN_PPL"
  echo
  echo "| format | dtype | bytes | re-imported ppl | = run | not converted | self-check |"
  echo "|---|---|---|---|---|---|---|"
  "$TESSERA" export --run "$RUN" --formats --json 2>/dev/null > "$WORK/formats.json"
  for F in $(python3 -c 'import json,sys; print(" ".join(f["id"] for f in json.load(open(sys.argv[1])) if f["available"]))' "$WORK/formats.json"); do
    for D in fp32 fp16; do
      # GGUF formats fix their own tensor types: one export each.
      case $F in gguf-*) if [ $D = fp16 ]; then continue; fi; OUT=$WORK/w$B-$F.gguf ;; *) OUT=$WORK/w$B-$F-$D ;; esac
      "$TESSERA" export --run "$RUN" --out "$OUT" --format "$F" --dtype "$D" --json 2>/dev/null > "$WORK/e.json"
      P=$("$TESSERA" eval --model "$OUT" --text "$EVAL" --json 2>/dev/null | ppl)
      EQ=$([ "$P" = "$RUN_PPL" ] && echo yes || echo no)
      echo "| $F | $(field dtype < "$WORK/e.json") | $(field bytes < "$WORK/e.json") | $P | $EQ | $(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["not_converted"]))' < "$WORK/e.json") | $(field self_check_report < "$WORK/e.json") |"
    done
  done
  echo
  python3 -c 'import json,sys
for f in json.load(open(sys.argv[1])):
    if not f["available"]: print("- %s unavailable: %s" % (f["id"], f["reason"]))' "$WORK/formats.json"
  echo
done
