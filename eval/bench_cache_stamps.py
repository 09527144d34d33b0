"""What it costs to know what each image is, for the feature cache (issue 15).

A cached feature is reused only while its image's stamp is unchanged. Two stamps were candidates:
  ``file_stamp``  absolute path, size and mtime (``features.file_stamp``: one stat per image; what
                  ``ImageSource.stamp`` uses, as the video frame cache does)
  ``sha1``        a hash of the file's bytes (reads every image in full on every run)
Both run over every image of the recipe's train and val splits (default ``recipes/flickr8k_lrcn2f.toml``:
the 7,000 Flickr8k images) for ``--rounds`` interleaved rounds; the table gives the median seconds per
method and the ratio to ``file_stamp`` measured in the same run.

    python eval/bench_cache_stamps.py [RECIPE] [--set KEY=VALUE ...] [--rounds 3]
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from captionkit.tasks import load_task
from captionkit.tasks.caption_data import load_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", nargs="?", default="recipes/flickr8k_lrcn2f.toml")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = load_task(args.recipe, args.overrides).cfg.data
    sources = [load_split(data, split) for split in ("train", "val")]
    images = [(src, i) for src in sources for i in src.ids()]
    files = [src.items[n].file for src in sources for n in range(len(src.items))]
    methods = {"file_stamp": lambda: [src.stamp(i) for src, i in images],
               "sha1": lambda: [hashlib.sha1(f.read_bytes()).hexdigest() for f in files]}
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, run in methods.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["file_stamp"])
    print(f"{len(images)} images, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB, {args.rounds} rounds")
    print(f"{'method':<12} {'median s':>9} {'x file_stamp':>13}")
    for name, ts in times.items():
        print(f"{name:<12} {statistics.median(ts):>9.3f} {statistics.median(ts) / base:>13.1f}")


if __name__ == "__main__":
    main()
