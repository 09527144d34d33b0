"""LRCN's two captioning tables at Flickr8k scale (Donahue et al., LRCN, section 5, Tables 5 and 6).

Trains (or reuses) the four Flickr8k recipes and scores them on the official Flickr8k DEV split (the
test images are withheld) with the official pycocoevalcap scorers, through the same library calls as
``captionkit evaluate`` (caption_features -> official pycocoevalcap scorers -> caption_stats):

  Table A (LRCN Table 5 style): architecture ablation LRCN-1u / LRCN-2u / LRCN-2f / RNN-2f, each with
          greedy decoding, beam search (``--beam``) and best-of-100 samples at inverse temperature 1.5.
  Table B (LRCN Table 6 style): generation strategies for LRCN-2f: beam 1, 2, 3, 5, 10; best-of-N
          samples for N in {1, 10, 25, 100} at T = 2 and T in {1, 1.5, 2} at N = 100.

Each row carries LRCN's caption statistics (share of captions copied verbatim from the training set,
vocabulary use). Writes ``eval/RESULTS.md`` (Markdown, with the exact commands) and
``eval/results/flickr8k_tables.json``; per-row captions (COCO results) and scores go next to each
checkpoint under ``<run>/eval/`` exactly as ``captionkit evaluate`` writes them.

    python eval/flickr8k_tables.py                     # reuse runs/flickr8k_* checkpoints, else train
    python eval/flickr8k_tables.py --quick             # 1 short epoch each, 100 dev images: minutes
    python eval/flickr8k_tables.py --sample-limit 250  # best-of-N rows on the first 250 dev images
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from flickr8k_report import SCORE_KEYS, findings, markdown  # noqa: E402  (sibling script module)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {  # table row name -> recipe (the LRCN Table 5 rows)
    "LRCN-1u": "recipes/flickr8k_lrcn1u.toml",
    "LRCN-2u": "recipes/flickr8k_lrcn2u.toml",
    "LRCN-2f": "recipes/flickr8k_lrcn2f.toml",
    "RNN-2f": "recipes/flickr8k_rnn2f.toml",
}
DEFAULT_MD, DEFAULT_JSON = "eval/RESULTS.md", "eval/results/flickr8k_tables.json"
QUICK_TRAIN = ["train.epochs=1", "train.max_steps_per_epoch=60", "data.val_limit=100"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=None, help="run folders live in RUNS/<recipe stem> "
                   "(default: each recipe's train.out_dir; runs/flickr8k_quick with --quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for training (e.g. data.root=/path/to/data); repeatable")
    p.add_argument("--retrain", action="store_true", help="train even when best.pt exists")
    p.add_argument("--models", default=",".join(RECIPES), help="comma-separated subset of " + ",".join(RECIPES))
    p.add_argument("--extra", action="append", default=[], metavar="NAME=CHECKPOINT[+CHECKPOINT...]",
                   help="also score an existing checkpoint in Table A (e.g. a longer run); several joined "
                        "by '+' decode as an ensemble; repeatable")
    p.add_argument("--beam", type=int, default=3, help="beam width of Table A's beam column")
    p.add_argument("--limit", type=int, default=0, help="score the first N dev images (0 = all 1000)")
    p.add_argument("--sample-limit", type=int, default=0,
                   help="best-of-N rows (and their greedy reference) on the first N dev images "
                        "(0 = same as --limit); sampling 100 captions per image is the costly part")
    p.add_argument("--rescore", action="store_true",
                   help="decode and score every row again (default: reuse a row's scores_*.json written "
                        "for the same checkpoint)")
    p.add_argument("--skip-generation", action="store_true", help="Table A only")
    p.add_argument("--metrics", default="bleu,rouge,cider",
                   help="official scorers to run; add meteor for METEOR (one JVM per row: slow on 2 cores)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: short training (" + " ".join(QUICK_TRAIN) + "), 100 images")
    p.add_argument("--md", default=DEFAULT_MD, help="Markdown output (--quick: RUNS/RESULTS.md)")
    p.add_argument("--json", default=DEFAULT_JSON, help="JSON output (--quick: RUNS/flickr8k_tables.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.runs = args.runs or "runs/flickr8k_quick"
        args.limit = args.limit or 100
        args.overrides = QUICK_TRAIN + args.overrides
        args.md = args.md if args.md != DEFAULT_MD else f"{args.runs}/RESULTS.md"
        args.json = args.json if args.json != DEFAULT_JSON else f"{args.runs}/flickr8k_tables.json"
    return args


# ----------------------------------------------------------------------------- training

def run_dir(args, recipe: str) -> Path:
    from captionkit.config import read_recipe
    if args.runs:
        return Path(args.runs) / Path(recipe).stem
    return Path(read_recipe(ROOT / recipe)["train"]["out_dir"])


def train_command(args, recipe: str, out: Path) -> list[str]:
    sets = [f"train.out_dir={out}", "train.progress=false"] + args.overrides
    cmd = ["captionkit", "train", recipe] + [x for s in sets for x in ("--set", s)]
    return cmd + (["--resume"] if (out / "last.pt").exists() else [])


def ensure_trained(args, name: str, recipe: str) -> dict:
    """best.pt of the recipe (trained now unless it exists) and how long the training took."""
    out = run_dir(args, recipe)
    best = out / "best.pt"
    info = {"recipe": recipe, "checkpoint": str(best), "trained_now": False}
    if best.exists() and not args.retrain and not _unfinished(out):
        return info
    cmd = train_command(args, recipe, out)
    if args.retrain and not (out / "last.pt").exists():  # start again; the old outputs are moved aside
        cmd = [c for c in cmd if c != "--resume"] + ["--overwrite"]
    print(f"[{name}] training: {shlex.join(cmd)}", flush=True)
    t0, c0 = time.time(), _child_cpu()
    log = out.parent / f"{out.name}.train.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "captionkit"] + cmd[1:], cwd=ROOT, stdout=f,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"[{name}] training failed (exit {proc.returncode}); see {log}")
    info.update(trained_now=True, train_command=shlex.join(cmd), train_wall_s=time.time() - t0,
                train_cpu_s=_child_cpu() - c0)
    return info


def _unfinished(out: Path) -> bool:
    """True when last.pt holds a run that stopped before its last epoch and did not early-stop."""
    last = out / "last.pt"
    if not last.exists():
        return False
    state = torch.load(last, map_location="cpu", weights_only=True)
    cfg = state["config"]["train"]
    stopped_early = bool(cfg["patience"]) and state["bad_epochs"] >= cfg["patience"]
    return state["epoch"] < cfg["epochs"] and not stopped_early


def _child_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train_history(checkpoint: str) -> list[dict]:
    """Per-epoch records of the run (from its log.jsonl: best.pt is written before its epoch is logged)."""
    log = Path(checkpoint).parent / "log.jsonl"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        h = json.loads(line)
        if h.get("event") == "epoch" and "val" in h:
            out.append({"epoch": h["epoch"], "train_loss": round(h["train_loss"], 4), "wall_s": round(h["time"]),
                        "val_CIDEr": round(h["val"]["CIDEr"], 4), "val_Bleu_4": round(h["val"]["Bleu_4"], 4)})
    return out


# ----------------------------------------------------------------------------- scoring

class Evaluator:
    """One checkpoint (or an ensemble: paths joined by '+'), its dev features and training captions;
    ``row(decode, n)`` -> one table row."""

    def __init__(self, args, checkpoint: str):
        from captionkit.features import frozen_features
        from captionkit.tasks.caption_data import load_split
        from captionkit.tasks.loading import load_captioners

        self.args, self.checkpoint = args, checkpoint
        self.paths = checkpoint.split("+")
        self.suffix = f"_ens{len(self.paths)}" if len(self.paths) > 1 else ""
        checkpoint = self.paths[0]
        self.task, self.model = load_captioners(self.paths, "cpu")
        cfg = self.task.cfg
        self.items = load_split(cfg.data, "val").items
        self.n_all = len(self.items)
        if args.limit:
            self.items = self.items[:args.limit]
        ids, src = [it.image_id for it in self.items], load_split(cfg.data, "val")
        self.feats = frozen_features(self.model.encoder, ids, src.image_by_id, cfg.encoder.cache_dir if cfg.encoder.cache
                                     else None, cfg.encoder.batch_size, stamp=src.stamp)  # (N, D)
        if self.feats is None:  # a fine-tuned CNN: encode the images now
            from captionkit.tasks.caption_generate import encode_images
            self.feats = encode_images(self.model, lambda i: src.image_by_id(ids[i]), len(ids), "cpu")
        self.train_caps = [c for it in load_split(cfg.data, "train").items for c in it.captions]
        self.out = Path(checkpoint).parent / "eval"

    def decode_config(self, **changes):
        return dataclasses.replace(self.task.cfg.decode, **changes)

    def row(self, label: str, images: int = 0, **changes) -> dict:
        """Caption the first ``images`` dev images (0 = all) with the checkpoint's decode config plus
        ``changes``; returns the row with its captions, statistics and decoding time (scored later)."""
        from captionkit.cli.evaluate import decode_tag
        from captionkit.metrics import caption_stats
        from captionkit.tasks.caption_generate import caption_features

        cfg = self.decode_config(**changes)
        n = min(images, len(self.items)) if images else len(self.items)
        items = self.items[:n]
        tag = f"val{n}_{decode_tag(cfg)}{self.suffix}"
        done = self.out / f"scores_{tag}.json"
        newest = max(Path(p).stat().st_mtime for p in self.paths)
        if not self.args.rescore and done.exists() and done.stat().st_mtime > newest:
            old = json.loads(done.read_text())  # this row was scored for this very checkpoint: reuse it
            if old.get("decode") == vars(cfg) and old.get("decode_s") is not None:
                print(f"  {label:<22} n={n:<5} reused {done}", flush=True)
                return {"label": label, "images": n, "decode": vars(cfg), "tag": tag, "stats": old["stats"],
                        "scores": old["scores"], "decode_s": old["decode_s"], "command": self.command(cfg, n),
                        "tokenizer": old["settings"]["tokenizer"]}
        t0 = time.time()
        hyps = caption_features(self.model, self.feats[:n], self.task.vocab, cfg, "cpu", 100)
        t_decode = time.time() - t0
        res = {it.image_id: h[0][0] for it, h in zip(items, hyps)}
        refs = {it.image_id: it.captions for it in items}
        self.out.mkdir(parents=True, exist_ok=True)
        coco = [{"image_id": i, "caption": c} for i, c in res.items()]
        (self.out / f"captions_{tag}.json").write_text(json.dumps(coco, indent=1))
        print(f"  {label:<22} n={n:<5} decoded in {t_decode:.0f}s", flush=True)
        return {"label": label, "images": n, "decode": vars(cfg), "res": res, "tag": tag,
                "stats": caption_stats(res, self.train_caps, refs), "decode_s": round(t_decode, 1),
                "command": self.command(cfg, n)}

    def score(self, rows: list[dict]) -> list[dict]:
        """Official scores for many rows at once: the same tokenizer and pycocoevalcap scorers as
        ``score_captions``, but the Java PTB tokenizer runs once for all rows (not 2-3 JVMs per row)."""
        from captionkit.metrics import official
        from captionkit.metrics.api import KEYS
        from captionkit.metrics.tokenize import find_java, ptb_tokenize

        todo = [r for r in rows if "res" in r]
        if not todo:
            return rows
        metrics = [m.strip() for m in self.args.metrics.split(",") if m.strip()]
        java = find_java()
        backend = "java" if java else "python"
        refs = {it.image_id: it.captions for it in self.items[:max(r["images"] for r in todo)]}
        gts = ptb_tokenize(refs, backend, java=java)
        flat = {f"{j}\t{k}": [v] for j, r in enumerate(todo) for k, v in r["res"].items()}
        toks = ptb_tokenize(flat, backend, java=java)
        for j, r in enumerate(todo):
            hyp = {k: toks[f"{j}\t{k}"] for k in r["res"]}
            g = {k: gts[k] for k in hyp}
            scores: dict[str, float] = {}
            if "bleu" in metrics:
                scores.update(zip(KEYS["bleu"], map(float, official.bleu(g, hyp)[0])))
            if "meteor" in metrics and java:
                scores["METEOR"] = float(official.meteor(g, hyp, java)[0])
            if "rouge" in metrics:
                scores["ROUGE_L"] = float(official.rouge(g, hyp)[0])
            if "cider" in metrics:
                scores["CIDEr"] = float(official.cider(g, hyp)[0])
            r["scores"] = scores
            r["tokenizer"] = "Stanford PTBTokenizer (Java)" if java else "captionkit PTB (Python)"
            summary = {"checkpoint": self.checkpoint, "split": "val", "images": r["images"],
                       "decode": r["decode"], "scores": scores, "stats": r["stats"], "decode_s": r["decode_s"],
                       "settings": {"path": "official", "tokenizer": r["tokenizer"],
                                    "cider": "CIDEr-D (pycocoevalcap Cider), df over the scored images"}}
            (self.out / f"scores_{r['tag']}.json").write_text(json.dumps(summary, indent=2))
            print(f"  {r['label']:<22} n={r['images']:<5} " + " ".join(
                f"{k}={scores.get(k, float('nan')):.4f}" for k in SCORE_KEYS), flush=True)
            del r["res"]
        return rows

    def command(self, cfg, n: int) -> str:
        """The ``captionkit evaluate`` line that reproduces one row."""
        method = {"greedy": ["--greedy"], "beam": ["--beam", str(cfg.beam_size)],
                  "sample": ["--sample", str(cfg.n), "--temperature", f"{cfg.temperature:g}",
                             "--seed", str(cfg.seed)]}[cfg.method]
        lim = ["--limit", str(n)] if n < self.n_all else []
        ckpts = [a for path in self.paths for a in ("--checkpoint", path)]
        return shlex.join(["captionkit", "evaluate", *ckpts, "--split", "val"]
                          + method + lim)


# ----------------------------------------------------------------------------- the two tables

def ablation_rows(args, ev: Evaluator) -> list[dict]:
    """Table A for one model: greedy and beam on --limit images; greedy and best-of-100 (T=1.5) on
    --sample-limit images (the same images, so the sampling column is compared like for like)."""
    rows = [ev.row("greedy", method="greedy"), ev.row(f"beam {args.beam}", method="beam", beam_size=args.beam)]
    ns = args.sample_limit
    if ns and ns < len(ev.items):
        rows.append(ev.row("greedy", ns, method="greedy"))
    rows.append(ev.row("best-of-100, T=1.5", ns, method="sample", n=100, temperature=1.5))
    return ev.score(rows)


def generation_rows(args, ev: Evaluator) -> list[dict]:
    """Table B: beam widths on --limit images, best-of-N sampling on --sample-limit images."""
    rows = [ev.row(f"beam {k}", method="beam", beam_size=k) for k in (1, 2, 3, 5, 10)]
    ns = args.sample_limit
    if ns and ns < len(ev.items):
        rows.append(ev.row("greedy (same images)", ns, method="greedy"))
    for n in (1, 10, 25, 100):
        rows.append(ev.row(f"sample N={n}, T=2", ns, method="sample", n=n, temperature=2.0))
    for t in (1.0, 1.5):
        rows.append(ev.row(f"sample N=100, T={t:g}", ns, method="sample", n=100, temperature=t))
    return ev.score(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown model {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    t0 = time.time()
    result: dict = {"command": shlex.join(["python", "eval/flickr8k_tables.py"] + sys.argv[1:]),
                    "limit": args.limit, "sample_limit": args.sample_limit, "models": {}}
    for name in names:
        info = ensure_trained(args, name, RECIPES[name])
        info["history"] = train_history(info["checkpoint"])
        print(f"[{name}] scoring {info['checkpoint']}", flush=True)
        ev = Evaluator(args, info["checkpoint"])
        info["ablation"] = ablation_rows(args, ev)
        result["models"][name] = info
        if name == "LRCN-2f" and not args.skip_generation:
            result["generation"] = {"model": name, "rows": generation_rows(args, ev)}
    for spec in args.extra:
        name, _, path = spec.partition("=")
        if not path or not all(Path(p).exists() for p in path.split("+")):
            raise SystemExit(f"--extra expects NAME=CHECKPOINT[+CHECKPOINT...] (existing files), got {spec!r}")
        info = {"recipe": "(extra checkpoint)" if "+" not in path else "(ensemble of checkpoints)",
                "checkpoint": path, "trained_now": False,
                "history": train_history(path) if "+" not in path else []}
        print(f"[{name}] scoring {path}", flush=True)
        info["ablation"] = ablation_rows(args, Evaluator(args, path))
        result["models"][name] = info
    result["notes"] = findings(result, args.beam)
    prev = Path(args.json)
    result["seconds"] = round(time.time() - t0, 1)
    prev.parent.mkdir(parents=True, exist_ok=True)
    prev.write_text(json.dumps(result, indent=2))
    write_keeping_tail(Path(args.md), markdown(args, result))
    print(f"wrote {args.md} and {args.json} ({result['seconds'] / 60:.1f} min)")
    return 0


KEEP = "<!-- Everything below this line is kept when eval/flickr8k_tables.py rewrites the file. -->"


def write_keeping_tail(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, keeping the part of the old file from the ``KEEP`` line on (the
    sections other eval scripts' results were added to by hand)."""
    old = path.read_text() if path.exists() else ""
    tail = old[old.index(KEEP):] if KEEP in old else ""
    path.write_text(text.rstrip("\n") + ("\n\n" + tail if tail else "\n"))


if __name__ == "__main__":
    sys.exit(main())
