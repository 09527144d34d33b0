"""Issue 5's best Flickr8k result: an ensemble of LRCN-2f captioners decoded with beam search.

The members are ``recipes/flickr8k_lrcn2f_ensemble.toml`` trained at MobileNetV2 input sizes and
seeds given by ``--members``; each decoding step averages their next-word probabilities
(``captionkit.models.ensemble``). The script trains the members that have no ``best.pt`` yet (or
reuses them), then decodes the dev split with the ensemble for every beam size x length
normalisation in the grid (``captionkit evaluate --fast``).

The test images are withheld, so the decoding is chosen on dev, by a rule fixed in advance: dev is
cut into half A (the first ``--select-images`` images of the split list) and half B (the rest); the
setting with the highest CIDEr-D on half A is selected, and its captions for the whole dev split
are scored with the official pycocoevalcap scorers (Java), next to LRCN's plain beam 3. The grid
table shows every setting on A, B and all of dev (fast exact scorer), so the cost of the choice is
visible. Writes ``ensemble.md`` and ``ensemble.json`` (+ every captions and scores file) to --out.

    python eval/flickr8k_ensemble.py                               # the six members below
    python eval/flickr8k_ensemble.py --members 288:0-8,224:0-2     # twelve
    python eval/flickr8k_ensemble.py --beams 3 --length-norms 0.5  # one setting
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
SCORES = ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def parse_members(text: str) -> list[tuple[int, int]]:
    """"288:0-2,224:0,2" -> [(288, 0), (288, 1), (288, 2), (224, 0), (224, 2)]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if ":" in part:
            size, seeds = part.split(":", 1)
            last_size = int(size)
        elif out:
            size, seeds = str(last_size), part
        else:
            raise SystemExit(f"--members: {part!r} needs a size first, e.g. 288:0-2")
        lo, _, hi = seeds.partition("-")
        out += [(int(size), seed) for seed in range(int(lo), int(hi or lo) + 1)]
    if len(set(out)) != len(out):
        raise SystemExit(f"--members {text!r} names a member twice")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", default="288:0-2,224:0-2",
                   help="SIZE:SEEDS[,...]: MobileNetV2 input size and training seeds (a-b ranges)")
    p.add_argument("--beams", default="3,5,10", help="beam sizes of the grid")
    p.add_argument("--length-norms", default="0,0.5,1", help="length normalisation exponents of the grid")
    p.add_argument("--select-images", type=int, default=500,
                   help="half A = the first N dev images (selects the setting); half B = the rest")
    p.add_argument("--runs", default="runs/flickr8k_lrcn2f_ensemble", help="member run folders live here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra training override for every member (e.g. data.root=...); repeatable")
    p.add_argument("--data-root", default=None, help="Flickr8k root for scoring (default: the recipe's)")
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
    for size, seed in parse_members(args.members):
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


def dev_references(checkpoint: Path, data_root: str | None) -> tuple[dict[str, list[str]], list[str], Path, Path]:
    """-> ({dev image: reference captions}, dev images in split-list order, token file, split list)."""
    import torch

    from captionkit.data.captions import read_flickr8k_tokens, read_split_list

    data = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]["data"]
    root = Path(data_root or data["root"])  # relative to ROOT, where every command runs
    tokens, split = root / data["annotations"], root / data["val_split"]
    caps = read_flickr8k_tokens(ROOT / tokens)
    ids = read_split_list(ROOT / split)
    return {i: caps[i] for i in ids}, ids, tokens, split


def grid_row(captions: Path, refs: dict[str, list[str]], halves: dict[str, list[str]]) -> dict:
    """Fast exact BLEU-4 / CIDEr-D of one captions file on each half and on all of dev."""
    from captionkit.metrics import fast_scores

    res = {str(r["image_id"]): r["caption"] for r in json.loads(captions.read_text())}
    row = {}
    for name, ids in halves.items():
        s = fast_scores({i: refs[i] for i in ids}, {i: res[i] for i in ids})
        row[name] = {"Bleu_4": round(s["Bleu_4"], 4), "CIDEr": round(s["CIDEr"], 4)}
    return row


def official(captions: Path, tokens: Path, split: Path, metrics: str) -> dict:
    cmd = ["score", "--results", str(captions), "--references", str(tokens), "--split-list", str(split),
           "--metrics", metrics, "--json"]
    report = json.loads(run(cmd).strip().splitlines()[-1])  # {metric: score, ..., "settings": {...}}
    return {"scores": {k: v for k, v in report.items() if k != "settings"}, "settings": report["settings"],
            "command": shlex.join(["captionkit", *cmd])}


def decoded_already(out: Path, tag: str, team: list[dict], beam: int, alpha: float) -> bool:
    """True when --out holds this setting's captions from these very members (a rerun resumes)."""
    scores, captions = out / f"scores_{tag}.json", out / f"captions_{tag}.json"
    if not (scores.is_file() and captions.is_file()):
        return False
    done = json.loads(scores.read_text())
    paths = done.get("ensemble", [done.get("checkpoint")])
    return (paths == [m["checkpoint"] for m in team] and done["decode"]["beam_size"] == beam
            and done["decode"]["length_norm"] == alpha and done["split"] == "val")


def decoding_grid(beams: str, length_norms: str):
    """Every (beam, length norm) of the grid -> (beam, alpha, CLI decoding flags, file tag)."""
    for beam in [int(b) for b in beams.split(",")]:
        for alpha in [float(a) for a in length_norms.split(",")]:
            decoding = ["--beam", str(beam)] + (["--length-norm", f"{alpha:g}"] if alpha else [])
            yield beam, alpha, decoding, f"val_beam{beam}" + (f"_ln{alpha:g}" if alpha else "")


def select_on_half_a(grid: list[dict]) -> dict:
    """The rule fixed in advance: the highest CIDEr-D on half A (BLEU-4 breaks ties)."""
    return max(grid, key=lambda r: (r["A"]["CIDEr"], r["A"]["Bleu_4"]))


def write_result(out: Path, name: str, result: dict, markdown) -> None:
    """``<out>/<name>.json`` and ``.md``; the Markdown is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    team = members(args)
    ckpts = [a for m in team for a in ("--checkpoint", m["checkpoint"])]
    out = ROOT / args.out  # files are read and written here; commands name paths relative to ROOT
    refs, ids, tokens, split = dev_references(ROOT / team[0]["checkpoint"], args.data_root)
    if not 0 < args.select_images < len(ids):
        raise SystemExit(f"--select-images must be between 1 and {len(ids) - 1}, got {args.select_images}")
    halves = {"A": ids[:args.select_images], "B": ids[args.select_images:], "all": ids}
    grid = []
    for beam, alpha, decoding, tag in decoding_grid(args.beams, args.length_norms):
        cmd = ["evaluate", *ckpts, "--split", "val", *decoding, "--fast", "--no-report", "--out", args.out, "--tag", tag]
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        if decoded_already(out, tag, team, beam, alpha):
            print(f"reusing {Path(args.out) / f'captions_{tag}.json'}", flush=True)
        else:
            print(f"decoding beam {beam}, length norm {alpha:g}", flush=True)
            run(cmd)
        decoded = json.loads((out / f"scores_{tag}.json").read_text()).get("decode_seconds")
        grid.append({"beam": beam, "length_norm": alpha, "tag": tag, "decode_s": decoded,
                     **grid_row(out / f"captions_{tag}.json", refs, halves),
                     "command": shlex.join(["captionkit", *cmd])})
    chosen = select_on_half_a(grid)
    rows = []
    baseline = next((r for r in grid if r["beam"] == 3 and r["length_norm"] == 0), None)
    for label, r in (("beam 3 (LRCN's setting)", baseline), ("selected on half A", chosen)):
        if r is None or (r is chosen and r is baseline and rows):
            continue
        print(f"official scorers: {label}", flush=True)
        rows.append({"decoding": f"{label}: beam {r['beam']}, length norm {r['length_norm']:g}",
                     "beam": r["beam"], "length_norm": r["length_norm"],
                     **official(Path(args.out) / f"captions_{r['tag']}.json", tokens, split, args.metrics)})
    result = {"command": shlex.join(["python", "eval/flickr8k_ensemble.py", *(argv or sys.argv[1:])]),
              "members": team, "selection": {"rule": "highest CIDEr-D on half A", "half_A_images": len(halves["A"]),
                                             "half_B_images": len(halves["B"])},
              "grid": grid, "rows": rows, "seconds": round(time.time() - t0)}
    write_result(out, "ensemble", result, markdown)
    return 0


def markdown(result: dict) -> str:
    sizes = sorted({m["size"] for m in result["members"]}, reverse=True)
    sel = result["selection"]
    lines = [f"Ensemble of {len(result['members'])} LRCN-2f captioners (MobileNetV2 input "
             f"{' and '.join(map(str, sizes))} px), Flickr8k dev ({sel['half_A_images'] + sel['half_B_images']} "
             "images), official pycocoevalcap scorers:", "",
             "| decoding | " + " | ".join(SCORES) + " |", "|---|" + "---:|" * len(SCORES)]
    for r in result["rows"]:
        cells = [f"{r['scores'][k]:.4f}" if k in r["scores"] else "-" for k in SCORES]
        lines.append(f"| {r['decoding']} | " + " | ".join(cells) + " |")
    lines += ["", f"The decoding grid (fast exact scorer; half A = the first {sel['half_A_images']} dev images, "
              f"which select the setting, half B = the other {sel['half_B_images']}; CIDEr-D's document "
              "frequencies come from the scored set, so halves and whole are not on one scale):", "",
              "| beam | length norm | A BLEU-4 | A CIDEr-D | B BLEU-4 | B CIDEr-D | dev BLEU-4 | dev CIDEr-D | decode s |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for g in result["grid"]:
        lines.append(f"| {g['beam']} | {g['length_norm']:g} | " + " | ".join(
            f"{g[h][m]:.4f}" for h in ("A", "B", "all") for m in ("Bleu_4", "CIDEr"))
            + f" | {'-' if g['decode_s'] is None else round(g['decode_s'])} |")
    lines += ["", "Members (best greedy dev CIDEr-D during training, the early-stopping metric): " + ", ".join(
        f"{m['size']} px seed {m['seed']}: {m['greedy_dev_CIDEr']}" for m in result["members"]) + "."]
    lines += ["", "Commands:", "", f"    {result['command']}"] + [f"    {g['command']}" for g in result["grid"]] \
        + [f"    {r['command']}" for r in result["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
