"""FV-VAE against its baselines on the image side of Flickr8k retrieval (Qiu, Yao & Mei, "Deep
Quantization", Table 2, moved from UCF101 classification to image-sentence retrieval).

Every row is one ``captionkit retrieve`` recipe (recipes/retrieve_flickr8k_fvvae*.toml and
recipes/retrieve_flickr8k_imgenc_*.toml): the same MobileNetV2 7x7x1280 local descriptors (cached
once in fp16), the same sentence side (GMM-FV of GloVe words, computed ONCE here and shared: the
recipes must agree on it), the same CCA protocol. Writes a Markdown table and JSON, and checks the
paper's ordering FV-VAE > bilinear > VLAD > GMM-FV > average pooling (by R@1+5+10 of both directions).

    python eval/fvvae_retrieval.py                                 # all rows, all 6,000 train images
    python eval/fvvae_retrieval.py --set train_images=3000         # CCA on the first 3,000 (faster)

Each recipe alone gives the same row: ``captionkit retrieve RECIPE [--set ...]``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from captionkit import retrieval as R  # noqa: E402
from captionkit.config import load_config  # noqa: E402
from captionkit.tasks.retrieve import (RetrieveConfig, flatten, image_vectors, load_splits, run_cca,  # noqa: E402
                                       sentence_vectors)

RECIPES = {"FV-VAE- (lambda3 = 0)": "retrieve_flickr8k_fvvae.toml",
           "FV-VAE (keyword labels)": "retrieve_flickr8k_fvvae_kw.toml",
           "bilinear pooling": "retrieve_flickr8k_imgenc_bilinear.toml",
           "VLAD": "retrieve_flickr8k_imgenc_vlad.toml",
           "GMM-FV": "retrieve_flickr8k_imgenc_gmmfv.toml",
           "average pooling": "retrieve_flickr8k_imgenc_average.toml",
           "concatenation": "retrieve_flickr8k_imgenc_concat.toml"}
PAPER_ORDER = ("FV-VAE- (lambda3 = 0)", "bilinear pooling", "VLAD", "GMM-FV", "average pooling")
SENTENCE_KEYS = ("data_root", "method", "word_vectors", "gmm", "norm", "lm", "train_images", "report_split",
                 "subset", "val_images", "cca")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="*", default=list(RECIPES), help="which rows (default: all)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override applied to every recipe, e.g. train_images=3000 (repeatable)")
    ap.add_argument("--out", default="eval/results/fvvae_retrieval", help="writes OUT.json and OUT.md")
    ap.add_argument("--cache", default=".cache/captionkit/fvvae_retrieval", help="sentence vectors kept here")
    ap.add_argument("--merge", nargs="*", default=None, metavar="JSON",
                    help="combine the rows of earlier runs' JSON files (same settings) into OUT; runs nothing")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args)
    cfgs = {row: load_config(RetrieveConfig, ROOT / "recipes" / RECIPES[row], args.overrides) for row in args.rows}
    first = next(iter(cfgs.values()))
    for row, cfg in cfgs.items():
        bad = [k for k in SENTENCE_KEYS if getattr(cfg, k) != getattr(first, k)]
        if bad:
            raise SystemExit(f"{RECIPES[row]} differs from {RECIPES[args.rows[0]]} in {bad}: no shared sentence side")
    torch.set_num_threads(first.threads)
    t0 = time.time()
    items = load_splits(first)
    caps_tr, s2i_tr = flatten(items["train"])
    caps_te, s2i_te = flatten(items["report"])
    sent_tr, sent_te, sent_info = shared_sentence_side(first, caps_tr, caps_te, args.cache)
    if first.train_images:  # CCA on the first N training images (the set encoders see only those too)
        keep = s2i_tr < first.train_images
        sent_tr, s2i_tr, items["train"] = sent_tr[keep], s2i_tr[keep], items["train"][: first.train_images]
    print(f"sentence side: {sent_info} ({time.time() - t0:.0f}s)", flush=True)
    rows = {}
    for row, cfg in cfgs.items():
        print(f"== {row}: captionkit retrieve recipes/{RECIPES[row]}")
        t1 = time.time()
        torch.manual_seed(cfg.image.seed)
        img_tr, img_te, info = image_vectors(cfg, items["train"], items["report"])
        res = run_cca(cfg, img_tr, sent_tr, s2i_tr, img_te, sent_te, s2i_te)
        rows[row] = {"recipe": f"recipes/{RECIPES[row]}", "image": info, "metrics": res["metrics"],
                     "selected": res["selected"], "rsum": R.rsum(res["metrics"]), "seconds": time.time() - t1}
        print(f"   rsum {rows[row]['rsum']:.1f} ({rows[row]['seconds']:.0f}s)", flush=True)
        result = {"train_images": len(items["train"]), "report_images": len(items["report"]),
                  "sentence_side": sent_info, "overrides": args.overrides, "rows": rows,
                  "ordering": ordering(rows), "seconds": time.time() - t0}
        write(result, args)  # after every row: a long run that stops early keeps what it measured
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


def merge(args) -> int:
    parts = [json.loads(Path(p).read_text()) for p in args.merge]
    keys = ("train_images", "report_images", "sentence_side", "overrides")
    if any(p[k] != parts[0][k] for p in parts for k in keys):
        raise SystemExit(f"--merge: the runs differ in {keys}")
    rows = {}
    for p in parts:
        rows.update({r: v for r, v in p["rows"].items() if r not in rows})
    rows = {r: rows[r] for r in RECIPES if r in rows}  # the table's order
    args.overrides = parts[0]["overrides"]
    write({**{k: parts[0][k] for k in keys}, "rows": rows, "ordering": ordering(rows), "merged_from": args.merge,
           "seconds": sum(p["seconds"] for p in parts)}, args)
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


def write(result: dict, args) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result, args))


def shared_sentence_side(cfg: RetrieveConfig, caps_tr, caps_te, cache_dir: str):
    """``sentence_vectors`` once per sentence-side configuration, kept on disk (a re-run of some rows
    skips the GMM fit and 35,000 GMM-FVs)."""
    key = hashlib.sha1(repr([getattr(cfg, k) for k in ("data_root", "method", "word_vectors", "gmm", "norm",
                                                         "lm", "report_split", "subset")]).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"sentences_{key}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return saved["train"], saved["report"], json.loads(saved["info"])
    tr, te, info = sentence_vectors(cfg, caps_tr, caps_te)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"train": tr, "report": te, "info": json.dumps(info)}, path)
    return tr, te, info


def ordering(rows: dict) -> dict:
    """Each adjacent pair of the paper's chain: did it hold here (by rsum)?"""
    chain = [r for r in PAPER_ORDER if r in rows]
    pairs = [{"better": a, "worse": b, "held": rows[a]["rsum"] > rows[b]["rsum"],
              "rsum": [rows[a]["rsum"], rows[b]["rsum"]]} for a, b in zip(chain, chain[1:])]
    measured = sorted(rows, key=lambda r: -rows[r]["rsum"])
    return {"paper_chain": chain, "pairs": pairs, "measured_order": measured}


def markdown(result: dict, args) -> str:
    cols = [("annotation", "R@1"), ("annotation", "R@5"), ("annotation", "R@10"), ("annotation", "medr"),
            ("search", "R@1"), ("search", "R@5"), ("search", "R@10"), ("search", "medr")]
    lines = [f"Flickr8k {result['report_images']} dev images; CCA and every encoder fit on "
             f"{result['train_images']} training images. Sentence side: recipe method "
             f"({result['sentence_side']['sentence_dim']:,}-d), the same for every row.", "",
             "| image encoder | dim | ann R@1 | R@5 | R@10 | med r | search R@1 | R@5 | R@10 | med r | rsum "
             "| fit s | encode ms/image |", "|" + "---|" * 13]
    for row, r in result["rows"].items():
        m, info = r["metrics"], r["image"]
        lines.append(f"| {row} | {info['dim']:,} | " + " | ".join(f"{m[d][k]:.1f}" for d, k in cols)
                     + f" | {r['rsum']:.1f} | {info['fit_seconds']:.0f} | {info['encode_ms_per_image']:.2f} |")
    lines += ["", "Paper's ordering (FV-VAE > bilinear > VLAD > GMM-FV > average), by rsum:"]
    lines += [f"- {p['better']} > {p['worse']}: {'held' if p['held'] else 'did NOT hold'} "
              f"({p['rsum'][0]:.1f} vs {p['rsum'][1]:.1f})" for p in result["ordering"]["pairs"]]
    sets = "".join(" --set " + shlex.quote(o) for o in args.overrides)
    lines += [f"- measured order: {' > '.join(result['ordering']['measured_order'])}", "", "Commands:",
              f"- `python eval/fvvae_retrieval.py{sets}`"]
    lines += [f"- {row}: `captionkit retrieve {r['recipe']}{sets}`" for row, r in result["rows"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
