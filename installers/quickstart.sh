#!/usr/bin/env bash
# The README's first quick-start command: installs the Debian packages, builds Tessera, fetches the
# default demo model (stories260K) and runs the main job on it: architecture, greedy generation,
# perplexity on TinyStories text, and a 4-bit AWQ quantization with its perplexity, on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash installers/install-deps-debian.sh
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
# libtorch's OpenMP threads spin while they wait; on a busy 2-core machine that made AWQ blocks take
# 45 s instead of 3 s. Passive waiting costs nothing measurable on a quiet machine.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTESSERA_GUI=ON
cmake --build build -j "$(nproc)" --target tessera tessera-workbench

# The demo model: from ../shared/data when present, else downloaded from the public
# karpathy/tinyllamas repository and checked against the checksums kept in resources/demo.
MODEL_DIR=../shared/data/models/stories260K
if [ ! -f "$MODEL_DIR/stories260K.bin" ]; then
  MODEL_DIR=$ROOT/.demo/stories260K
  mkdir -p "$MODEL_DIR"
  for f in stories260K.bin tok512.bin; do
    if [ ! -f "$MODEL_DIR/$f" ]; then
      echo "tessera: downloading $f"
      curl -fL --retry 3 -o "$MODEL_DIR/$f.part" "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/$f"
      mv "$MODEL_DIR/$f.part" "$MODEL_DIR/$f"
    fi
  done
  (cd "$MODEL_DIR" && sha256sum -c "$ROOT/resources/demo/stories260K.sha256") || {
    echo "tessera: checksum mismatch for the downloaded demo model; delete $MODEL_DIR and retry" >&2
    exit 1
  }
fi
TEXT=../shared/data/text/tinystories/sample.txt
[ -f "$TEXT" ] || TEXT=$ROOT/resources/demo/stories.txt

CALIB=../shared/data/text/tinystories/train-sample.txt
[ -f "$CALIB" ] || CALIB=$TEXT

TESSERA=$ROOT/build/app/tessera
echo; echo "== tessera info"; "$TESSERA" info --model "$MODEL_DIR/stories260K.bin"
echo; echo "== tessera generate (greedy)"; "$TESSERA" generate --model "$MODEL_DIR/stories260K.bin" --max-tokens 120
echo; echo "== tessera eval ($TEXT)"; "$TESSERA" eval --model "$MODEL_DIR/stories260K.bin" --text "$TEXT" --batch 4
# The main job: TesseraQ at 2 bits against its AWQ initialisation, same calibration, then the
# TesseraQ run exported as a GPTQ folder (self-checked against the run's codes) and scored again.
for METHOD in awq tesseraq; do
  echo; echo "== tessera quantize: $METHOD W2 g32 (preset cpu-quick: 16 x 128 calibration tokens), then perplexity"
  rm -rf "$ROOT/.demo/run-$METHOD-w2g32"
  "$TESSERA" quantize --model "$MODEL_DIR/stories260K.bin" --calib "$CALIB" --preset cpu-quick --method "$METHOD" \
    --out "$ROOT/.demo/run-$METHOD-w2g32" --eval "$TEXT"
done
echo; echo "== tessera export: the TesseraQ run as GPTQ (fp32 scales), then its perplexity"
"$TESSERA" export --run "$ROOT/.demo/run-tesseraq-w2g32" --out "$ROOT/.demo/tesseraq-w2g32-gptq" --format gptq \
  --dtype fp32 --force
"$TESSERA" eval --model "$ROOT/.demo/tesseraq-w2g32-gptq" --text "$TEXT"
echo
echo "GUI: $ROOT/build/app/workbench/tessera-workbench --model $MODEL_DIR/stories260K.bin --text $TEXT"
