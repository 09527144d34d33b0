"""``captionkit report SOURCE [options]``: one self-contained HTML page people open first.

SOURCE is a captions file (``captionkit evaluate``'s ``captions_*.json``, ``caption --format json``'s
n-best output, or any results file ``captionkit score`` reads), a training run folder (``runs/NAME``),
an activity scores file (``*_scores.json`` with a confusion matrix) or video-description sentences
(``sentences_*.json``). See ``captionkit.report`` for what each page shows.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report of captions, a training run or video results",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="captions file, runs/NAME folder, activity scores file or sentences file")
    p.add_argument("--out", default=None, help="the page to write (default: next to SOURCE / in the run folder)")
    p.add_argument("--scores", default=None, help="the scores JSON evaluate wrote (summary table and settings)")
    p.add_argument("--per-image", default=None, help="per-image scores ('captionkit score --per-image')")
    p.add_argument("--references", default=None, help="references: COCO json, Karpathy json, Flickr8k token file")
    p.add_argument("--split", default=None, help="split of a Karpathy references file (val, test)")
    p.add_argument("--split-list", default=None, help="Flickr8k split list, e.g. Flickr_8k.devImages.txt")
    p.add_argument("--train-references", default=None,
                   help="training captions file (default: --references) for the 'in training set' mark")
    p.add_argument("--train-split", default=None, help="training split of a Karpathy file (e.g. train)")
    p.add_argument("--train-split-list", default=None, help="Flickr8k training list (Flickr_8k.trainImages.txt)")
    p.add_argument("--images", default=None, help="folder holding the images, found by id")
    p.add_argument("--link-images", action="store_true",
                   help="link the original images instead of embedding thumbnails")
    p.add_argument("--thumb-size", type=int, default=192, help="thumbnail side in pixels (default %(default)s)")
    p.add_argument("--tuples", default=None, help="video description: the tuple file (default: from --scores)")
    p.add_argument("--title", default=None)
    p.set_defaults(run=run)


def _train_captions(args) -> list[str] | None:
    from ..metrics.inputs import read_references

    if not (args.train_split or args.train_split_list or args.train_references):
        return None
    source = args.train_references or args.references
    if source is None:
        from ..errors import UserError
        raise UserError("--train-split/--train-split-list need --references or --train-references")
    refs = read_references(source, args.train_split, args.train_split_list)
    return [c for caps in refs.values() for c in caps]


def run_captions(args) -> Path:
    from ..metrics.inputs import read_references
    from ..report.captions import images_in, write_caption_report
    from ..report.inputs import read_captions, read_per_image, read_scores

    caps = read_captions(args.source)
    refs = read_references(args.references, args.split, args.split_list) if args.references else {}
    summary = read_scores(args.scores) if args.scores else {}
    per_image = read_per_image(args.per_image) if args.per_image else summary.get("per_image")
    src = Path(args.source)
    out = args.out or src.with_name(f"report_{src.stem.removeprefix('captions_')}.html")
    return write_caption_report(out, caps.nbest, refs, train_captions=_train_captions(args),
                                image_of=images_in(args.images, list(caps.nbest), caps.files),
                                per_image=per_image, summary=summary, attention=caps.attention,
                                link_images=args.link_images, thumb_side=args.thumb_size, title=args.title)


def run_describe(args) -> Path:
    from ..errors import UserError
    from ..report.inputs import read_scores
    from ..report.video import read_sentences, write_describe_report

    summary = read_scores(args.scores) if args.scores else {}
    tuples = args.tuples or summary.get("tuples")
    if not tuples:
        raise UserError(f"{args.source}: video-description sentences need --tuples FILE "
                        "(or --scores with the 'tuples' field evaluate writes)")
    src = Path(args.source)
    out = args.out or src.with_name(f"report_{src.stem.removeprefix('sentences_')}.html")
    return write_describe_report(out, read_sentences(src), tuples, summary)


def run(args) -> int:
    from ..errors import UserError
    from ..report.inputs import source_kind

    if args.thumb_size < 16:
        raise UserError(f"--thumb-size must be at least 16 pixels, got {args.thumb_size}")
    kind = source_kind(args.source)
    if kind == "run":
        from ..report.run import write_run_report
        page = write_run_report(args.source, args.out)
    elif kind == "activity":
        from ..report.video import write_activity_report
        page = write_activity_report(args.source, args.out)
    elif kind == "describe":
        page = run_describe(args)
    else:
        page = run_captions(args)
    print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB)")
    return 0
