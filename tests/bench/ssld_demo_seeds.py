#!/usr/bin/python3
"""The demo's claim over several seeds: SSLD student vs the supervised baseline.

Runs configs/quickstart/fmnist_ssld.toml once per seed (each into runs/fmnist_ssld_seed<N>/),
then prints the best top-1 of every stage as mean and standard deviation over the seeds, and
the gains over the baseline. Finished seeds are not rerun (ssld skips finished stages).

usage: tests/bench/ssld_demo_seeds.py [--seeds 0 1 2] [--ssld build/bin/ssld]
"""
import argparse
import json
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["teacher", "baseline", "ssld", "finetune"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ssld", default=str(ROOT / "build/bin/ssld"))
    parser.add_argument("--config", default=str(ROOT / "configs/quickstart/fmnist_ssld.toml"))
    args = parser.parse_args()

    top1 = {stage: [] for stage in STAGES}
    seconds = {stage: [] for stage in STAGES}
    for seed in args.seeds:
        name = f"fmnist_ssld_seed{seed}"
        subprocess.run([args.ssld, "-q", "train", args.config, "--set", f"run.seed={seed}", "--set", f"run.name={name}"],
                       check=True, stdout=subprocess.DEVNULL)
        for stage in STAGES:
            summary = json.loads((ROOT / "runs" / name / stage / "summary.json").read_text())
            top1[stage].append(summary["result"]["best_top1"])
            seconds[stage].append(summary["result"]["seconds"])

    def spread(values):
        return statistics.stdev(values) if len(values) > 1 else 0.0

    print(f"Fashion-MNIST, 10k labeled + 50k unlabeled, seeds {args.seeds}")
    print("| stage | top-1 mean | top-1 std | per seed | time (s) |")
    print("|---|---|---|---|---|")
    for stage in STAGES:
        values = top1[stage]
        print(f"| {stage} | {statistics.mean(values):.2f} | {spread(values):.2f} | "
              f"{', '.join(f'{v:.2f}' for v in values)} | {statistics.mean(seconds[stage]):.0f} |")
    for stage in ["ssld", "finetune"]:
        gains = [s - b for s, b in zip(top1[stage], top1["baseline"])]
        print(f"gain of {stage} over baseline: {statistics.mean(gains):+.2f} points (std {spread(gains):.2f})")


if __name__ == "__main__":
    main()
