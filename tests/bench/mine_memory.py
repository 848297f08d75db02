#!/usr/bin/python3
"""Peak memory of `ssld mine` at 1x and 10x candidates (not a test: it prints, asserts nothing).

The miner keeps per-class bounded heaps and the protected set, never all scores, so its peak RSS
should not grow with the number of candidates. Both runs mine generated 32x32 images (the
`synthetic` dataset) with the test teacher of known outputs (10 classes), top 100 per class,
perceptual-hash deduplication against 1000 protected images; only `count` differs.

    ninja -C build ssld ssld_test_plugins
    /usr/bin/python3 tests/bench/mine_memory.py [--base 20000] [--factor 10]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SSLD = os.path.join(ROOT, "build", "bin", "ssld")
TEACHER_PLUGIN = os.path.join(ROOT, "build", "tests", "plugins", "known_teacher")

CONFIG = """
[run]
threads = 2
[data]
threads = 2
[teacher]
type = "known"
classes = 10
[mine]
batch_size = 256
top_k_per_class = 100
output = "{output}"
[[mine.sources]]
type = "synthetic"
count = {count}
size = [32, 32]
labeled = false
[mine.dedup]
method = "phash"
[[mine.protected.sources]]
type = "synthetic"
count = 1000
size = [32, 32]
num_classes = 7
"""


def run(count, folder):
    config = os.path.join(folder, "mine_%d.toml" % count)
    output = os.path.join(folder, "out_%d" % count)
    with open(config, "w") as f:
        f.write(CONFIG.format(output=output, count=count))
    start = time.time()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", SSLD, "-q", "mine", config],
                            env=dict(os.environ, SSLD_PLUGIN_PATH=TEACHER_PLUGIN),
                            capture_output=True, text=True)
    seconds = time.time() - start
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    with open(os.path.join(output, "summary.json")) as f:
        summary = json.load(f)
    return peak_kb / 1024.0, seconds, summary["selected"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=20000)
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = [(n,) + run(n, folder) for n in (args.base, args.base * args.factor)]
    print("| candidates | peak RSS (MiB) | seconds | images/s | selected |")
    print("|---|---|---|---|---|")
    for n, rss, seconds, selected in rows:
        print("| %d | %.1f | %.1f | %.0f | %d |" % (n, rss, seconds, n / seconds, selected))
    print("peak RSS %dx / 1x: %.2f" % (args.factor, rows[1][1] / rows[0][1]))


if __name__ == "__main__":
    main()
