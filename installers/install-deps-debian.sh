#!/usr/bin/env bash
# Installs every Debian 12 package Tessera needs to build, test and run (CPU build with GUI).
# Idempotent: apt-get skips what is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates curl
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
  exit 0
fi

echo "tessera: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
