#!/usr/bin/env bash
# Installs what ssld needs from Debian 12 (only what is missing; needs root or sudo the first
# time), then configures and builds into build/. Idempotent: a second run only rebuilds what
# changed. Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config binutils
  libtorch-dev libgloo-dev libboost-dev libtoml11-dev libspdlog-dev libfmt-dev libtbb-dev
  libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  python3-torch python3-torchvision python3-pil  # reference, peer and fixtures in tests
  librsvg2-bin                       # rsvg-convert: the tests render every SVG ssld draws
  dataset-fashion-mnist              # the real data of the demo and the tests
  python-matplotlib-data             # grace_hopper.jpg: a real photograph for the pixel tests
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "$(nproc)"
