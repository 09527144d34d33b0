"""``captionkit score``: coco-caption metrics of a results file against references.

    captionkit score --results RES --references REFS [--split test | --split-list LIST]
                     [--metrics bleu,meteor,rouge,cider,spice] [--per-image FILE] [--json] [--fast]
                     [--meteor python|java]
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from ..metrics.api import METRICS, dumps, score_captions
from ..metrics.inputs import (DUPLICATE_POLICIES, MISSING_POLICIES, UNKNOWN_POLICIES, align,
                              read_references, read_results)
from ..metrics.tokenize import MAX_CHARS
from .decode_args import positive_int, seconds


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``score`` on an argparse subparsers object."""
    p = subparsers.add_parser("score", help="score captions with BLEU/METEOR/ROUGE-L/CIDEr-D/SPICE",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, help="COCO results JSON [{image_id, caption}], JSONL, or TSV")
    p.add_argument("--references", required=True,
                   help="COCO caption annotations JSON, Karpathy dataset_*.json, or Flickr8k.token.txt")
    p.add_argument("--split", help="split of a Karpathy dataset file (train, val, test)")
    p.add_argument("--split-list", help="Flickr8k split list, e.g. Flickr_8k.testImages.txt")
    p.add_argument("--metrics", default="bleu,meteor,rouge,cider",
                   help=f"comma-separated, from {','.join(METRICS)} (default: %(default)s)")
    p.add_argument("--per-image", metavar="FILE", help="write per-image scores to FILE as JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--fast", action="store_true",
                   help="BLEU and CIDEr-D by the exact numpy path and the Python PTB tokenizer")
    p.add_argument("--on-duplicate", choices=DUPLICATE_POLICIES, default="error",
                   help="an image id with several results: error (default), keep first or last")
    p.add_argument("--on-unknown", choices=UNKNOWN_POLICIES, default="error",
                   help="result ids not in the references: error (default) or ignore")
    p.add_argument("--on-missing", choices=MISSING_POLICIES, default="error",
                   help="reference images without a result: error (default) or ignore (score the rest)")
    p.add_argument("--max-chars", type=positive_int, default=MAX_CHARS, help="longest caption (default %(default)s)")
    p.add_argument("--truncate-long", action="store_true", help="truncate longer captions instead of failing")
    p.add_argument("--meteor", choices=("python", "java"), default=None,
                   help="METEOR from meteor-1.5.jar (java) or captionkit's equal Python version "
                        "(default: java when Java can run it and --fast is not given, else python)")
    p.add_argument("--meteor-timeout", type=seconds, default=None,
                   help="seconds before METEOR is stopped and skipped (default: 120 + 0.05 per image)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Read, align, score, print; UserError for anything the user can fix."""
    metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UserError(f"--metrics: unknown metric(s) {unknown or args.metrics!r}; choose from {','.join(METRICS)}")
    refs = read_references(args.references, args.split, args.split_list)
    results = read_results(args.results)
    a = align(refs, results, source=str(args.results), on_duplicate=args.on_duplicate,
              on_unknown=args.on_unknown, on_missing=args.on_missing)
    report = score_captions(a.refs, a.res, metrics=metrics, official=not args.fast,
                            per_image=bool(args.per_image), max_chars=args.max_chars,
                            truncate_long=args.truncate_long, meteor_timeout=args.meteor_timeout, aligned=a,
                            meteor=args.meteor)
    report.settings["command"] = " ".join(["captionkit", "score"] + sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "score" else None
    report.settings["results_file"] = str(args.results)
    report.settings["references_file"] = str(args.references)
    if args.per_image:
        try:
            with open(args.per_image, "w", encoding="utf-8") as f:
                json.dump(report.per_image, f, indent=1)
        except OSError as e:
            raise UserError(f"--per-image: cannot write {args.per_image}: {e.strerror}") from None
    if args.json:
        print(dumps(type(report)(report.scores, None, report.settings)))
    else:
        print(report.table())
    return 0
