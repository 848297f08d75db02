#!/usr/bin/python3
"""Teacher benchmark: images/s of a checkpoint teacher's forward, as loaded in fp32 and with each
optimization, and how close the hardware limit it gets.

For the demo's teacher (small_cnn 32x3 on 28x28, batch 128), ResNet50-vd and MobileNetV3-large
(224x224, batch 16 and 32), build/bin/ssld_bench_teacher times one batch per variant (random
weights and BatchNorm statistics; 2 threads): fp32 as loaded, channels_last, the frozen inference
graph (optimize = "on": BatchNorm folded, oneDNN's fused kernels) and bf16 (where the CPU has
AVX512-BF16 or AMX; the teacher turns the batch channels_last for oneDNN's bf16 kernels). Each row gives the speed-up over fp32, how close the
logits stay (top-1 agreement, mean KL(fp32 || variant)), and the achieved GFLOP/s of the
convolutions and matrix products (counted from the forward's call shapes) as a fraction of
  - the nominal peak: cores x 2 AVX-512 FMA units x 16 fp32 lanes x 2 FLOPs x the clock
    /proc/cpuinfo reports (a lower bound on the real clock under turbo), and for bf16 the AMX
    tile unit's 1024 bf16 multiply-adds per cycle per core where the CPU has amx_bf16, else
    AVX512-BF16's 2 x the fp32 rate;
  - the measured peak: a large 3x3 convolution (oneDNN, channels_last) in the same precision on
    the same threads.
Not a test: no timing assertions.

usage: tests/bench/teacher_speed.py [--bench build/bin/ssld_bench_teacher] [--seconds 3] [--models demo,resnet50_vd,...]
"""
import argparse
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODELS = {
    "demo": ('type = "small_cnn"\nwidth = 32\ndepth = 3', [1, 28, 28], 128),
    "resnet50_vd": ('type = "resnet_d"\ndepth = 50', [3, 224, 224], 16),
    "mobilenet_v3_large": ('type = "mobilenet_v3"\nvariant = "large"', [3, 224, 224], 32),
}


def cpu():
    flags, mhz = set(), 0.0
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("cpu MHz") and not mhz:
            mhz = float(line.split(":", 1)[1])
    return flags, mhz


def nominal_peak_gflops(threads, flags, mhz, bf16):
    lanes = 16 if "avx512f" in flags else 8
    fp32 = threads * 2 * lanes * 2 * mhz / 1e3  # cores x FMA units x lanes x 2 FLOPs x GHz
    if not bf16:
        return fp32
    if "amx_bf16" in flags:
        return threads * 1024 * 2 * mhz / 1e3
    return 2 * fp32


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT / "build/bin/ssld_bench_teacher"))
    parser.add_argument("--seconds", default="3")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    flags, mhz = cpu()
    for name in args.models.split(","):
        table, shape, batch = MODELS[name]
        out = subprocess.run([args.bench, table, *map(str, shape), "--batch", str(batch), "--seconds", args.seconds],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        threads, flops = result["threads"], result["flops_per_image"]
        print(f"{name}: {flops / 1e9:.3f} GFLOP per image, batch {batch}, {threads} threads; "
              f"measured convolution peak {result['convolution_gflops_fp32']:.0f} GFLOP/s fp32, "
              f"{result['convolution_gflops_bf16']:.0f} bf16; nominal ({mhz:.0f} MHz) "
              f"{nominal_peak_gflops(threads, flags, mhz, False):.0f} fp32, "
              f"{nominal_peak_gflops(threads, flags, mhz, True):.0f} bf16")
        print("  variant               img/s   vs fp32  top-1 agree  mean KL     GFLOP/s  of nominal  of measured")
        base = result["variants"][0]["images_per_second"]
        for row in result["variants"]:
            bf16 = row["variant"].startswith("bf16")
            gflops = row["images_per_second"] * flops / 1e9
            nominal = nominal_peak_gflops(threads, flags, mhz, bf16)
            measured = result["convolution_gflops_bf16" if bf16 else "convolution_gflops_fp32"]
            print(f"  {row['variant']:20s} {row['images_per_second']:7.1f}  {row['images_per_second'] / base:6.2f}x"
                  f"  {100 * row['top1_agreement']:9.2f}%  {row['mean_kl_from_fp32']:9.2e}  {gflops:7.1f}"
                  f"  {100 * gflops / nominal:8.1f}%  {100 * gflops / measured:8.1f}%")


if __name__ == "__main__":
    main()
