"""Issue 18: the soft-attention captioner on Flickr8k, from a cold feature cache to official dev scores.

Steps, each timed:
  1. features: the recipe's task is set up in this process with ``encoder.cache_dir`` pointing at a
     fresh folder (``--cache``; "cold" unless it already holds the grids), which runs the CNN over the
     train + dev images exactly as ``captionkit train`` would (frozen grid, or the lower blocks when
     ``model.attention.tune_from`` is set);
  2. training: ``captionkit train RECIPE`` with that cache (warm now), wall time; with ``--stage2
     RECIPE2`` then ``captionkit train RECIPE2`` from stage 1's best.pt (self-critical training), also
     timed, and stage 2's checkpoint is the one decoded;
  3. decoding: beam size x length normalisation x no-repeated-n-gram grid on dev (``captionkit evaluate
     --fast``; ``--no-repeat-ngrams 0,3``: with and without trigram blocking); the
     setting is chosen by the rule of eval/flickr8k_ensemble.py, fixed in advance: the highest
     CIDEr-D on half A (the first ``--select-images`` dev images); ties by BLEU-4;
  4. official pycocoevalcap scores of all 1,000 dev images for beam 3 and for the chosen setting, and
     the chosen setting again with ``--allow-unk`` (what masking <unk> does to the scores).
A run that already has ``best.pt`` is reused (steps 1-2 are skipped and reported as such).

    python eval/flickr8k_attention.py                                   # recipes/flickr8k_attention.toml
    python eval/flickr8k_attention.py --recipe recipes/flickr8k_attention_tune.toml
    python eval/flickr8k_attention.py --stage2 recipes/flickr8k_attention_scst.toml
    python eval/flickr8k_attention.py --set data.train_limit=3000 --beams 3,5 --length-norms 0,0.5
Writes attention.json and attention.md (+ captions and scores files) to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flickr8k_ensemble import (ROOT, SCORES, best_greedy_cider, decoding_grid, dev_references, grid_row,  # noqa: E402
                               official, run, select_on_half_a, write_result)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="recipes/flickr8k_attention.toml")
    p.add_argument("--run", default=None, help="run folder (default: the recipe's train.out_dir)")
    p.add_argument("--cache", default=".cache/captionkit/features_attention",
                   help="feature cache of this experiment (a new folder = a cold cache)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--beams", default="3,5,10")
    p.add_argument("--length-norms", default="0,0.5,1")
    p.add_argument("--no-repeat-ngrams", default="0,3",
                   help="--no-repeat-ngram values of the grid (0 = off; 3 = no repeated trigram)")
    p.add_argument("--select-images", type=int, default=500)
    p.add_argument("--data-root", default=None)
    p.add_argument("--metrics", default="bleu,meteor,rouge,cider")
    p.add_argument("--out", default="eval/results/flickr8k_attention")
    p.add_argument("--stage2", default=None, metavar="RECIPE",
                   help="a second training stage from stage 1's best.pt (e.g. recipes/flickr8k_attention_scst.toml), "
                        "timed with the first; its checkpoint is the one decoded")
    p.add_argument("--stage2-run", default=None, help="stage 2's run folder (default: stage 1's + '_scst')")
    p.add_argument("--stage2-set", dest="stage2_overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def overrides(args) -> list[str]:
    out = [f'encoder.cache_dir="{args.cache}"', *args.overrides]
    return out + ([f'train.out_dir="{args.run}"'] if args.run else [])


def extract(args) -> dict:
    """Step 1 in this process: the task's own setup fills the cache; returns timings and counts."""
    import torch

    from captionkit.tasks import load_task

    task = load_task(ROOT / args.recipe, overrides(args))
    threads = task.cfg.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    cache = Path(task.cfg.encoder.cache_dir)
    empty = not cache.is_dir() or not any(cache.rglob("shard_*.pt"))  # shards may still be stale (re-encoded)
    t0 = time.time()
    task.setup()
    return {"extract_s": round(time.time() - t0, 1), "cache_was_empty": empty, "threads": threads,
            "train_images": len(task.train_src.items), "dev_images": len(task.val_src.items),
            "encoder_identity": task.encoder().identity, "out_dir": task.cfg.train.out_dir}


def train(args, info: dict) -> dict:
    run_dir = Path(info["out_dir"])
    if (ROOT / run_dir / "best.pt").exists():
        return {"trained_now": False, "checkpoint": str(run_dir / "best.pt")}
    cmd = ["train", args.recipe] + [a for o in overrides(args) for a in ("--set", o)]
    print(f"training: {shlex.join(['captionkit', *cmd])}", flush=True)
    t0 = time.time()
    (ROOT / run_dir).mkdir(parents=True, exist_ok=True)
    run(cmd, ROOT / run_dir / "train.log")
    return {"trained_now": True, "train_s": round(time.time() - t0), "checkpoint": str(run_dir / "best.pt"),
            "command": shlex.join(["captionkit", *cmd])}


def stage2(args, info: dict) -> dict:
    """``--stage2 RECIPE``: train it from stage 1's best.pt on the same (now warm) cache, timed."""
    first = info["checkpoint"]
    run_dir = Path(args.stage2_run or f"{Path(first).parent}_scst")
    out = {"stage1_checkpoint": first, "checkpoint": str(run_dir / "best.pt"), "stage2_recipe": args.stage2,
           "stage1_greedy_dev_CIDEr": best_greedy_cider(ROOT / Path(first).parent / "log.jsonl")}
    if (ROOT / run_dir / "best.pt").exists():
        return out | {"stage2_trained_now": False}
    sets = [f'encoder.cache_dir="{args.cache}"', f'train.init_from="{first}"', f'train.out_dir="{run_dir}"',
            *args.stage2_overrides]
    cmd = ["train", args.stage2] + [a for o in sets for a in ("--set", o)]
    print(f"stage 2: {shlex.join(['captionkit', *cmd])}", flush=True)
    t0 = time.time()
    (ROOT / run_dir).mkdir(parents=True, exist_ok=True)
    run(cmd, ROOT / run_dir / "train.log")
    return out | {"stage2_trained_now": True, "stage2_s": round(time.time() - t0),
                  "stage2_command": shlex.join(["captionkit", *cmd])}


def evaluate(args, ckpt: str, tag: str, decoding: list[str]) -> dict:
    cmd = ["evaluate", "--checkpoint", ckpt, "--split", "val", *decoding, "--fast", "--no-report", "--out", args.out, "--tag", tag]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    print(f"decoding {tag}", flush=True)
    run(cmd)
    decoded = json.loads((ROOT / args.out / f"scores_{tag}.json").read_text()).get("decode_seconds")
    return {"tag": tag, "decode_s": decoded, "command": shlex.join(["captionkit", *cmd])}


def unk_share(captions: Path) -> float:
    caps = [r["caption"] for r in json.loads(captions.read_text())]
    return round(sum("<unk>" in c.split() for c in caps) / max(1, len(caps)), 4)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    t0 = time.time()
    info = extract(args)
    info.update(train(args, info))
    if args.stage2:
        info.update(stage2(args, info))
    info["greedy_dev_CIDEr"] = best_greedy_cider(ROOT / Path(info["checkpoint"]).parent / "log.jsonl")
    refs, ids, tokens, split = dev_references(ROOT / info["checkpoint"], args.data_root)
    halves = {"A": ids[:args.select_images], "B": ids[args.select_images:], "all": ids}
    info["dev_images"] = len(ids)  # evaluate captions the whole split
    out, grid = ROOT / args.out, []
    for n in [int(x) for x in args.no_repeat_ngrams.split(",")]:
        for beam, alpha, decoding, tag in decoding_grid(args.beams, args.length_norms):
            if n:
                decoding, tag = decoding + ["--no-repeat-ngram", str(n)], f"{tag}_nr{n}"
            row = evaluate(args, info["checkpoint"], tag, decoding)
            grid.append({"beam": beam, "length_norm": alpha, "no_repeat_ngram": n, "decoding": decoding, **row,
                         **grid_row(out / f"captions_{row['tag']}.json", refs, halves)})
    chosen = select_on_half_a(grid)
    decoding = chosen["decoding"]
    unk = evaluate(args, info["checkpoint"], chosen["tag"] + "_allow_unk", decoding + ["--allow-unk"])
    baseline = next((r for r in grid if r["beam"] == 3 and r["length_norm"] == 0 and not r["no_repeat_ngram"]), None)
    rows = []
    for label, r in (("beam 3", baseline), ("selected on half A", chosen), ("selected, --allow-unk", unk)):
        if r is None or (label == "beam 3" and r is chosen):
            continue
        captions = Path(args.out) / f"captions_{r['tag']}.json"
        rows.append({"decoding": f"{label}: {r['tag']}", "tag": r["tag"], "unk_share": unk_share(ROOT / captions),
                     **official(captions, tokens, split, args.metrics)})
    result = {"command": shlex.join(["python", "eval/flickr8k_attention.py", *(argv or sys.argv[1:])]),
              "recipe": args.recipe, "run": info, "grid": grid, "rows": rows, "seconds": round(time.time() - t0),
              "selection": {"rule": "highest CIDEr-D on half A", "half_A_images": len(halves["A"])}}
    write_result(out, "attention", result, markdown)
    return 0


def markdown(result: dict) -> str:
    info = result["run"]
    recipe = result["recipe"] + (f" then {info['stage2_recipe']}" if info.get("stage2_recipe") else "")
    lines = [f"{recipe} on Flickr8k dev (all {info['dev_images']} images), official pycocoevalcap scorers:", "",
             "| decoding | " + " | ".join(SCORES) + " | captions with <unk> |", "|---|" + "---:|" * (len(SCORES) + 1)]
    for r in result["rows"]:
        cells = [f"{r['scores'][k]:.4f}" if k in r["scores"] else "-" for k in SCORES]
        lines.append(f"| {r['decoding']} | " + " | ".join(cells) + f" | {r['unk_share']:.1%} |")
    lines += ["", f"Decoding grid (fast exact scorer; half A = the first {result['selection']['half_A_images']} "
              "dev images select the setting):", "",
              "| beam | length norm | no repeated n-gram | A BLEU-4 | A CIDEr-D | B BLEU-4 | B CIDEr-D | dev BLEU-4 "
              "| dev CIDEr-D | decode s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for g in result["grid"]:
        lines.append(f"| {g['beam']} | {g['length_norm']:g} | {g.get('no_repeat_ngram') or '-'} | " + " | ".join(
            f"{g[h][m]:.4f}" for h in ("A", "B", "all") for m in ("Bleu_4", "CIDEr"))
            + f" | {'-' if g['decode_s'] is None else round(g['decode_s'])} |")
    trained = (f"trained in {info['train_s']} s" if info.get("trained_now") else "reused an existing run")
    if info.get("stage2_recipe"):
        trained += (f"; stage 2 ({info['stage2_recipe']}) trained in {info['stage2_s']} s" if info.get("stage2_trained_now")
                    else f"; stage 2 ({info['stage2_recipe']}): reused an existing run")
        trained += f" (stage 1's best greedy dev CIDEr-D {info['stage1_greedy_dev_CIDEr']})"
    if info.get("trained_now") and info.get("stage2_trained_now", True):
        total = info["extract_s"] + info["train_s"] + info.get("stage2_s", 0)
        trained += f"; cold cache to trained model {total / 60:.1f} min"
    cache = "empty cache folder" if info["cache_was_empty"] else "cache folder with shards (valid ones reused)"
    lines += ["", f"Features ({cache}, {info['train_images']} train + "
              f"{info['dev_images']} dev images, {info['threads']} threads): {info['extract_s']} s; {trained}; "
              f"best greedy dev CIDEr-D during training {info['greedy_dev_CIDEr']}.", "", "Commands:", "",
              f"    {result['command']}"] + ([f"    {info['command']}"] if info.get("command") else []) \
        + ([f"    {info['stage2_command']}"] if info.get("stage2_command") else []) \
        + [f"    {g['command']}" for g in result["grid"]] + [f"    {r['command']}" for r in result["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
