"""``captionkit train RECIPE.toml [--set key=value ...] [--resume | --overwrite]`` (also under ``torchrun``)."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe (torchrun-aware)",
                       description="Train from a TOML recipe; --set overrides any key (e.g. train.lr=1e-3).")
    p.add_argument("recipe", help="recipes/*.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value (repeatable), e.g. --set train.epochs=5")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir exactly")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in a train.out_dir that holds a run: its last.pt, best.pt and log.jsonl "
                        "are moved into train.out_dir/replaced-<UTC time>/ (nothing is deleted)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..tasks import load_task
    from ..train import dist_info, fit

    task = load_task(args.recipe, args.overrides)
    summary = fit(task, resume=args.resume, overwrite=args.overwrite)
    if dist_info()[0] == 0:
        summary.pop("history")
        print(json.dumps(summary, indent=2))
    return 0
