#!/usr/bin/env bash
# Installs every Debian 12 package Tessera needs to build, test and run (CPU build with GUI), and
# llama.cpp for the GGUF tests: the npm package node-llama-cpp with its prebuilt CPU binaries, at
# the versions tests/llama_cpp/package-lock.json pins, into tests/llama_cpp/node_modules (git-ignored).
# Idempotent: apt-get and npm skip what is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates curl
  # clang's libFuzzer, ASan and UBSan for the parser fuzz harnesses (tests/fuzz).
  clang libclang-rt-14-dev
  # The format and static checks (tests/static): pinned to 14, as other versions format differently.
  clang-14 clang-format-14 clang-tidy-14
  libtorch-dev libopenblas0-pthread
  libspdlog-dev libfmt-dev nlohmann-json3-dev
  libsentencepiece-dev libpcre2-dev
  qt6-base-dev libqcustomplot-dev libqcustomplot2.1-qt6 libgl-dev
  xvfb xauth
  # The SSH worker test starts its own sshd on 127.0.0.1 (no change to the system's ssh setup).
  openssh-server openssh-client
  python3 python3-numpy
  # Qt's offscreen platform (GUI tests, --screenshot) draws text with fontconfig's fonts.
  fonts-dejavu-core
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "tessera: all Debian packages already installed"
else
  echo "tessera: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# llama.cpp (node-llama-cpp needs Node >= 20; the machines have it, Debian 12's nodejs is 18).
LLAMA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/llama_cpp"
if ! command -v npm >/dev/null 2>&1; then
  echo "tessera: WARNING: npm not found: llama.cpp is not installed and test_llama_cpp will fail" >&2
elif [ "$LLAMA_DIR/node_modules/.package-lock.json" -nt "$LLAMA_DIR/package-lock.json" ]; then
  echo "tessera: llama.cpp (node-llama-cpp) already installed"
else
  echo "tessera: installing llama.cpp (node-llama-cpp, prebuilt CPU binaries) into $LLAMA_DIR/node_modules"
  # --omit=optional: only the linux-x64 CPU binaries (a direct dependency), not the CUDA/Vulkan/ARM ones.
  # npm install (not ci) because the lock, made on Linux, lacks the other platforms optional binaries.
  (cd "$LLAMA_DIR" && npm install --omit=optional --ignore-scripts --no-audit --no-fund)
fi
