#!/usr/bin/env bash
# Installs, builds, and runs the whole test suite: the reader tests under ASan + UBSan, the
# fuzz targets' regression inputs and a short fuzzing budget per target (scripts/fuzz.sh --ci,
# in build-sanitize/), then every test through ctest. SSLD_SKIP_FUZZ=1 skips the sanitizer part;
# SSLD_FUZZ_SECONDS sets its budget per target (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${SSLD_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh --ci "${SSLD_FUZZ_SECONDS:-15}"
fi
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
