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
  mean_map              (JSON only) the mean attention per grid cell over frames and videos
Writes eval/results/attention_activity_table.{md,json} with mean and spread (sample std) over seeds
and the command of every run. The synthetic set and its cached grids are shared by every run. The
synthetic set has no validation split, so the scores are those of the LAST epoch's checkpoint
(``best.pt`` is chosen on the test videos and would flatter every row).

It also reports the best map that never changes (one grid cell, the same in every frame of every
test video): what the paper's location softmax could reach without knowing where the object is.

Usage: OMP_NUM_THREADS=1 python eval/attention_activity_table.py [--seeds 0 1 2] [--epochs N]
       [--rows l0 l1 ...] [--set KEY=VALUE ...] [--runs runs/attention_table]
A subset of rows or seeds (--rows, --seeds) replaces only those records in the existing JSON; the
table is rebuilt from all records. A finished run is reused only if its checkpoint was trained with
the same recipe and overrides (else: an error naming the folder).
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from captionkit.attention_maps import best_fixed_cell, map_summary
from captionkit.data.synth_attention import read_boxes
from captionkit.errors import UserError
from captionkit.tasks import config_from_dict, load_task
from captionkit.tasks.attention_activity import read_videos, video_grids
from captionkit.tasks.loading import load_checkpoint, read_checkpoint
from captionkit.train import fit

ROOT = Path(__file__).resolve().parents[1]
ROWS = {  # row key -> (recipe, label as in the paper's Table 1)
    "softmax": ("synth_attention_softmax", "Softmax regression (full CNN feature cube)"),
    "avg": ("synth_attention_avg", "Avg pooled LSTM"),
    "max": ("synth_attention_max", "Max pooled LSTM"),
    "l0": ("synth_attention_l0", "Soft attention, lambda = 0"),
    "l1": ("synth_attention_l1", "Soft attention, lambda = 1"),
    "l10": ("synth_attention_l10", "Soft attention, lambda = 10"),
    "content": ("synth_attention_content", "Soft attention seeing the frame (authors' code), lambda = 0"),
    "content_l1": ("synth_attention_content_l1", "Soft attention seeing the frame (authors' code), lambda = 1"),
}
ATTENTION_KEYS = ("cell_share", "cell_chance", "pixel_share", "pixel_chance", "zone_share", "zone_chance",
                  "total_variation", "step_entropy", "coverage_entropy")


def test_boxes(data, test) -> tuple[list, list[int], tuple[int, int]]:
    """The deciding object's per-frame boxes of every test video (at data.frame_step), the zone it
    lives in (pixels) and the frame size."""
    S = data.synth.size
    boxes = [read_boxes(v.path)["boxes"][::data.frame_step] for v in test]
    return boxes, [int(round(f * S)) for f in data.synth.zone], (S, S)


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
    boxes, zone, size = test_boxes(task.cfg.data, test)
    frames = [p.frame_weights.numpy() for p in preds]
    mean_map = np.mean([f.mean(0) for f in frames], 0)  # (P,) where the maps go, row-major cells
    return scores | map_summary(frames, [p.window_weights.numpy() for p in preds], boxes, zone, size) | {
        "mean_map": [round(float(m), 4) for m in mean_map]}


def oracle(path: Path) -> dict:
    """The best map that never changes (one cell for every video and frame) on the test videos of
    the checkpoint at ``path``: its cell (row-major) and its share of the object's cells."""
    ckpt = read_checkpoint(path, expect="attention_activity")
    data = config_from_dict(ckpt["config"])[1].data
    _, _, test = read_videos(data)
    boxes, _, size = test_boxes(data, test)
    cell, share = best_fixed_cell(boxes, size, round(ckpt["extra"]["positions"] ** 0.5))
    return {"cell": cell, "cell_share": share}


def same_config(path: Path, recipe: Path, overrides: list[str]) -> bool:
    """Was the checkpoint at ``path`` trained with this recipe and overrides (output settings aside)?"""
    ignore = ("out_dir", "progress")
    def plain(cfg):  # noqa: E306
        d = asdict(cfg)
        return {sec: ({k: v for k, v in val.items() if k not in ignore} if isinstance(val, dict) else val)
                for sec, val in d.items()}
    trained = config_from_dict(read_checkpoint(path, expect="attention_activity")["config"])[1]
    return plain(trained) == plain(load_task(recipe, overrides).cfg)


def run_row(row: str, seed: int, args) -> dict:
    recipe = ROOT / "recipes" / f"{ROWS[row][0]}.toml"
    out = Path(args.runs) / f"{row}_seed{seed}"
    overrides = [f"train.seed={seed}", f"train.out_dir={out}", "train.progress=false", "data.progress=false",
                 *([f"train.epochs={args.epochs}"] if args.epochs else []), *args.overrides]
    shown = recipe.relative_to(ROOT) if recipe.is_relative_to(ROOT) else recipe
    command = f"captionkit train {shown} " + " ".join(f"--set {o}" for o in overrides)
    print(command, flush=True)
    if (out / "last.pt").is_file() and not same_config(out / "last.pt", recipe, overrides):
        raise UserError(f"{out}: trained with another config than {recipe.name} + {overrides}; "
                        "delete it or pass --runs DIR")
    if not (out / "last.pt").is_file():
        fit(load_task(recipe, overrides))
    scores = score_checkpoint(out / "last.pt")  # the final epoch: no choice made on the test videos
    epochs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r.get("event") == "epoch"]
    train_seconds = epochs[-1]["time"]  # fit's clock: training + validation every val_every epochs
    record = {"row": row, "seed": seed, "command": command, **scores, "train_seconds": train_seconds,
              "seconds_per_epoch": train_seconds / len(epochs)}
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


def markdown(table: dict, fixed: dict | None) -> str:
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"  # noqa: E731
    lines = ["# Soft attention vs pooling on the where-matters synthetic set", "",
             "| model | accuracy | attention on the object's cells (chance) | on its pixels (chance) | "
             "on the zone's cells (chance) | total variation | step entropy | coverage entropy | s / epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row, t in table.items():
        att = ["-"] * 6
        if "cell_share" in t:
            att = [f"{fmt(t[k + '_share'])} ({t[k + '_chance'][0]:.3f})" for k in ("cell", "pixel", "zone")] + \
                [fmt(t[k]) for k in ("total_variation", "step_entropy", "coverage_entropy")]
        spe = f"{t['seconds_per_epoch'][0]:.1f}" if "seconds_per_epoch" in t else "-"
        lines.append(f"| {ROWS[row][1]} ({t['seeds']} seeds) | {fmt(t['accuracy'])} | " + " | ".join(att)
                     + f" | {spe} |")
    lines += ["", "Mean ± sample std over seeds; chance = 0.25 (4 classes). Entropies are divided by log P "
              "(1 = uniform). Commands: see the JSON (`runs`)."]
    if fixed:
        lines += ["", f"Best map that never changes (no model: all mass on grid cell {fixed['cell']}, row-major, "
                  f"in every frame of every test video): {fixed['cell_share']:.3f} of the mass on the object's cells."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS),
                   help="run only these rows (with --seeds): the JSON's other records are kept")
    p.add_argument("--epochs", type=int, default=0, help="override train.epochs (0 = the recipes')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--runs", default="runs/attention_table", help="checkpoints; finished runs are reused")
    p.add_argument("--out", default=str(ROOT / "eval" / "results" / "attention_activity_table"))
    args = p.parse_args()
    torch.set_num_threads(1)
    records = [run_row(row, seed, args) for seed in args.seeds for row in args.rows]
    out = Path(args.out)
    if out.with_suffix(".json").is_file():  # keep the rows and seeds not run now
        done = {(r["row"], r["seed"]) for r in records}
        old = json.loads(out.with_suffix(".json").read_text())["runs"]
        records = [r for r in old if (r["row"], r["seed"]) not in done and r["row"] in ROWS] + records
    table = summarise(records)
    attention = [Path(r["command"].split("train.out_dir=")[1].split()[0]) / "last.pt" for r in records
                 if "cell_share" in r]
    fixed = oracle(attention[0]) if attention else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"table": table, "best_fixed_map": fixed, "runs": records},
                                                   indent=1))
    out.with_suffix(".md").write_text(markdown(table, fixed))
    print(markdown(table, fixed))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
