#!/usr/bin/python3
"""Training speed of the paper's students on the CPU: ssld against python3-torch, same threads.

For MobileNetV3-large and ResNet50-vd at 224x224, batch 32, cross-entropy, SGD (momentum 0.9):
  - ssld (build/bin/ssld_bench_train --compute-only, tests/bench/model_zoo_speed.toml):
    TrainingStep::run on a batch in memory (with --full also a minimal libtorch loop on it and the real
    loop end to end on generated 256x256 images with random_resized_crop + hflip);
  - python3-torch: torchvision's mobilenet_v3_large / the ResNet-D reference of the model-zoo
    tests (tests/unit/fixtures/make_model_zoo_reference.py), the same step on the same kind of batch.
Both sides use 2 intra-op threads. Prints images/s and the ssld / python3-torch ratio.
Not a test: no timing assertions.

usage: tests/bench/model_zoo_speed.py [--bench build/bin/ssld_bench_train] [--steps 2] [--rounds 3] [--full]
A CPU step of ResNet50-vd at batch 32 takes ~15 s on 2 cores: the defaults keep the run near 5 minutes.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/unit/fixtures"))
from make_model_zoo_reference import resnet_d  # noqa: E402  the ResNet-D the parity tests check ssld against

MODELS = {
    "MobileNetV3-large": ('type="mobilenet_v3"', lambda: torchvision.models.mobilenet_v3_large()),
    "ResNet50-vd": ('type="resnet_d"', lambda: with_classes(resnet_d(50), 1000)),
}


def with_classes(model, classes):
    model.fc = torch.nn.Linear(model.fc.in_features, classes)  # the fixture builds 10-class models
    return model


class PythonPeer:
    """The same training step in python3-torch, on a batch in memory."""

    def __init__(self, build):
        torch.manual_seed(0)
        self.model = build().train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.x, self.y = torch.randn(32, 3, 224, 224), torch.randint(0, 1000, (32,))
        self.step()  # warm-up

    def step(self):
        loss = F.cross_entropy(self.model(self.x), self.y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def images_per_second(self, steps):
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * 32 / (time.perf_counter() - start)


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT / "build/bin/ssld_bench_train"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also the minimal loop and the end-to-end loop")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"training images/s at 224x224, batch 32, 2 threads, median of {args.rounds} rounds x {args.steps} steps")
    print(f"{'model':<20}{'ssld compute':>14}{'ssld minimal':>14}{'ssld e2e':>10}{'python3-torch':>15}{'ratio':>8}")
    # The two sides alternate round by round: this VM's speed drifts by ~10% over minutes.
    for name, (student, build) in MODELS.items():
        overrides = ["--set", "student.type=" + student.split('"')[1]]
        if name == "ResNet50-vd":
            overrides += ["--set", "student.depth=50"]
        peer = PythonPeer(build)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(json.loads(subprocess.run(
                [args.bench, str(ROOT / "tests/bench/model_zoo_speed.toml"), "--steps", str(args.steps), "--rounds", "1",
                 "--warmup", "1"] + ([] if args.full else ["--compute-only"]) + overrides,
                check=True, capture_output=True, text=True).stdout))
            theirs.append(peer.images_per_second(args.steps))
        compute = median([run["compute_images_per_second"] for run in ours])
        extra = (f"{median([r['minimal_images_per_second'] for r in ours]):>14.1f}"
                 f"{median([r['end_to_end_images_per_second'] for r in ours]):>10.1f}" if args.full else f"{'-':>14}{'-':>10}")
        print(f"{name:<20}{compute:>14.1f}{extra}{median(theirs):>15.1f}{compute / median(theirs):>7.2f}x", flush=True)

if __name__ == "__main__":
    main()
