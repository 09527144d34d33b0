"""Feature extraction throughput: ``features.extract_features`` vs the plain loop it replaced.

Both run the same frozen encoder (a recipe's, default ``recipes/flickr8k_lrcn2f.toml``: ImageNet
MobileNetV2, 224 px) over the same real images (the first ``--images`` of the recipe's train split):
  ``plain loop``        the pre-issue-21 code: decode a batch, ``encoder(torch.stack(...))`` (NCHW, fp32)
                        under ``torch.inference_mode``, then the next batch
  ``extract_features``  captionkit's path: BatchNorm folded into the convolutions, channels_last,
                        images decoded by ``--threads`` background threads while the CNN runs
Rounds interleave the methods (the cores are shared, timings are noisy) and medians are reported with
the ratio to the plain loop measured in the same run. Agreement with the plain loop's fp32 features:
the smallest cosine similarity and the largest absolute difference over all images. ``--bf16-images N``
also times bf16 autocast on N images and reports its agreement (slow where the CPU has no native bf16).
No cache is written.

    python eval/bench_extract.py [RECIPE] [--set KEY=VALUE ...] [--images 64] [--batch 32]
                                 [--rounds 3] [--threads 2] [--bf16-images 0]
                                 [--out eval/results/bench_extract.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from captionkit.encoders import bf16_supported, build_image_encoder
from captionkit.features import extract_features
from captionkit.tasks import load_task
from captionkit.tasks.caption_data import load_split


def plain_loop(encoder, ids, load, batch: int) -> torch.Tensor:
    """The extraction loop before issue 21 (features (N, D))."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch):
            images = torch.stack([encoder.preprocess(load(i)) for i in ids[start:start + batch]])
            out.append(encoder.net(images).float())  # (b, 3, S, S) -> (b, D)
    return torch.cat(out)


def captionkit_path(encoder, ids, load, batch: int, threads: int) -> torch.Tensor:
    feats, _ = extract_features(encoder, ids, load, None, batch, "cpu", threads=threads)
    return torch.stack([feats[i] for i in ids])  # (N, D)


def agreement(feats: torch.Tensor, ref: torch.Tensor) -> dict:
    a, b = feats.flatten(1).double(), ref.flatten(1).double()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)  # (N,)
    return {"min_cosine": cos.min().item(), "max_abs_diff": (a - b).abs().max().item(),
            "max_rel_l2": ((a - b).norm(dim=1) / b.norm(dim=1)).max().item()}


def timed(fn) -> tuple[float, float, torch.Tensor]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def encoders(recipe: str, overrides: list[str]):
    """(fp32 encoder, bf16 encoder, train split) of the recipe."""
    task = load_task(recipe, overrides)
    cfg = task.cfg
    root = cfg.data.root or None
    fp32 = build_image_encoder(cfg.encoder, root).eval()
    bf16 = build_image_encoder(dataclasses.replace(cfg.encoder, precision="bf16"), root).eval()
    bf16.load_state_dict(fp32.state_dict())
    return fp32, bf16, load_split(cfg.data, "train")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/flickr8k_lrcn2f.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--bf16-images", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("eval/results/bench_extract.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fp32, bf16, src = encoders(args.recipe, args.overrides)
    ids = src.ids()[:args.images]
    methods = {"plain loop": lambda: plain_loop(fp32, ids, src.image_by_id, args.batch),
               "extract_features (1 decode thread)": lambda: captionkit_path(fp32, ids, src.image_by_id,
                                                                            args.batch, 1),
               "extract_features (2 decode threads)": lambda: captionkit_path(fp32, ids, src.image_by_id,
                                                                             args.batch, 2)}
    warm = ids[:2]  # first calls pay for allocations and oneDNN primitive creation: untimed
    plain_loop(fp32, warm, src.image_by_id, 2), captionkit_path(fp32, warm, src.image_by_id, 2, 1)
    runs: dict[str, list] = {name: [] for name in methods}
    feats: dict[str, torch.Tensor] = {}
    for r in range(args.rounds):
        for name, fn in methods.items():
            wall, cpu, feats[name] = timed(fn)
            runs[name].append((wall, cpu))
            print(f"round {r + 1} {name}: {len(ids) / wall:.1f} images/s", flush=True)
    ref = feats["plain loop"]
    base = statistics.median(w for w, _ in runs["plain loop"])
    rows = [{"method": name, "images": len(ids), "median_s": statistics.median(w for w, _ in runs[name]),
             "median_cpu_s": statistics.median(c for _, c in runs[name]), **agreement(feats[name], ref)}
            for name in methods]
    if args.bf16_images:
        sub = ids[:args.bf16_images]
        wall, cpu, out = timed(lambda: captionkit_path(bf16, sub, src.image_by_id, args.batch, 1))
        rows.append({"method": "extract_features bf16 autocast", "images": len(sub), "median_s": wall,
                     "median_cpu_s": cpu, **agreement(out, ref[:len(sub)])})
    for row in rows:
        row["images_per_s"] = row["images"] / row["median_s"]
        row["ratio_to_plain_loop"] = row["images_per_s"] / (len(ids) / base)
    print(table(rows))
    meta = {"recipe": args.recipe, "overrides": args.overrides, "encoder": fp32.identity,
            "batch": args.batch, "rounds": args.rounds, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_native_bf16": bf16_supported("cpu"),
            "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(f"`{meta['encoder']}`, {args.threads} torch threads, batch "
                                           f"{args.batch}, {args.rounds} rounds\n\n{table(rows)}\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def table(rows: list[dict]) -> str:
    lines = ["| method | images | median s | images/s | ratio to plain loop | CPU s | min cosine "
             "| max abs diff |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['images']} | {r['median_s']:.1f} | {r['images_per_s']:.1f} "
                     f"| {r['ratio_to_plain_loop']:.2f}x | {r['median_cpu_s']:.1f} "
                     f"| {r['min_cosine']:.6f} | {r['max_abs_diff']:.2e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
