"""Ablations of the soft-attention action model (Sharma, Kiros & Salakhutdinov, section 3) on the
where-matters synthetic set: what decides where its maps go, and what steadies the content variant
(learning rate, Show, Attend and Tell's gating scalar, a uniform start, lambda, epochs) over seeds.

Two steps, so that the many short runs can go to a machine with more cores (no video decoding, no
CNN there, nothing but this repository and one file):
  --pack FILE.npz     the cached grids (fp16) of a recipe's training and test videos, their labels
                      and the test videos' per-frame boxes, in one file
  --packed FILE.npz   train every variant x seed in worker processes (one thread each) with
                      ``train.fit`` over a task that reads the packed grids, score each LAST epoch
                      as eval/attention_activity_table.py does, and append one JSON line per run
                      to --out (results come in as runs finish); then write a Markdown table of
                      all of --out's runs beside it (.md; --summarise: only that)
A variant is NAME=RECIPE[,KEY=VALUE...] (recipe overrides as for --set), and NAME=RECIPE@N trains
the recipe on grid cell N alone (row-major; give it an avg_lstm recipe): how much a classifier can
learn from that one cell, e.g. the object's cell against its neighbours.

Usage: python eval/attention_activity_sweep.py --pack runs/synth_attention_grids.npz
       python eval/attention_activity_sweep.py --packed runs/synth_attention_grids.npz --workers 15 \\
           --seeds 0 1 2 --variant content=synth_attention_content,train.lr=1e-3 ... --out sweep.jsonl
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from captionkit.attention_maps import map_summary
from captionkit.data.action_sets import ActionVideo
from captionkit.tasks import load_task
from captionkit.tasks.attention_activity import AttentionActivityTask, GridWindows
from captionkit.tasks.loading import load_checkpoint
from captionkit.train import fit

ROOT = Path(__file__).resolve().parents[1]


def recipe_path(name: str) -> Path:
    """A recipe name in recipes/ (``synth_attention_l0``) or a path to a .toml file."""
    return Path(name) if name.endswith(".toml") else ROOT / "recipes" / f"{name}.toml"


def pack(recipe: str, out: Path) -> None:
    """Grids, labels and test boxes of ``recipe``'s videos -> one .npz."""
    import sys
    sys.path.insert(0, str(ROOT / "eval"))
    from attention_activity_table import test_boxes

    task = load_task(recipe_path(recipe), ["train.device=cpu"])
    task.setup()
    boxes, zone, _ = test_boxes(task.cfg.data, task.test_videos)
    box_array = np.array([[b if b else [-1] * 4 for b in video] for video in boxes], np.int32)  # (N, T, 4)
    np.savez(out, train=np.stack([np.asarray(g) for g in task._train_grids]),
             test=np.stack([np.asarray(g) for g in task._test_grids]),
             train_labels=[v.labels[0] for v in task.train_videos], test_labels=[v.labels[0] for v in task.test_videos],
             boxes=box_array, zone=zone, classes=task.classes)
    print(f"wrote {out}: {len(task.train_videos)} + {len(task.test_videos)} videos")


class PackedTask(AttentionActivityTask):
    """The attention_activity task over packed grids (optionally one grid cell): no videos, no CNN."""
    packed: dict = {}
    cell: int | None = None

    def setup(self, rank: int = 0, world: int = 1) -> None:
        p, cells = self.packed, slice(None) if self.cell is None else [self.cell]
        self._train_grids = list(p["train"][:, :, cells])
        self._test_grids = list(p["test"][:, :, cells])
        self.train_videos = [ActionVideo(Path(f"train{i}"), (int(c),)) for i, c in enumerate(p["train_labels"])]
        self.test_videos = [ActionVideo(Path(f"test{i}"), (int(c),)) for i, c in enumerate(p["test_labels"])]
        _, P, D = self._train_grids[0].shape
        self.extra.update(classes=[str(c) for c in p["classes"]], positions=P, feature_dim=D)
        self._train_set = GridWindows(self._train_grids, self.train_videos, self.cfg.data.window, len(self.classes))


def parse_variant(text: str) -> tuple[str, str, list[str], int | None]:
    name, spec = text.split("=", 1)
    recipe, *overrides = spec.split(",")
    recipe, _, cell = recipe.partition("@")
    return name, recipe, overrides, (int(cell) if cell else None)


def run_one(job: tuple) -> dict:
    variant, seed, packed_path, runs = job
    torch.set_num_threads(1)
    name, recipe, overrides, cell = parse_variant(variant)
    out = Path(runs) / f"{name}_seed{seed}"
    overrides = [*overrides, f"train.seed={seed}", f"train.out_dir={out}", "train.progress=false",
                 "data.progress=false", "train.device=cpu", "train.threads=1"]
    task = load_task(recipe_path(recipe), overrides)
    PackedTask.packed, PackedTask.cell = dict(np.load(packed_path)), cell
    packed = PackedTask(task.cfg)
    t0 = time.time()
    fit(packed, overwrite=True)
    seconds = time.time() - t0
    loaded, model = load_checkpoint(out / "last.pt", expect="attention_activity")
    packed.setup()
    preds = packed.predict(model, packed._test_grids, torch.device("cpu"))
    labels = PackedTask.packed["test_labels"]
    record = {"variant": variant, "seed": seed, "overrides": overrides, "seconds": seconds,
              "accuracy": float(np.mean([p.scores.argmax().item() == c for p, c in zip(preds, labels)]))}
    if preds[0].frame_weights is not None:
        S = task.cfg.data.synth.size
        boxes = [[list(map(int, b)) if b[0] >= 0 else [] for b in video] for video in PackedTask.packed["boxes"]]
        record |= map_summary([p.frame_weights.numpy() for p in preds], [p.window_weights.numpy() for p in preds],
                              boxes, [int(z) for z in PackedTask.packed["zone"]], (S, S))
        record["per_cell_mass"] = np.mean([p.frame_weights.numpy().mean(0) for p in preds], 0).round(4).tolist()
    return record


def summary(records: list[dict]) -> str:
    """One Markdown row per variant (in first-seen order): mean ± sample std over its seeds, and the
    per-seed share of attention on the object's cells."""
    fmt = lambda xs: f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"  # noqa: E731
    lines = ["| variant | seeds | accuracy | on the object's cells | per seed | on the zone | s / run |",
             "|---|---|---|---|---|---|---|"]
    for variant in dict.fromkeys(r["variant"] for r in records):
        rs = sorted((r for r in records if r["variant"] == variant), key=lambda r: r["seed"])
        att = ["-", "-", "-"]
        if "cell_share" in rs[0]:
            att = [fmt([r["cell_share"] for r in rs]), " / ".join(f"{r['cell_share']:.2f}" for r in rs),
                   fmt([r["zone_share"] for r in rs])]
        lines.append(f"| `{variant}` | {','.join(str(r['seed']) for r in rs)} | {fmt([r['accuracy'] for r in rs])} | "
                     + " | ".join(att) + f" | {statistics.fmean(r['seconds'] for r in rs):.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pack", help="write the packed grids of --recipe to this .npz")
    p.add_argument("--recipe", default="synth_attention_l0")
    p.add_argument("--packed", help="run the variants over this packed .npz")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=RECIPE[@CELL][,KEY=VALUE...]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--runs", default="runs/attention_sweep")
    p.add_argument("--out", default="runs/attention_sweep/results.jsonl")
    p.add_argument("--summarise", action="store_true", help="only rewrite the .md table of --out")
    args = p.parse_args()
    if args.pack:
        return pack(args.recipe, Path(args.pack))
    if not args.summarise:
        run_all(args)
    records = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
    Path(args.out).with_suffix(".md").write_text(summary(records))
    print(summary(records))


def run_all(args) -> None:
    """Train and score every variant x seed in ``args.workers`` processes; append to ``args.out``."""
    jobs = [(v, s, args.packed, args.runs) for v in args.variant for s in args.seeds]  # variants in order
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool, open(args.out, "a") as f:
        for record in pool.imap_unordered(run_one, jobs):
            f.write(json.dumps(record) + "\n")
            f.flush()
            print(json.dumps({k: v for k, v in record.items() if k != "per_cell_mass"}), flush=True)


if __name__ == "__main__":
    main()
