#!/usr/bin/env bash
# The memory forecast against measured peaks on a CUDA device (issue 14): for each run, `tessera
# plan` (the forecast) and then the run itself, `tessera quantize --json`, which reports the
# allocator's peak of reserved segments and what the process holds on the device outside the
# allocator at its end (context, kernels, library handles). Their sum is the peak device memory
# as nvidia-smi counts it, the figure the forecast's GPU number estimates; the host figure is
# getrusage's maximum resident set. Runs one at a time, alone on the GPU.
#
#   tests/bench/forecast_gpu_table.sh BUILD_DIR DATA_DIR > table.md
#
# Models: stories260K and TinyStories-656K, and a 7B-shaped checkpoint of one decoder block
# (hidden 4096, FFN 11008, 32 heads, the Llama 2 vocabulary of 32000) that python3 with
# transformers writes with random weights (fp16) when it is there; SKIP_7B=1 leaves it out,
# SKIP_SMALL=1 leaves out stories260K and TinyStories-656K, METHODS_7B="tesseraq" runs only those
# of the 7B-shaped rows (default "rtn awq tesseraq").
set -uo pipefail
BUILD=${1:?build dir}; DATA=${2:?data dir}
TESSERA=$BUILD/app/tessera
WORK=${FORECAST_WORK:-$(mktemp -d)}
mkdir -p "$WORK"
TS=$DATA/text/tinystories/train-sample.txt
WIKI=$DATA/text/wikitext-2-raw/wiki.test.raw

make_7b() {  # one LLaMA-2-7B-shaped block with the real tokenizer
  local dir=$WORK/llama7b-1block
  [ -f "$dir/model.safetensors" ] && { echo "$dir"; return 0; }
  python3 - "$dir" <<'PY' >&2 || return 1
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
c = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=1, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
with torch.device("cpu"):
    m = LlamaForCausalLM(c).to(torch.float16)
m.save_pretrained(sys.argv[1], safe_serialization=True)
PY
  cp "$DATA/tokenizers/llama2/tokenizer.model" "$dir/"
  echo "$dir"
}

mib() { python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / 2**20))" "$1"; }

row() {  # label model calib options...
  local label=$1 model=$2 calib=$3; shift 3
  local plan run
  plan=$("$TESSERA" plan --model "$model" --calib "$calib" --device cuda "$@" --json 2>"$WORK/plan.err" | tail -n 1)
  rm -rf "$WORK/run"
  run=$("$TESSERA" quantize --model "$model" --calib "$calib" --device cuda "$@" --out "$WORK/run" --force --json \
    2>"$WORK/run.err" | tail -n 1)
  python3 - "$label" "$*" "$plan" "$run" <<'PY' || { echo "| $label | \`$*\` | failed: $(tail -n 2 "$WORK/run.err" "$WORK/plan.err" | tr '\n|' '  ') |"; }
import json, sys
label, opts, plan, run = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
M = 2 ** 20
f = plan.get("forecast", plan)
gpu_f, host_f = f["gpu_bytes"], f["host_bytes"]
gpu_m = run["peak_gpu_reserved_bytes"] + run["gpu_outside_allocator_bytes"]
host_m = run["max_rss_bytes"]
print("| %s | `%s` | %.1f | %.1f (%.1f + %.1f) | %.3f | %.1f | %.1f | %.3f | %s |" % (
    label, opts, gpu_f / M, gpu_m / M, run["peak_gpu_reserved_bytes"] / M, run["gpu_outside_allocator_bytes"] / M,
    gpu_f / gpu_m, host_f / M, host_m / M, host_f / host_m, f.get("gpu_peak_phase", "")))
PY
}

echo "Device: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1); $(date -u +%F)"
echo
echo "| model | options | GPU forecast MiB | GPU measured MiB (reserved peak + outside allocator) | ratio | host forecast MiB | host measured MiB | ratio | forecast GPU peak in |"
echo "|---|---|---|---|---|---|---|---|---|"
S=$DATA/models/stories260K/stories260K.bin
T=$DATA/models/TinyStories-656K
TQ="--method tesseraq --wbits 2 --group 32 --par-schedule paper10 --par-steps 20"
for m in $([ "${SKIP_SMALL:-0}" = 1 ] || echo "stories260K:$S TinyStories-656K:$T"); do
  name=${m%%:*}; path=${m#*:}
  for shape in "128 256" "512 512"; do
    set -- $shape
    row "$name" "$path" "$TS" --method rtn --samples "$1" --seq-len "$2"
    row "$name" "$path" "$TS" --method awq --samples "$1" --seq-len "$2"
    row "$name" "$path" "$TS" --method omniquant --epochs 1 --samples "$1" --seq-len "$2"
    # shellcheck disable=SC2086
    row "$name" "$path" "$TS" $TQ --samples "$1" --seq-len "$2"
  done
done
if [ "${SKIP_7B:-0}" != 1 ]; then
  if B7=$(make_7b); then
    for m in ${METHODS_7B:-rtn awq tesseraq}; do
      # shellcheck disable=SC2086
      case $m in
        tesseraq) row "7B-shaped block" "$B7" "$WIKI" $TQ --samples 128 --seq-len 2048 --par-steps 5 ;;
        *) row "7B-shaped block" "$B7" "$WIKI" --method "$m" --samples 128 --seq-len 2048 ;;
      esac
    done
  else
    echo "| 7B-shaped block | | could not be written (python3 with torch and transformers) |"
  fi
fi
