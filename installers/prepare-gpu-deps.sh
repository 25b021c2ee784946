#!/usr/bin/env bash
# Fills .gpu-deps/ (git-ignored) in the repository root with what the GPU machine lacks, so that it
# can be carried there: header-only spdlog/fmt/nlohmann-json and the SentencePiece header (include/),
# Debian's libsentencepiece (lib/), the shared test data the GPU tests read (data/, same layout as
# ../shared/data, so TESSERA_SHARED_DIR=$PWD/.gpu-deps works) and the reference benchmark (bench/).
#
# Run here, on Debian 12 with the packages of install-deps-debian.sh. Idempotent: the folder is
# rebuilt from scratch on every run.
#
#   bash installers/prepare-gpu-deps.sh                          # all of ../shared/data (~22 MiB in all)
#   TESSERA_GPU_DATA=minimal bash installers/prepare-gpu-deps.sh # only the files gpu-run.sh itself reads
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${TESSERA_SHARED_SOURCE:-$ROOT/../shared}"
DEST="$ROOT/.gpu-deps"
LIBDIR="${TESSERA_LIBDIR:-/usr/lib/x86_64-linux-gnu}"
INCDIR="${TESSERA_INCDIR:-/usr/include}"
LIMIT_MIB=40

errors=0
fail() { echo "prepare-gpu-deps: ERROR: $*" >&2; errors=$((errors + 1)); }
say() { echo "prepare-gpu-deps: $*"; }

if [ ! -d "$SHARED/data" ]; then
  echo "prepare-gpu-deps: ERROR: $SHARED/data not found (set TESSERA_SHARED_SOURCE)" >&2
  exit 1
fi
SHARED="$(cd "$SHARED" && pwd)"

# Rebuild in a temporary folder beside the destination, then swap, so a failed run never leaves a
# half-filled .gpu-deps behind.
TMP="$ROOT/.gpu-deps.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP/include" "$TMP/lib" "$TMP/data" "$TMP/bench"
trap 'rm -rf "$TMP"' EXIT

# ---- headers -------------------------------------------------------------------------------------
for d in spdlog fmt nlohmann; do
  if [ -d "$INCDIR/$d" ]; then
    cp -r "$INCDIR/$d" "$TMP/include/"
  else
    fail "$INCDIR/$d missing (install libspdlog-dev libfmt-dev nlohmann-json3-dev)"
  fi
done
if [ -f "$INCDIR/sentencepiece_processor.h" ]; then
  cp "$INCDIR/sentencepiece_processor.h" "$TMP/include/"
else
  fail "$INCDIR/sentencepiece_processor.h missing (install libsentencepiece-dev)"
fi
# fmt in header-only mode (FMT_HEADER_ONLY) needs format-inl.h beside format.h; nothing from src/.
[ -f "$TMP/include/fmt/format-inl.h" ] || fail "fmt/format-inl.h missing: fmt cannot be used header-only"
# spdlog must use the external fmt copied above (Debian's tweakme.h says so; CMake defines it too).
if [ -f "$TMP/include/spdlog/tweakme.h" ] && ! grep -q '^#define SPDLOG_FMT_EXTERNAL' "$TMP/include/spdlog/tweakme.h"; then
  say "note: spdlog/tweakme.h does not define SPDLOG_FMT_EXTERNAL; CMake passes -DSPDLOG_FMT_EXTERNAL"
fi

# ---- SentencePiece library ----------------------------------------------------------------------
SPM_REAL="$(readlink -f "$LIBDIR/libsentencepiece.so.0" 2>/dev/null || true)"
if [ -n "$SPM_REAL" ] && [ -f "$SPM_REAL" ]; then
  cp "$SPM_REAL" "$TMP/lib/libsentencepiece.so.0"
  ln -s libsentencepiece.so.0 "$TMP/lib/libsentencepiece.so"
  # It should need nothing beyond the C/C++ runtime (it carries its own protobuf-lite).
  needed="$(objdump -p "$TMP/lib/libsentencepiece.so.0" 2>/dev/null | awk '/NEEDED/ {print $2}' | tr '\n' ' ')"
  say "libsentencepiece.so.0 needs: ${needed:-(objdump unavailable)}"
  for n in $needed; do
    case "$n" in
      libstdc++.so.6|libm.so.6|libgcc_s.so.1|libc.so.6|ld-linux-x86-64.so.2|libpthread.so.0|libdl.so.2) ;;
      *) fail "libsentencepiece.so.0 needs $n, which the GPU machine may lack: carry it in .gpu-deps/lib" ;;
    esac
  done
  glibc_max="$(objdump -T "$TMP/lib/libsentencepiece.so.0" 2>/dev/null | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1)"
  glibcxx_max="$(objdump -T "$TMP/lib/libsentencepiece.so.0" 2>/dev/null | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -1)"
  say "libsentencepiece.so.0 highest symbol versions: ${glibc_max:-?} ${glibcxx_max:-?} (Ubuntu 24.04 has GLIBC_2.39, GLIBCXX_3.4.33)"
else
  fail "$LIBDIR/libsentencepiece.so.0 missing (install libsentencepiece0)"
fi

# ---- PCRE2 (the Unicode regexes of Hugging Face tokenizer.json) -----------------------------------
# CMake's TESSERA_DEPS_DIR branch looks for include/pcre2.h and lib/libpcre2-8.so.
PCRE2_REAL="$(readlink -f "$LIBDIR/libpcre2-8.so.0" 2>/dev/null || true)"
if [ -f "$INCDIR/pcre2.h" ] && [ -n "$PCRE2_REAL" ] && [ -f "$PCRE2_REAL" ]; then
  cp "$INCDIR/pcre2.h" "$TMP/include/"
  cp "$PCRE2_REAL" "$TMP/lib/libpcre2-8.so.0"
  ln -s libpcre2-8.so.0 "$TMP/lib/libpcre2-8.so"
  say "pcre2: include/pcre2.h, lib/libpcre2-8.so.0 ($(dpkg-query -W -f='${Version}' libpcre2-8-0 2>/dev/null || echo ?)), needs: $(objdump -p "$TMP/lib/libpcre2-8.so.0" 2>/dev/null | awk '/NEEDED/ {print $2}' | tr '\n' ' ')"
else
  fail "$INCDIR/pcre2.h or $LIBDIR/libpcre2-8.so.0 missing (install libpcre2-dev)"
fi

# ---- shared data ---------------------------------------------------------------------------------
# Paths relative to shared/data. The first group is what gpu-run.sh itself uses; the second is data
# the tests also read. TESSERA_GPU_DATA=minimal copies only these two groups.
REQUIRED_DATA=(
  models/stories260K/stories260K.bin
  models/stories260K/tok512.bin
  text/tinystories/sample.txt
  models/TinyStories-656K
  tokenizers/llama2/tokenizer.model
)
EXTRA_DATA=(
  README.md
  SHA256SUMS
  text/wikitext-2-raw/wiki.test.joined.txt
  text/wikitext-2-raw/wiki.test.raw
  models/aidreams260K
  models/llama2xs
)
copy_data() {  # $1: path relative to shared/data; $2: "required" or "optional"
  local rel="$1" src="$SHARED/data/$1"
  if [ ! -e "$src" ]; then
    if [ "$2" = required ]; then fail "shared data missing: $src"; else say "note: optional $src missing"; fi
    return 0
  fi
  mkdir -p "$TMP/data/$(dirname "$rel")"
  cp -r "$src" "$TMP/data/$rel"
}
if [ "${TESSERA_GPU_DATA:-all}" = all ]; then
  # The tests read more and more of shared/data; all of it (~17 MiB) keeps them from failing on a
  # missing file. Every required file must still be there.
  cp -r "$SHARED/data/." "$TMP/data/"
  for rel in "${REQUIRED_DATA[@]}"; do [ -e "$TMP/data/$rel" ] || fail "shared data missing: $SHARED/data/$rel"; done
else
  for rel in "${REQUIRED_DATA[@]}"; do copy_data "$rel" required; done
  for rel in "${EXTRA_DATA[@]}"; do copy_data "$rel" optional; done
fi

# ---- reference benchmark -------------------------------------------------------------------------
if [ -f "$SHARED/bench/reference_tesseraq_step.py" ]; then
  cp "$SHARED/bench/reference_tesseraq_step.py" "$TMP/bench/"
  [ -f "$SHARED/bench/README.md" ] && cp "$SHARED/bench/README.md" "$TMP/bench/"
else
  fail "$SHARED/bench/reference_tesseraq_step.py missing"
fi

# ../shared is read-only; keep the copies writable so the next run can replace them.
chmod -R u+w "$TMP"

cat > "$TMP/README.txt" <<EOF
Made by installers/prepare-gpu-deps.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME").
include/  spdlog $(dpkg-query -W -f='${Version}' libspdlog-dev 2>/dev/null || echo ?), fmt $(dpkg-query -W -f='${Version}' libfmt-dev 2>/dev/null || echo ?), nlohmann-json $(dpkg-query -W -f='${Version}' nlohmann-json3-dev 2>/dev/null || echo ?), sentencepiece_processor.h
lib/      libsentencepiece.so.0 $(dpkg-query -W -f='${Version}' libsentencepiece0 2>/dev/null || echo ?) (bundles protobuf-lite; needs only libc/libstdc++/libgcc),
          libpcre2-8.so.0 $(dpkg-query -W -f='${Version}' libpcre2-8-0 2>/dev/null || echo ?), pcre2.h in include/
data/     shared/data (${TESSERA_GPU_DATA:-all}; same layout): TESSERA_SHARED_DIR=\$PWD/.gpu-deps
bench/    shared/bench/reference_tesseraq_step.py
EOF

if [ "$errors" -gt 0 ]; then
  echo "prepare-gpu-deps: FAILED with $errors error(s); .gpu-deps left unchanged" >&2
  exit 1
fi

rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT

size_kib="$(du -sk "$DEST" | cut -f1)"
size_mib=$(( (size_kib + 1023) / 1024 ))
say "contents:"
(cd "$DEST" && du -sh include lib data bench | sed 's/^/  /')
say "$DEST: ${size_mib} MiB ($(find "$DEST" -type f | wc -l) files)"
if [ "$size_mib" -ge "$LIMIT_MIB" ]; then
  echo "prepare-gpu-deps: ERROR: .gpu-deps is ${size_mib} MiB, over the ${LIMIT_MIB} MiB budget" >&2
  exit 1
fi

