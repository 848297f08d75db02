#!/usr/bin/python3
"""TorchScript teacher benchmark: a scripted model as loaded against frozen + optimize_for_inference.

Scripts torchvision's ResNet-18 and MobileNetV3-small (10 classes, random weights) and a small CNN,
then times `ssld eval --teacher` on 2,000 Fashion-MNIST test images resized to 64x64 (3 channels)
with `optimize = "off"` and `"on"`, side by side, and compares their per-image predictions. Also
prints what `optimize = "auto"` chose (the teacher's log line). Not a test: no timing assertions.

usage: tests/bench/torchscript_optimize.py [--ssld build/bin/ssld]
"""
import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[2]
FMNIST = "/usr/share/datasets/fashion-mnist/"


def models():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    return {"small CNN": cnn, "ResNet-18": torchvision.models.resnet18(num_classes=10),
            "MobileNetV3-small": torchvision.models.mobilenet_v3_small(num_classes=10)}


def config(folder: Path, model: Path) -> Path:
    path = folder / "eval.toml"
    path.write_text(f"""
[run]
name = "optimize"
output_dir = "{folder}/runs"
device = "cpu"
[teacher]
type = "torchscript"
path = "{model}"
probe_shape = [3, 64, 64]
[data.val]
batch_size = 100
[[data.val.sources]]
type = "idx"
images = "{FMNIST}t10k-images-idx3-ubyte.gz"
labels = "{FMNIST}t10k-labels-idx1-ubyte.gz"
subset = {{ range = [0, 2000] }}
grayscale_to_rgb = true
[[data.val.augment]]
type = "resize"
size = [64]
[[data.val.batch_augment]]
type = "normalize"
mean = [0.286, 0.286, 0.286]
std = [0.353, 0.353, 0.353]
""")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ssld", default=str(ROOT / "build/bin/ssld"))
    args = parser.parse_args()
    print("model               as loaded img/s  optimized img/s  ratio  same predictions  auto chose")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, model in models().items():
            scripted = folder / "model.pt"
            torch.jit.script(model.eval()).save(str(scripted))
            path = config(folder, scripted)
            seconds, predictions = {}, {}
            for mode in ("off", "on"):
                out = folder / f"{mode}.csv"
                start = time.perf_counter()
                run = subprocess.run([args.ssld, "-q", "eval", str(path), "--teacher", "--set",
                                      f"teacher.optimize={mode}", "--predictions", str(out)], capture_output=True, text=True)
                if run.returncode != 0:
                    raise SystemExit(f"ssld eval failed:\n{run.stderr}")
                seconds[mode] = time.perf_counter() - start
                predictions[mode] = [line.split(",")[3] for line in out.read_text().splitlines()[1:]]
            auto = subprocess.run([args.ssld, "eval", str(path), "--teacher", "--set", "teacher.optimize=auto"],
                                  capture_output=True, text=True).stderr
            chose = "optimized" if "using it" in auto else "as loaded"
            same = sum(a == b for a, b in zip(predictions["off"], predictions["on"]))
            print(f"{name:<20}{2000 / seconds['off']:>16.0f}{2000 / seconds['on']:>17.0f}"
                  f"{seconds['off'] / seconds['on']:>7.2f}x{same:>12}/2000  {chose}")


if __name__ == "__main__":
    main()
