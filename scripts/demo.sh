#!/usr/bin/env bash
# The main job: installs, builds, then runs the Fashion-MNIST SSLD demo (teacher, supervised
# baseline, label-free SSLD student, fine-tuned student) and prints its results table.
# A second run skips the stages that already finished (runs/fmnist_ssld/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build/bin/ssld train configs/quickstart/fmnist_ssld.toml "$@"
