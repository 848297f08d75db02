#!/usr/bin/python3
"""Training-speed benchmark: ssld against the same loop in python3-torch, and against the limit.

Runs, side by side in one invocation, on Fashion-MNIST's 60k training images with the demo's
SSLD stage (tests/bench/train_speed.toml: student small_cnn 8x2, teacher small_cnn 32x3 with
random weights, batch 128, random_crop(pad 2) + hflip, normalize, SSLD loss, SGD nesterov):
  - ssld (build/bin/ssld_bench_train): the trainer's real loop end to end; TrainingStep::run on a
    batch already in memory (compute only); a minimal hand-written libtorch loop on that batch;
  - the peer: the same models, loss and optimizer in python3-torch, data in memory (a uint8
    tensor), torchvision transforms per sample in a torch DataLoader (0 and 2 workers; the
    better one is the peer), and the same loop on one batch (python's compute only).
The limit: the step's FLOPs per image (convolutions and matrix products, counted by
ssld_bench_teacher from the models' calls; the student's backward as twice its forward) times
images/s, against the nominal fp32 peak and a large oneDNN convolution's measured rate.
Threads: 2 intra-op threads on both sides. ssld keeps freed memory for reuse (mallopt in
host/cli/command_setup.cpp); the peer runs twice, with glibc's default malloc as PyTorch users
run it and with the same settings through MALLOC_* variables, and the faster peer is compared.
A last peer runs the best of those with the teacher traced, frozen and optimized for inference
(torch.jit.trace + freeze + optimize_for_inference), what ssld's checkpoint teacher does by
default, so the ratios separate the framework from the arithmetic.
Prints images/s and the ratios the project tracks. Not a test: no timing assertions.

usage: tests/bench/train_speed.py [--bench build/bin/ssld_bench_train] [--steps 30] [--rounds 7]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_speed import cpu, nominal_peak_gflops  # noqa: E402 (one peak rule for both benchmarks)

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
MEAN, STD = 0.2860, 0.3530


def small_cnn(width, depth, classes=10):
    """plugins/models/small_cnn in python: same layers, same state-dict names."""
    layers, channels = [], 1
    for stage in range(depth):
        out = width << stage
        for _ in range(2):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        layers.append(nn.MaxPool2d(2))

    class SmallCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.dropout = nn.Dropout(0.0)
            self.classifier = nn.Linear(channels, classes)

        def forward(self, x):
            return self.classifier(self.dropout(self.features(x).mean(dim=(2, 3))))

    return SmallCnn()


def ssld_loss(student_logits, teacher_logits):
    """PaddleClas' SSLD loss at T = 1: 1/2 [KL(p_t || p_s) + KL(p_s || p_t)]."""
    log_s, log_t = F.log_softmax(student_logits, 1), F.log_softmax(teacher_logits, 1)
    return 0.5 * (F.kl_div(log_s, log_t, reduction="batchmean", log_target=True)
                  + F.kl_div(log_t, log_s, reduction="batchmean", log_target=True))


class InMemory(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images  # uint8 [N, 1, 28, 28]
        self.transform = transforms.Compose([transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip()])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.transform(self.images[index])


def python_peer(images, steps, rounds, workers, frozen_teacher):
    torch.manual_seed(0)
    student, teacher = small_cnn(8, 2), small_cnn(32, 3).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if frozen_teacher:  # what ssld's teachers do by default, the way Python can: trace, freeze, optimize
        example = torch.zeros(128, 1, 28, 28)
        teacher = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(teacher, example)))
    decay = [p for n, p in student.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in student.named_parameters() if p.dim() <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.1, momentum=0.9, nesterov=True)
    loader = torch.utils.data.DataLoader(InMemory(images), batch_size=128, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0, prefetch_factor=4 if workers else 2)

    def step(batch):
        x = (batch.float() / 255.0 - MEAN) / STD
        with torch.no_grad():
            t = teacher(x)
        loss = ssld_loss(student(x), t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()  # the loss is read every step, as ssld does for its non-finite check

    iterator = iter(loader)
    for _ in range(5):
        step(next(iterator))
    end_to_end, compute = [], []
    fixed = next(iterator)
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            try:
                batch = next(iterator)
            except StopIteration:
                iterator = iter(loader)
                batch = next(iterator)
            step(batch)
        end_to_end.append((time.perf_counter() - start) / (steps * 128))
        start = time.perf_counter()
        for _ in range(steps):
            step(fixed)
        compute.append((time.perf_counter() - start) / (steps * 128))
    return 1.0 / sorted(end_to_end)[len(end_to_end) // 2], 1.0 / sorted(compute)[len(compute) // 2]


# glibc reads these at process start, so the tuned peer runs in a child process.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def run_peer(args, workers, tuned, frozen_teacher=False):
    env = dict(os.environ, **TUNED_MALLOC) if tuned else {k: v for k, v in os.environ.items() if k not in TUNED_MALLOC}
    out = subprocess.run([sys.executable, __file__, "--peer", str(workers), "--steps", str(args.steps), "--rounds",
                          str(args.rounds)] + (["--frozen-teacher"] if frozen_teacher else []),
                         env=env, check=True, capture_output=True, text=True).stdout
    return tuple(json.loads(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT / "build/bin/ssld_bench_train"))
    parser.add_argument("--flops-bench", default=str(ROOT / "build/bin/ssld_bench_teacher"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--peer", type=int, default=None, help=argparse.SUPPRESS)  # child: one peer, JSON out
    parser.add_argument("--frozen-teacher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    torch.set_num_threads(2)
    if args.peer is not None:
        raw = gzip.open(IMAGES).read()
        images = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28).copy())
        print(json.dumps(python_peer(images, args.steps, args.rounds, args.peer, args.frozen_teacher)))
        return

    ssld = json.loads(subprocess.run([args.bench, str(ROOT / "tests/bench/train_speed.toml"), "--steps", str(args.steps),
                                      "--rounds", str(args.rounds)], check=True, capture_output=True, text=True).stdout)
    peers = {(workers, tuned): run_peer(args, workers, tuned) for tuned in (False, True) for workers in (0, 2)}
    best = max(peers, key=lambda key: peers[key][0])
    peer_e2e, peer_compute = peers[best]
    frozen_e2e, frozen_compute = run_peer(args, *best, frozen_teacher=True)

    print(f"SSLD stage, batch 128, {ssld['threads']} threads, device {ssld['device']}, "
          f"median of {args.rounds} rounds x {args.steps} steps (images/s)")
    print(f"  ssld end to end (loader, device copy, step)       {ssld['end_to_end_images_per_second']:8.0f}")
    print(f"  ssld compute only (TrainingStep::run, batch in memory) {ssld['compute_images_per_second']:8.0f}")
    print(f"  minimal libtorch loop (same models, same batch)   {ssld['minimal_images_per_second']:8.0f}")
    print(f"  ssld teacher forward alone                        {ssld['teacher_forward_images_per_second']:8.0f}")
    for (workers, tuned), (e2e, compute) in peers.items():
        malloc = "kept-memory malloc" if tuned else "default malloc    "
        print(f"  python3-torch loop, {malloc}, DataLoader {workers} workers {e2e:8.0f}   (compute only {compute:.0f})")
    print(f"  python3-torch loop as above, teacher traced + frozen + optimize_for_inference {frozen_e2e:8.0f}"
          f"   (compute only {frozen_compute:.0f})")
    print("ratios:")
    print(f"  ssld / python3-torch end to end (best peer: {best[0]} workers, "
          f"{'kept-memory' if best[1] else 'default'} malloc): "
          f"{ssld['end_to_end_images_per_second'] / peer_e2e:.2f}x   (target >= 1.5)")
    print(f"  ssld / python3-torch with the same frozen teacher, end to end: "
          f"{ssld['end_to_end_images_per_second'] / frozen_e2e:.2f}x   (the framework, not the arithmetic)")
    print(f"  ssld end to end / ssld compute only:  {ssld['end_to_end_images_per_second'] / ssld['compute_images_per_second']:.2f}x"
          "   (target >= 0.9)")
    overhead = ssld['minimal_images_per_second'] / ssld['compute_images_per_second'] - 1.0
    print(f"  host overhead, TrainingStep::run vs minimal libtorch loop: {100 * overhead:+.1f}%   (target <= 3%)")
    print(f"  ssld compute only / python compute only: {ssld['compute_images_per_second'] / peer_compute:.2f}x")

    # The limit: FLOPs of the step's convolutions and matrix products per image (the teacher's
    # forward, and the student's forward plus its backward counted as twice the forward),
    # times images/s, against the CPU's peak for fp32.
    def counted(architecture):
        out = subprocess.run([args.flops_bench, architecture, "1", "28", "28", "--batch", "128", "--flops-only"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    teacher = counted('type = "small_cnn"\nwidth = 32\ndepth = 3')
    student = counted('type = "small_cnn"\nwidth = 8\ndepth = 2')
    step_flops = teacher["flops_per_image"] + 3 * student["flops_per_image"]
    flags, mhz = cpu()
    nominal = nominal_peak_gflops(ssld["threads"], flags, mhz, False)
    measured = teacher["convolution_gflops_fp32"]
    for label, rate in (("end to end", ssld["end_to_end_images_per_second"]),
                        ("compute only", ssld["compute_images_per_second"])):
        gflops = rate * step_flops / 1e9
        print(f"  hardware limit, ssld {label}: {step_flops / 1e6:.1f} MFLOP per image x {rate:.0f} img/s = "
              f"{gflops:.0f} GFLOP/s, {100 * gflops / nominal:.0f}% of the nominal fp32 peak ({nominal:.0f} GFLOP/s: "
              f"{ssld['threads']} cores x 2 FMA units x 16 lanes x 2 x {mhz:.0f} MHz), "
              f"{100 * gflops / measured:.0f}% of a large oneDNN convolution's {measured:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
