"""Issue 5's best Flickr8k result: an ensemble of LRCN-2f captioners decoded with beam search.

The members are ``recipes/flickr8k_lrcn2f_ensemble.toml`` trained at two MobileNetV2 input sizes
(288 and 224 pixels) with several seeds; each decoding step averages their next-word probabilities
(``captionkit.models.ensemble``). The script trains the members that have no ``best.pt`` yet (or
reuses them), then runs ``captionkit evaluate`` on the dev split with every member, once per decoding
setting, with the official pycocoevalcap scorers, and writes a Markdown table and the JSON.

    python eval/flickr8k_ensemble.py                          # 288 and 224 px x seeds 0,1,2
    python eval/flickr8k_ensemble.py --sizes 288 --seeds 0,1  # a smaller ensemble
    python eval/flickr8k_ensemble.py --set data.root=/path/to/data
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "recipes/flickr8k_lrcn2f_ensemble.toml"
DECODINGS = {"beam 3": ["--beam", "3"], "beam 3, length norm 0.5": ["--beam", "3", "--length-norm", "0.5"]}
SCORES = ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="288,224", help="MobileNetV2 input sizes of the members")
    p.add_argument("--seeds", default="0,1,2", help="training seeds per size")
    p.add_argument("--runs", default="runs/flickr8k_lrcn2f_ensemble", help="member run folders live here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra training override for every member (e.g. data.root=...); repeatable")
    p.add_argument("--metrics", default="bleu,meteor,rouge,cider", help="official scorers to run")
    p.add_argument("--out", default="eval/results/flickr8k_ensemble", help="captions, scores, table")
    return p.parse_args(argv)


def run(cmd: list[str], log: Path | None = None) -> str:
    """Run a captionkit command from the repo root; a failure stops the script with its output."""
    full = [sys.executable, "-m", "captionkit", *cmd]
    proc = subprocess.run(full, cwd=ROOT, capture_output=True, text=True)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(['captionkit', *cmd])}\n{proc.stderr[-2000:]}")
    return proc.stdout


def members(args) -> list[dict]:
    """Train (or reuse) every member; returns [{size, seed, checkpoint, trained_now, train_s}]."""
    out = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            run_dir = Path(args.runs) / f"px{size}_seed{seed}"
            best = run_dir / "best.pt"
            info = {"size": size, "seed": seed, "checkpoint": str(best), "trained_now": False}
            if not (ROOT / best).exists():
                cmd = ["train", RECIPE, "--set", f"encoder.image_size={size}", "--set", f"train.seed={seed}",
                       "--set", f'train.out_dir="{run_dir}"', "--set", "train.progress=false"]
                for o in args.overrides:
                    cmd += ["--set", o]
                print(f"training {shlex.join(['captionkit', *cmd])}", flush=True)
                t0 = time.time()
                (ROOT / run_dir).mkdir(parents=True, exist_ok=True)
                run(cmd, ROOT / run_dir / "train.log")
                info.update(trained_now=True, train_s=round(time.time() - t0))
            info["greedy_dev_CIDEr"] = best_greedy_cider(ROOT / run_dir / "log.jsonl")
            out.append(info)
    return out


def best_greedy_cider(log: Path) -> float | None:
    """The member's best greedy dev CIDEr-D during training (its early-stopping metric)."""
    if not log.exists():
        return None
    vals = [json.loads(line) for line in log.read_text().splitlines()]
    scores = [v["val"]["CIDEr"] for v in vals if v.get("event") == "epoch" and "val" in v]
    return round(max(scores), 4) if scores else None


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    team = members(args)
    ckpts = [a for m in team for a in ("--checkpoint", m["checkpoint"])]
    out = Path(args.out)
    rows = []
    for label, decoding in DECODINGS.items():
        tag = "val_" + "_".join(decoding).replace("--", "").replace("-", "")
        cmd = ["evaluate", *ckpts, "--split", "val", *decoding, "--metrics", args.metrics,
               "--out", str(out), "--tag", tag, "--json"]
        print(f"scoring {label}", flush=True)
        summary = json.loads(run(cmd).strip().splitlines()[-1])
        rows.append({"decoding": label, "images": summary["images"], "scores": summary["scores"],
                     "stats": summary["stats"],
                     "command": shlex.join(["captionkit", *cmd[:-1]])})
    result = {"command": shlex.join(["python", "eval/flickr8k_ensemble.py", *(argv or sys.argv[1:])]),
              "members": team, "rows": rows, "seconds": round(time.time() - t0)}
    (ROOT / out).mkdir(parents=True, exist_ok=True)
    (ROOT / out / "ensemble.json").write_text(json.dumps(result, indent=2))
    (ROOT / out / "ensemble.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    sizes = sorted({m["size"] for m in result["members"]}, reverse=True)
    lines = [f"Ensemble of {len(result['members'])} LRCN-2f captioners (MobileNetV2 input "
             f"{' and '.join(map(str, sizes))} px), Flickr8k dev, {result['rows'][0]['images']} images, "
             "official pycocoevalcap scorers.", "",
             "| decoding | " + " | ".join(SCORES) + " | words/caption |",
             "|---|" + "---:|" * (len(SCORES) + 1)]
    for r in result["rows"]:
        cells = [f"{r['scores'][k]:.3f}" if k in r["scores"] else "-" for k in SCORES]
        lines.append(f"| {r['decoding']} | " + " | ".join(cells) + f" | {r['stats']['avg_length']:.1f} |")
    lines += ["", "Members (best greedy dev CIDEr-D during training, the early-stopping metric): " + ", ".join(
        f"{m['size']} px seed {m['seed']}: {m['greedy_dev_CIDEr']}" for m in result["members"]) + "."]
    lines += ["", "Commands:", "", f"    {result['command']}"] + [f"    {r['command']}" for r in result["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
