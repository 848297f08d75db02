#!/usr/bin/env bash
# The main job: installs, builds, then lists the plugins and checks the quick-start config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build/bin/ssld plugins
build/bin/ssld check configs/quickstart/check_demo.toml
build/bin/ssld check configs/quickstart/fmnist_data.toml
build/bin/ssld bench-data configs/quickstart/fmnist_data.toml --steps 20
