"""Sharma, Kiros & Salakhutdinov's Table 1 and Fig. 3 on the where-matters synthetic videos.

For every row (soft attention with lambda 0 / 1 / 10, the avg- and max-pooled LSTMs, the softmax
regression on the whole cube) and every seed: train the row's recipe (recipes/synth_attention_*.toml,
through ``captionkit train``'s code path) and score its best checkpoint on the test videos:
  accuracy              video accuracy (per-step probabilities averaged over windows)
  cell_share / chance   attention mass on the grid cells the deciding object's box touches, and
                        those cells' share of the grid (what uniform attention would give)
  pixel_share / chance  the same per pixel (each cell's mass spread over its pixels) vs the box area
  zone_share / chance   attention mass on the cells of the zone the deciding object lives in
  total_variation       mean 0.5 * |l_t - l_{t-1}|_1: how much attention moves between steps
  step_entropy          mean entropy of l_t / log P (1 = uniform)
  coverage_entropy      entropy of (1/T) sum_t l_t / log P: lambda = 10 should push it towards 1
Writes eval/results/attention_activity_table.{md,json} with mean and spread (sample std) over seeds
and the command of every run. The synthetic set and its cached grids are shared by every run. The
synthetic set has no validation split, so the scores are those of the LAST epoch's checkpoint
(``best.pt`` is chosen on the test videos and would flatter every row).

Usage: OMP_NUM_THREADS=1 python eval/attention_activity_table.py [--seeds 0 1 2] [--epochs N]
       [--rows l0 l1 ...] [--set KEY=VALUE ...] [--runs runs/attention_table]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from captionkit.attention_maps import box_share, motion_stats
from captionkit.data.synth_attention import read_boxes
from captionkit.tasks import load_task
from captionkit.tasks.attention_activity import read_videos, video_grids
from captionkit.tasks.loading import load_checkpoint
from captionkit.train import fit

ROOT = Path(__file__).resolve().parents[1]
ROWS = {  # row key -> (recipe, label as in the paper's Table 1)
    "softmax": ("synth_attention_softmax", "Softmax regression (full CNN feature cube)"),
    "avg": ("synth_attention_avg", "Avg pooled LSTM"),
    "max": ("synth_attention_max", "Max pooled LSTM"),
    "l0": ("synth_attention_l0", "Soft attention, lambda = 0"),
    "l1": ("synth_attention_l1", "Soft attention, lambda = 1"),
    "l10": ("synth_attention_l10", "Soft attention, lambda = 10"),
}
ATTENTION_KEYS = ("cell_share", "cell_chance", "pixel_share", "pixel_chance", "zone_share", "zone_chance",
                  "total_variation", "step_entropy", "coverage_entropy")


def score_checkpoint(path: Path) -> dict[str, float]:
    """Test-set accuracy and attention statistics of one trained checkpoint."""
    task, model = load_checkpoint(path, expect="attention_activity")
    task.cfg.data.progress = False
    _, _, test = read_videos(task.cfg.data)
    grids = video_grids(model.encoder, [v.path for v in test], task.cfg.data, torch.device("cpu"))
    preds = task.predict(model, grids, torch.device("cpu"))
    scores = {"accuracy": float(np.mean([p.scores.argmax().item() == v.labels[0] for p, v in zip(preds, test)]))}
    if preds[0].frame_weights is None:
        return scores
    step, S = task.cfg.data.frame_step, task.cfg.data.synth.size
    zone = [int(round(f * S)) for f in task.cfg.data.synth.zone]  # the area the deciding object lives in
    shares, zones = [], []
    for p, v in zip(preds, test):
        boxes, w = read_boxes(v.path), p.frame_weights.numpy()
        share = box_share(w, boxes["boxes"][::step], tuple(boxes["frame_size"]))
        if share:
            shares.append(share)
        zones.append(box_share(w, [zone] * len(w), (S, S)))
    scores.update({k: float(np.mean([s[k] for s in shares])) for k in shares[0]})
    scores.update({f"zone_{k[5:]}": float(np.mean([z[k] for z in zones])) for k in ("cell_share", "cell_chance")})
    scores.update(motion_stats(np.concatenate([p.window_weights.numpy() for p in preds])))
    return scores


def run_row(row: str, seed: int, args) -> dict:
    recipe = ROOT / "recipes" / f"{ROWS[row][0]}.toml"
    out = Path(args.runs) / f"{row}_seed{seed}"
    overrides = [f"train.seed={seed}", f"train.out_dir={out}", "train.progress=false", "data.progress=false",
                 *([f"train.epochs={args.epochs}"] if args.epochs else []), *args.overrides]
    command = f"captionkit train {recipe.relative_to(ROOT)} " + " ".join(f"--set {o}" for o in overrides)
    print(command, flush=True)
    t0 = time.time()
    summary = None
    if not (out / "last.pt").is_file():
        summary = fit(load_task(recipe, overrides))
    train_seconds = time.time() - t0
    scores = score_checkpoint(out / "last.pt")  # the final epoch: no choice made on the test videos
    epochs = summary["epochs"] if summary else None
    record = {"row": row, "seed": seed, "command": command, **scores, "train_seconds": train_seconds,
              "seconds_per_epoch": train_seconds / epochs if epochs else None}
    print(json.dumps(record), flush=True)
    return record


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(records: list[dict]) -> dict:
    """-> {row: {metric: [mean, std]}} over seeds."""
    table = {}
    for row in ROWS:
        rs = [r for r in records if r["row"] == row]
        if rs:
            keys = [k for k in ("accuracy", *ATTENTION_KEYS, "seconds_per_epoch") if rs[0].get(k) is not None]
            table[row] = {k: spread([r[k] for r in rs]) for k in keys} | {"seeds": len(rs)}
    return table


def markdown(table: dict, args) -> str:
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"  # noqa: E731
    lines = [f"# Soft attention vs pooling on the where-matters synthetic set (seeds {args.seeds})", "",
             "| model | accuracy | attention on the object's cells (chance) | on its pixels (chance) | "
             "on the zone's cells (chance) | total variation | step entropy | coverage entropy | s / epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row, t in table.items():
        att = [f"{fmt(t[k + '_share'])} ({t[k + '_chance'][0]:.3f})" for k in ("cell", "pixel", "zone")] + \
            [fmt(t[k]) for k in ("total_variation", "step_entropy", "coverage_entropy")] if "cell_share" in t else ["-"] * 6
        spe = f"{t['seconds_per_epoch'][0]:.1f}" if "seconds_per_epoch" in t else "-"
        lines.append(f"| {ROWS[row][1]} | {fmt(t['accuracy'])} | " + " | ".join(att) + f" | {spe} |")
    lines += ["", "Mean ± sample std over seeds; chance = 0.25 (4 classes). Entropies are divided by log P "
              "(1 = uniform). Commands: see the JSON (`runs`)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--epochs", type=int, default=0, help="override train.epochs (0 = the recipes')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--runs", default="runs/attention_table", help="checkpoints; finished runs are reused")
    p.add_argument("--out", default=str(ROOT / "eval" / "results" / "attention_activity_table"))
    args = p.parse_args()
    torch.set_num_threads(1)
    records = [run_row(row, seed, args) for seed in args.seeds for row in args.rows]
    table = summarise(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"table": table, "runs": records}, indent=1))
    out.with_suffix(".md").write_text(markdown(table, args))
    print(markdown(table, args))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
