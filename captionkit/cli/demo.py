"""``captionkit demo``: train a small LRCN-2f on built-in synthetic scenes, caption held-out scenes,
score them and print the table. Runs on 2 CPU cores in a few minutes; needs no data and no network."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from .decode_args import json_or_text, positive_int

# The demo recipe (recipes/synth_lrcn2f.toml is the same as a file). A tiny CNN is trained end to end
# with a factored 2-layer LSTM; sizes are small so that it trains in CPU minutes.
DEMO = {
    "task": "caption",
    "data": {"source": "synth", "synth_train": 1500, "synth_val": 200, "synth_test": 200, "min_count": 1,
             "group_captions": True},   # one image + its 5 captions per item: the CNN runs once per image
    "encoder": {"name": "tiny", "finetune": True, "image_size": 64},
    "model": {"variant": "2f", "unit": "lstm", "hidden": 256, "embed": 128, "dropout": 0.1},
    "train": {"epochs": 4, "batch_size": 20, "lr": 3e-3, "schedule": "cosine", "log_every": 20},
    "decode": {"method": "greedy", "max_len": 16},
}


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="train, caption and score on built-in synthetic data (minutes, CPU)")
    p.add_argument("--out", default=None, help="run folder (default: runs/demo/<time>)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the demo's epochs")
    p.add_argument("--json", action="store_true",
                   help="print the scores as one JSON object on stdout (everything else goes to stderr)")
    p.set_defaults(run=run)


def run(args) -> int:
    """Train, caption, score; with --json, stdout is the scores object alone (the rest to stderr)."""
    return json_or_text(args.json, lambda: train_and_score(args))


def train_and_score(args) -> dict:
    import torch

    from ..metrics import caption_stats, score_captions
    from ..tasks import load_task
    from ..tasks.loading import load_checkpoint
    from ..tasks.caption_data import load_split
    from ..tasks.caption_generate import caption_source
    from ..train import fit

    t0 = time.time()
    recipe = copy.deepcopy(DEMO)
    out = Path(args.out or f"runs/demo/{time.strftime('%Y%m%d-%H%M%S')}")
    recipe["train"]["out_dir"] = str(out)
    if args.epochs:
        recipe["train"]["epochs"] = args.epochs
    print(f"captionkit demo: training LRCN-2f on {recipe['data']['synth_train']} synthetic scenes "
          f"-> {out}", flush=True)
    task = load_task(data=recipe)
    summary = fit(task)
    t_train = time.time() - t0

    task, model = load_checkpoint(out / "best.pt", "caption")
    test = load_split(task.cfg.data, "test")
    hyps = caption_source(model, test, task.vocab, task.cfg.decode, torch.device("cpu"))
    res = {it.image_id: h[0][0] for it, h in zip(test.items, hyps)}
    refs = {it.image_id: it.captions for it in test.items}
    report = score_captions(refs, res)
    train_caps = [c for it in load_split(task.cfg.data, "train").items for c in it.captions]
    stats = caption_stats(res, train_caps, refs)
    print("\nexamples (held-out test scenes):")
    for it in test.items[:5]:
        print(f"  {it.image_id}: {res[it.image_id]!r}   (reference: {it.captions[0]!r})")
    print(f"\nscores on {len(res)} held-out synthetic test images:")
    print(report.table())
    print("caption statistics: " + ", ".join(f"{k}={v:.3f}" for k, v in stats.items()))
    total = time.time() - t0
    print(f"\ntime: training {t_train:.0f} s, total {total:.0f} s; best checkpoint {out / 'best.pt'} "
          f"(val CIDEr {summary['best']:.3f})")
    print(f"caption your own images: captionkit caption --checkpoint {out / 'best.pt'} IMAGE...")
    (out / "demo_scores.json").write_text(json.dumps(
        {"scores": report.scores, "stats": stats, "seconds": total, "settings": report.settings}, indent=2))
    return report.scores
