#!/usr/bin/python3
"""Data pipeline benchmark: ssld's loader against torchvision's ImageFolder + DataLoader.

Generates ~500 ImageNet-sized JPEGs (500x375, Fashion-MNIST images upscaled, tinted and
noised), then measures, side by side in one run:
  - ssld, decode only vs full pipeline (decode + random_resized_crop 224 + hflip -> uint8 batch),
    for 1 and 2 threads (`ssld bench-data`);
  - torchvision ImageFolder + DataLoader with the same transforms (PILToTensor, uint8), the same
    batch size and the same number of workers.
Prints images/s and the ratios the project tracks. Not a test: no timing assertions.

usage: tests/bench/data_pipeline.py [--ssld build/bin/ssld] [--images 500] [--steps 7]
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[2]
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def make_images(folder: Path, count: int) -> None:
    if (folder / "done").exists():
        return
    raw = gzip.open(FMNIST).read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    rng = np.random.default_rng(0)
    for i in range(count):
        klass = folder / f"class_{i % 10}"
        klass.mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray(images[i]).resize((500, 375), Image.BICUBIC)
        tint = rng.uniform(0.5, 1.0, size=3)
        rgb = np.asarray(gray, dtype=np.float32)[..., None] * tint
        rgb += rng.normal(0, 12, size=rgb.shape)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(klass / f"{i:05d}.jpg", quality=90)
    (folder / "done").write_text("ok\n")


def ssld_rates(ssld: str, folder: Path, batch: int, steps: int, threads: int) -> dict:
    config = folder.parent / "bench_data.toml"
    config.write_text(f"""
[run]
device = "cpu"
[data]
prefetch = 4
[data.train]
batch_size = {batch}
[[data.train.sources]]
type = "image_folder"
root = "{folder}"
[[data.train.augment]]
type = "random_resized_crop"
size = [224]
[[data.train.augment]]
type = "hflip"
""")
    out = subprocess.run([ssld, "-q", "bench-data", str(config), "--steps", str(steps), "--max-threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    rates = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)", line)
        if m:
            rates[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    return rates


def torchvision_rate(folder: Path, batch: int, steps: int, workers: int) -> float:
    dataset = torchvision.datasets.ImageFolder(
        str(folder), transform=transforms.Compose(
            [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.PILToTensor()]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True, prefetch_factor=4 if workers else 2,
                                         persistent_workers=False)
    for _ in zip(range(1), loader):  # warm up: start the workers, fill the file cache
        pass
    start = time.perf_counter()
    images = 0
    for _, (x, _) in zip(range(steps), loader):
        images += x.shape[0]
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ssld", default=str(ROOT / "build/bin/ssld"))
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=str(ROOT / "build/bench/jpegs"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    folder = Path(args.data)
    make_images(folder, args.images)
    ours = ssld_rates(args.ssld, folder, args.batch, args.steps, args.threads)
    print(f"{args.images} JPEGs of 500x375, batch {args.batch}, {args.steps} batches per measurement, "
          "random_resized_crop 224 + hflip -> uint8 batch")
    print(f"{'threads':>8} {'ssld decode':>12} {'ssld full':>10} {'torchvision':>12} {'full/decode':>12} "
          f"{'vs 1 thread':>12} {'vs torchvision':>15}")
    for threads in range(1, args.threads + 1):
        decode, full = ours[threads]
        peer = torchvision_rate(folder, args.batch, args.steps, threads)
        print(f"{threads:>8} {decode:>12.0f} {full:>10.0f} {peer:>12.0f} {full / decode:>11.2f}x "
              f"{full / ours[1][1]:>11.2f}x {full / peer:>14.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
