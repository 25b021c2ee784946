#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang with ASan + UBSan) in build-fuzz/ and runs each
# for RUNS executions (default 1,000,000) from its committed seed corpus, one harness after the
# other; a new corpus of what each run found goes to build-fuzz/corpus/. Prints one line per
# harness (executions, seconds, result) and exits non-zero on the first finding (crash, sanitizer
# report, leak, hang over 10 s, or an exception other than tessera::Error).
#
#   bash tests/fuzz/run_fuzzers.sh [RUNS] [HARNESS...]     (TESSERA_FUZZ_OPT=-O0: a faster build)
set -u -o pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS="${1:-1000000}"; shift || true
HARNESSES=("$@"); [ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=(gguf safetensors hf_tokenizer llama2c_tokenizer run_config llama_config)
BUILD="${TESSERA_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
mkdir -p "$BUILD"
cmake -S "$ROOT/tests/fuzz" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTESSERA_FUZZ_OPT="${TESSERA_FUZZ_OPT:--O1}" > "$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 2; }
cmake --build "$BUILD" -j "$(nproc)" > "$BUILD/build.log" 2>&1 || { tail -n 30 "$BUILD/build.log"; exit 2; }
echo "| harness | executions | seconds | exec/s | result |"
echo "|---|---|---|---|---|"
status=0
for h in "${HARNESSES[@]}"; do
  mkdir -p "$BUILD/corpus/$h"
  log="$BUILD/fuzz_$h.log"
  t0=$(date +%s)
  # -rss_limit_mb: a parser that tries to allocate an absurd size is a finding too.
  (cd "$BUILD" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "./fuzz_$h" -runs="$RUNS" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "corpus/$h" "$ROOT/tests/fuzz/corpus/$h") > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  if [ "$rc" -eq 0 ]; then result="no finding"; else result="FINDING (exit $rc, see $log)"; status=1; fi
  echo "| $h | ${execs:-?} | $secs | $(( ${execs:-0} / (secs > 0 ? secs : 1) )) | $result |"
  [ "$rc" -ne 0 ] && grep -m 5 -E 'ERROR|finding|SUMMARY|Test unit written' "$log" | sed 's/^/    /'
done
exit "$status"
