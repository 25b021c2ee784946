#!/usr/bin/env bash
# Issue 13's table: runs quantized onto GGUF block grids (--target) and exported to those blocks,
# RTN vs AWQ vs TesseraQ (the cpu-quick preset's schedule), perplexity on tinystories/sample.txt
# measured by Tessera on the run and by llama.cpp itself on the exported file (windows of 512).
#
#   bash tests/bench/gguf_target_table.sh BUILD_DIR DATA_DIR WORK_DIR   # prints a markdown table
#
# MODELS (default "stories260K TinyStories-656K"), TARGETS (default the five 32-weight types),
# METHODS (default "rtn awq tesseraq"). The k-quants need rows of 256: MODELS=stories260K-wide
# TARGETS="gguf-q2_k gguf-q3_k gguf-q4_k gguf-q6_k" uses stories260K widened with zeros to rows of
# 256 (tests/support/synthetic_model.h, written by build/tests/bench/tessera_write_wide_model).
set -u -o pipefail
BUILD_DIR="$(cd "$1" && pwd)" D="$(cd "$2" && pwd)" work="$3"
MODELS="${MODELS:-stories260K TinyStories-656K}"
TARGETS="${TARGETS:-gguf-q4_0 gguf-q4_1 gguf-q5_0 gguf-q5_1 gguf-q8_0}"
METHODS="${METHODS:-rtn awq tesseraq}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exe="$BUILD_DIR/app/tessera"
text="$D/text/tinystories/sample.txt"
rm -rf "$work"; mkdir -p "$work"
model_path() {
  case "$1" in
    stories260K) echo "$D/models/stories260K/stories260K.bin" ;;
    stories260K-wide) TESSERA_SHARED_DIR="$(dirname "$D")" "$BUILD_DIR/tests/bench/tessera_write_wide_model" "$work/wide" ;;
    *) echo "$D/models/$1" ;;
  esac
}
echo "| model | target | method | Tessera ppl (run) | llama.cpp ppl (file) | relative | file bytes | run s |"
echo "|---|---|---|---|---|---|---|---|"
for m in $MODELS; do
  for t in $TARGETS; do
    for method in $METHODS; do
      name="$m-$t-$method"
      preset=(); [ "$method" = tesseraq ] && preset=(--preset cpu-quick)
      t0=$(date +%s.%N)
      if ! "$exe" quantize --model "$(model_path "$m")" --calib "$D/text/tinystories/train-sample.txt" \
          "${preset[@]}" --method "$method" --target "$t" --samples 16 --seq-len 128 --seed 42 \
          --out "$work/$name" --json > "$work/$name.quantize.json" 2> "$work/$name.log"; then
        echo "| $m | $t | $method | quantize failed: $(tail -n 1 "$work/$name.log") | | | | |"; continue
      fi
      secs=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")
      "$exe" export --run "$work/$name" --format "$t" --out "$work/$name.gguf" >> "$work/$name.log" 2>&1 ||
        { echo "| $m | $t | $method | export failed: $(tail -n 1 "$work/$name.log") | | | | |"; continue; }
      run_ppl=$("$exe" eval --run "$work/$name" --text "$text" --seq-len 512 --json 2>> "$work/$name.log" |
                python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["ppl"])')
      llama_ppl=$(cd "$ROOT/tests/llama_cpp" && node llama_check.mjs --model "$work/$name.gguf" --text "$text" --window 512 \
                  2>> "$work/$name.log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["ppl"])')
      python3 - "$m" "$t" "$method" "$run_ppl" "$llama_ppl" "$(stat -c %s "$work/$name.gguf")" "$secs" <<'PY'
import sys
m, t, method, a, b, size, secs = sys.argv[1:]
a, b = float(a), float(b)
print(f"| {m} | {t} | {method} | {a:.6f} | {b:.6f} | {abs(b / a - 1):.1e} | {size} | {secs} |")
PY
    done
  done
done
