#!/usr/bin/env python3
"""Read ssld's teacher cache from Python: python3 + numpy only, nothing to build.

A cache folder (`[teacher_cache] dir`, default <run>/teacher_cache) holds one folder per key:
`key.json` (what the soft labels depend on: teacher, data pipeline, seed, format) and one
`epoch_NNNNN.bin` per complete epoch. This module reads an epoch file:

    import read_teacher_cache as tc
    epoch = tc.read_epoch("runs/x/teacher_cache/1f2e.../epoch_00000.bin")
    epoch.ids            # int64 [N]: the samples' stable ids, in the epoch's batch order
    epoch.values         # float32 [N, classes]: logits (fp32, fp16) or probabilities (topk)
    epoch.kind           # "logits" or "probabilities"
    epoch.steps          # [(ids, values)] per training step, the batches as the run saw them

or from a shell: `python3 scripts/read_teacher_cache.py EPOCH_FILE [--npz OUT.npz]`.

The file (little-endian): a 48-byte header (magic "SSLDSOFT", u32 version 1, u32 format 0 fp32 /
1 fp16 / 2 topk, i64 classes, i64 top_k, i64 steps, u64 key hash); per step a record (i64 step,
i64 n, i64 ids[n], the payload, u64 checksum); then the records' offsets (u64[steps]), the
index's offset (u64) and "SSLDEND\\0". Payloads: fp32 / fp16 logits [n, classes]; topk: fp16
probabilities [n, k] then int32 classes [n, k], the remaining mass spread evenly over the other
classes (as ssld decodes it, floored at 1e-8). Structure and sizes are checked (a damaged file
raises ValueError naming it); the checksums are ssld's own digest and are checked by ssld.
"""
import argparse
import struct
import sys
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

MAGIC, END_MAGIC = b"SSLDSOFT", b"SSLDEND\0"
FORMATS = {0: "fp32", 1: "fp16", 2: "topk"}


@dataclass
class Epoch:
    format: str
    classes: int
    top_k: int
    key_hash: int
    steps: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "probabilities" if self.format == "topk" else "logits"

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([ids for ids, _ in self.steps]) if self.steps else np.zeros(0, np.int64)

    @property
    def values(self) -> np.ndarray:
        if not self.steps:
            return np.zeros((0, self.classes), np.float32)
        return np.concatenate([values for _, values in self.steps])


def _decode(payload: bytes, n: int, fmt: str, classes: int, top_k: int) -> np.ndarray:
    if fmt == "fp32":
        return np.frombuffer(payload, "<f4").reshape(n, classes).copy()
    if fmt == "fp16":
        return np.frombuffer(payload, "<f2").reshape(n, classes).astype(np.float32)
    top = np.frombuffer(payload[: n * top_k * 2], "<f2").reshape(n, top_k).astype(np.float32)
    classes_of = np.frombuffer(payload[n * top_k * 2:], "<i4").reshape(n, top_k)
    if (classes_of < 0).any() or (classes_of >= classes).any():
        raise ValueError("a top-k class index is outside 0.." + str(classes - 1))
    rest = np.clip(1.0 - top.sum(1, keepdims=True), 0.0, None) / (classes - top_k)
    probabilities = np.repeat(rest, classes, axis=1).astype(np.float32)
    np.put_along_axis(probabilities, classes_of.astype(np.int64), top, axis=1)
    return np.maximum(probabilities, np.float32(1e-8))


def read_epoch(path: str) -> Epoch:
    """Every step of one epoch file; ValueError naming the file when it is not one or damaged."""
    with open(path, "rb") as f:
        data = f.read()
    where = f"teacher cache epoch file '{path}'"
    if len(data) < 48 + 16 or data[:8] != MAGIC:
        raise ValueError(f"{where} is not an ssld teacher cache epoch file")
    version, fmt_code, classes, top_k, steps, key_hash = struct.unpack_from("<IIqqqQ", data, 8)
    if version != 1:
        raise ValueError(f"{where} has format version {version}; this reader reads 1")
    if fmt_code not in FORMATS or classes < 1 or not (0 <= top_k < classes):
        raise ValueError(f"{where} has a damaged header (format {fmt_code}, {classes} classes, top_k {top_k})")
    if data[-8:] != END_MAGIC:
        raise ValueError(f"{where} is truncated (no end marker)")
    fmt = FORMATS[fmt_code]
    (index_offset,) = struct.unpack_from("<Q", data, len(data) - 16)
    if steps < 0 or index_offset < 48 or index_offset + 8 * steps != len(data) - 16:
        raise ValueError(f"{where} has a damaged index ({steps} steps, index at byte {index_offset})")
    offsets = struct.unpack_from(f"<{steps}Q", data, index_offset)
    per_sample = {"fp32": 4 * classes, "fp16": 2 * classes, "topk": 6 * top_k}[fmt]
    epoch = Epoch(fmt, classes, top_k, key_hash)
    for step, offset in enumerate(offsets):
        if offset + 16 > index_offset:
            raise ValueError(f"{where} step {step}: its record lies outside the file")
        stored_step, n = struct.unpack_from("<qq", data, offset)
        end = offset + 16 + n * (8 + per_sample) + 8
        if stored_step != step or n < 0 or end > index_offset:
            raise ValueError(f"{where} step {step}: damaged record header")
        ids = np.frombuffer(data, "<i8", n, offset + 16).copy()
        payload = data[offset + 16 + 8 * n: end - 8]
        try:
            values = _decode(payload, n, fmt, classes, top_k)
        except ValueError as error:
            raise ValueError(f"{where} step {step}: {error}") from None
        epoch.steps.append((ids, values))
    return epoch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("epoch_file")
    parser.add_argument("--npz", help="also write ids and values to this .npz file")
    args = parser.parse_args()
    try:
        epoch = read_epoch(args.epoch_file)
    except (OSError, ValueError) as error:
        print(f"read_teacher_cache: {error}", file=sys.stderr)
        return 2
    print(f"{args.epoch_file}: {len(epoch.steps)} steps, {len(epoch.ids)} samples, {epoch.classes} classes, "
          f"{epoch.format} ({epoch.kind}), key {epoch.key_hash:016x}")
    if args.npz:
        np.savez(args.npz, ids=epoch.ids, values=epoch.values)
        print(f"wrote {args.npz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
