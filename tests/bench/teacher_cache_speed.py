#!/usr/bin/python3
"""Teacher-cache benchmark: a 4-run sweep over the loss with the teacher's soft labels computed
once ([teacher_cache], filled by the first run) against the same 4 runs with the teacher online.

Fashion-MNIST, 10k training images, batch 128, random_crop + hflip, 1 epoch per run, student
small_cnn 8x2, teacher small_cnn 48x3 (a teacher that dominates step time, as a ResNeXt-101
teacher does for a MobileNetV3 student), its weights from 1 epoch of training here. Losses:
ssld, kl, dist, jsd. Both sweeps run with `ssld sweep --jobs 1` on the same config but for
[teacher_cache]. Prints wall times, the ratio (issue target <= 0.6) and each run's best top-1
in both sweeps (the fp32 cache must train the same students, so they must be equal).
Not a test: no timing assertions.

usage: tests/bench/teacher_cache_speed.py [--ssld build/bin/ssld] [--epochs 1] [--images 10000]
"""
import argparse
import csv
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FMNIST = "/usr/share/datasets/fashion-mnist/"
NORMALIZE = 'type = "normalize"\nmean = [0.286]\nstd = [0.353]\n'


def data_tables(images, val_images=2000):
    return f"""
[data]
threads = 2
[data.train]
batch_size = 128
[[data.train.sources]]
type = "idx"
images = "{FMNIST}train-images-idx3-ubyte.gz"
labels = "{FMNIST}train-labels-idx1-ubyte.gz"
subset = {{ range = [0, {images}] }}
[[data.train.augment]]
type = "random_crop"
size = [28, 28]
padding = 2
[[data.train.augment]]
type = "hflip"
[[data.train.batch_augment]]
{NORMALIZE}
[data.val]
batch_size = 500
[[data.val.sources]]
type = "idx"
images = "{FMNIST}t10k-images-idx3-ubyte.gz"
labels = "{FMNIST}t10k-labels-idx1-ubyte.gz"
subset = {{ range = [0, {val_images}] }}
[[data.val.batch_augment]]
{NORMALIZE}
"""


def sweep(ssld, config, folder):
    start = time.monotonic()
    subprocess.run([ssld, "-q", "sweep", str(config)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    with open(folder / "results.csv") as handle:
        rows = {row["loss.0.type"]: row for row in csv.DictReader(handle)}
    return seconds, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ssld", default=str(ROOT / "build" / "bin" / "ssld"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--teacher-width", type=int, default=48)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ssld_cache_bench_") as tmp:
        tmp = Path(tmp)
        run = '[run]\nname = "{name}"\noutput_dir = "runs"\ndevice = "cpu"\nthreads = 2\n'
        (tmp / "teacher.toml").write_text(
            run.format(name="teacher") + data_tables(2000, 500) +
            f'[student]\ntype = "small_cnn"\nwidth = {args.teacher_width}\ndepth = 3\n'
            '[[loss]]\ntype = "ce"\n[train]\nepochs = 1\nlr = 0.05\n')
        subprocess.run([args.ssld, "-q", "train", str(tmp / "teacher.toml")], check=True, stdout=subprocess.DEVNULL)
        common = data_tables(args.images) + f"""
[student]
type = "small_cnn"
width = 8
depth = 2
[teacher]
type = "checkpoint"
weights = "runs/teacher/main/student.safetensors"
student = {{ type = "small_cnn", width = {args.teacher_width}, depth = 3 }}
[[loss]]
type = "ssld"
[train]
epochs = {args.epochs}
lr = 0.1
momentum = 0.9
nesterov = true
log_every = 20
[sweep.axes]
"loss.0.type" = ["ssld", "kl", "dist", "jsd"]
"""
        (tmp / "online.toml").write_text(run.format(name="online") + common)
        (tmp / "cached.toml").write_text(run.format(name="cached") + common + "[teacher_cache]\nformat = \"fp32\"\n")

        online_s, online = sweep(args.ssld, tmp / "online.toml", tmp / "runs" / "online")
        cached_s, cached = sweep(args.ssld, tmp / "cached.toml", tmp / "runs" / "cached")

        print(f"4-run sweep over the loss, {args.images} images x {args.epochs} epochs, teacher small_cnn "
              f"{args.teacher_width}x3, student small_cnn 8x2, 2 threads, --jobs 1")
        print(f"{'loss':6} {'online top-1':>13} {'cached top-1':>13} {'online teacher share':>21} "
              f"{'cached teacher share':>21}")
        identical = True
        for loss in online:
            a, b = online[loss], cached[loss]
            identical &= a["best_top1"] == b["best_top1"] and a["final_top1"] == b["final_top1"]
            print(f"{loss:6} {a['best_top1']:>13} {b['best_top1']:>13} {a['teacher_share']:>21} {b['teacher_share']:>21}")
        print(f"online sweep: {online_s:.1f} s; cached sweep (first run fills the store): {cached_s:.1f} s")
        print(f"cached / online: {cached_s / online_s:.2f}x (target <= 0.6)")
        print("top-1 identical in every run: " + ("yes" if identical else "NO"))


if __name__ == "__main__":
    main()
