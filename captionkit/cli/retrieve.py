"""``captionkit retrieve RECIPE.toml``: image-sentence retrieval (RNN-FV / baselines + CCA, or LRCN
likelihood) on Flickr8k; fit on train, select on held-out train images, report on the chosen split;
prints a table and writes JSON (with ``--json``, stdout is that JSON object alone and the progress
and table go to stderr). The experiment itself lives in ``captionkit.tasks.retrieve``."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..config import load_config
from ..errors import UserError
from ..tasks.retrieve import RetrieveConfig, run_experiment
from .decode_args import json_or_text, positive_int

COLUMNS = (("annotation", "R@1"), ("annotation", "R@5"), ("annotation", "R@10"), ("annotation", "medr"),
           ("search", "R@1"), ("search", "R@5"), ("search", "R@10"), ("search", "medr"))


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("retrieve", help="image-sentence retrieval (RNN-FV + CCA, LRCN likelihood)",
                              description=__doc__)
    p.add_argument("recipe", help="TOML recipe (e.g. recipes/retrieve_flickr8k_rnnfv_reg.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set lm.epochs=2 (repeatable)")
    p.add_argument("--subset", type=positive_int, default=None,
                   help="report on the first N images of the split only (LRCN likelihood: N x 5N scores)")
    p.add_argument("--out", default=None, help="JSON output path (default runs/retrieve/<method>.json)")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object on stdout (progress and table go to stderr)")
    p.set_defaults(run=run)
    return p


def format_table(rows: list[dict]) -> str:
    """Result dicts -> a Markdown table (annotation = image -> sentence, search = sentence -> image)."""
    head = ("| method | images | " + " | ".join(f"{'ann' if d == 'annotation' else 'search'} {k}" for d, k in COLUMNS)
            + " | sent-sim meanr |")
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for r in rows:
        m = r["metrics"]
        cells = [f"{m[d][k]:.1f}" for d, k in COLUMNS]
        ss = m.get("sentence_similarity", {}).get("meanr")
        lines.append(f"| {r['method']} | {r['images']}{' (subset)' if r.get('subset') else ''} | "
                     + " | ".join(cells) + f" | {'-' if ss is None else f'{ss:.1f}'} |")
    return "\n".join(lines)


def run(args) -> int:
    return json_or_text(args.json, lambda: experiment(args))


def experiment(args) -> dict:
    """Run the recipe, print the table, write the JSON file; -> the result."""
    overrides = list(args.overrides)
    if args.subset is not None:
        overrides.append(f"subset={args.subset}")
    if args.out is not None:
        overrides.append(f"out={json.dumps(args.out)}")
    cfg = load_config(RetrieveConfig, args.recipe, overrides)
    out = Path(cfg.out or f"runs/retrieve/{cfg.method}.json")
    try:  # an output that cannot be written fails now, not after the experiment
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    if out.is_dir() or not os.access(out if out.exists() else out.parent, os.W_OK):
        raise UserError(f"cannot write {out}: " + ("a folder" if out.is_dir() else "permission denied"))
    print(f"captionkit retrieve {args.recipe}: method={cfg.method}, report on Flickr8k {cfg.report_split}")
    result = run_experiment(cfg)
    result["recipe"], result["overrides"] = str(args.recipe), overrides
    print(format_table([result]))
    if cfg.subset:
        print(f"NOTE: scored on the first {cfg.subset} {cfg.report_split} images only "
              f"({result['sentences']} sentences): not comparable to full-split numbers")
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out} ({result['seconds']:.0f}s)")
    return result

