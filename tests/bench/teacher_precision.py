#!/usr/bin/python3
"""Teacher precision benchmark: a checkpoint teacher's soft labels in fp32 and in bf16 on this CPU.

For each precision, `ssld cache-teacher` computes the teacher's soft labels for one epoch of a
10k-image Fashion-MNIST training pipeline (fp32 storage, so the logits are kept exactly) and
`ssld eval --teacher` its top-1 on the 10k test images. Prints images/s of both, their ratio,
the top-1 of both, and how close bf16's soft labels are to fp32's: per-image top-1 agreement and
the mean KL(fp32 || bf16) at T = 1, read back with scripts/read_teacher_cache.py. Not a test: no
timing assertions. bf16 runs only where the CPU has AVX512-BF16 or AMX (else ssld warns and runs
fp32, and the ratio is about 1).

The teacher: runs/fmnist_features_teacher/main/best.safetensors (a CIFAR ResNet-20), trained
first with configs/sweeps/fmnist_features_teacher.toml when missing (2 minutes on 2 cores).

usage: tests/bench/teacher_precision.py [--ssld build/bin/ssld]
"""
import argparse
import glob
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import read_teacher_cache  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist/"


def config(folder: Path, precision: str, teacher: Path) -> Path:
    text = f"""
[run]
name = "precision_{precision}"
output_dir = "{folder}/runs"
device = "cpu"
[teacher]
type = "checkpoint"
weights = "{teacher}"
student = {{ type = "cifar_resnet", depth = 20, width = 16, in_channels = 1, num_classes = 10 }}
precision = "{precision}"
[teacher_cache]
store = "{folder}/store_{precision}"
format = "fp32"
[train]
epochs = 1
[[loss]]
type = "kl"
[data.train]
batch_size = 128
sampler = {{ type = "sequential" }}
[[data.train.sources]]
type = "idx"
images = "{FMNIST}train-images-idx3-ubyte.gz"
subset = {{ range = [0, 10000] }}
[[data.train.batch_augment]]
type = "normalize"
mean = [0.2860]
std = [0.3530]
[data.val]
batch_size = 500
[[data.val.sources]]
type = "idx"
images = "{FMNIST}t10k-images-idx3-ubyte.gz"
labels = "{FMNIST}t10k-labels-idx1-ubyte.gz"
[[data.val.batch_augment]]
type = "normalize"
mean = [0.2860]
std = [0.3530]
"""
    path = folder / f"{precision}.toml"
    path.write_text(text)
    return path


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ssld", default=str(ROOT / "build/bin/ssld"))
    args = parser.parse_args()
    teacher = ROOT / "runs/fmnist_features_teacher/main/best.safetensors"
    if not teacher.exists():
        subprocess.run([args.ssld, "-q", "train", str(ROOT / "configs/sweeps/fmnist_features_teacher.toml")], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        results = {}
        for precision in ("fp32", "bf16"):
            path = config(folder, precision, teacher)
            start = time.perf_counter()
            run = subprocess.run([args.ssld, "cache-teacher", str(path), "--epochs", "1"], capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if run.returncode != 0:
                sys.exit(f"cache-teacher ({precision}) failed:\n{run.stderr}")
            warned = "needs CUDA or a CPU" in run.stderr
            evaluated = subprocess.run([args.ssld, "-q", "eval", str(path), "--teacher"], capture_output=True, text=True,
                                       check=True).stdout
            top1 = float(re.search(r"top-1 ([0-9.]+)%", evaluated).group(1))
            epoch = read_teacher_cache.read_epoch(glob.glob(f"{folder}/store_{precision}/*/epoch_00000.bin")[0])
            results[precision] = (seconds, top1, epoch, warned)
    fp32, bf16 = results["fp32"], results["bf16"]
    assert np.array_equal(fp32[2].ids, bf16[2].ids)
    p, q = softmax(fp32[2].values.astype(np.float64)), softmax(bf16[2].values.astype(np.float64))
    agreement = (p.argmax(1) == q.argmax(1)).mean() * 100
    kl = (p * (np.log(p + 1e-12) - np.log(q + 1e-12))).sum(1).mean()
    images = len(fp32[2].ids)
    print(f"CIFAR ResNet-20 teacher, {images} Fashion-MNIST images, batch 128, `ssld cache-teacher` wall time")
    print(" precision  images/s  test top-1")
    for name, (seconds, top1, _, warned) in results.items():
        note = "  (fell back to fp32: no bf16 instructions)" if warned else ""
        print(f" {name:>9}  {images / seconds:8.0f}  {top1:9.2f}%{note}")
    print(f"bf16 / fp32 images/s: {fp32[0] / bf16[0]:.2f}x; soft labels: top-1 agreement {agreement:.2f}%, "
          f"mean KL(fp32 || bf16) {kl:.2e}")


if __name__ == "__main__":
    main()
