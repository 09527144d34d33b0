"""``captionkit evaluate --checkpoint CKPT [--checkpoint CKPT2 ...] [--split val|test] [decoding options]``.

Captioners: caption a split of the checkpoint's dataset, score it with ``captionkit score``'s
machinery (official scorers; ``--fast`` for the exact fast BLEU/CIDEr-D only), print the table and
the LRCN caption statistics, and write the captions (COCO results format) and the scores (JSON).
Several captioner checkpoints decode as one ensemble. Activity recognisers: accuracy, per-class
accuracy and a confusion-matrix PNG (``--fuse-with`` late-fuses RGB and flow). Video describers:
sentences for a tuple file, BLEU-4 (sacrebleu) and the caption metrics.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .decode_args import (add_decode_args, add_device_arg, count_or_all, decode_config_from_args,
                          one_caption_per_input, positive_int, probability)


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="caption (or classify) a dataset split and score it")
    p.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                   help="a checkpoint; repeat it to decode with an ensemble of captioners (one vocabulary)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--data-root", default=None, help="override the checkpoint's data.root")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data.* setting of the checkpoint's config, e.g. data.val_split=...")
    p.add_argument("--limit", type=count_or_all, default=0, help="evaluate the first N images only (0 = all)")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--tag", default=None, help="name for the output files (default: split + decoding)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric list (default: bleu,meteor,rouge,cider; with --fast: bleu,cider)")
    p.add_argument("--fast", action="store_true",
                   help="BLEU and CIDEr-D by the exact numpy path and the Python PTB tokenizer (no Java)")
    add_device_arg(p)
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--json", action="store_true",
                   help="print the scores as one JSON object on stdout (tables go to stderr)")
    p.add_argument("--fuse-with", default=None, metavar="CKPT",
                   help="activity: late-fuse with the other modality's checkpoint (LRCN Table 1)")
    p.add_argument("--rgb-weight", type=probability, default=0.5,
                   help="activity fusion: weight of the RGB model (0.5 or 1/3 in the paper)")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="also write an HTML report next to the outputs (captionkit report; default: on)")
    add_decode_args(p)
    p.set_defaults(run=run)


def metric_list(args) -> tuple[str, ...]:
    """--metrics, or the default for the path: --fast scores BLEU and CIDEr-D only (no Java)."""
    text = args.metrics or ("bleu,cider" if args.fast else "bleu,meteor,rouge,cider")
    return tuple(m.strip() for m in text.split(",") if m.strip())


def check_names(args) -> None:
    """--metrics and --tag fail before the split is decoded, not after."""
    from ..errors import UserError
    from ..metrics.api import METRICS

    unknown = [m for m in metric_list(args) if m not in METRICS]
    if unknown or not metric_list(args):
        raise UserError(f"--metrics: unknown metric(s) {unknown or args.metrics!r}; choose from {','.join(METRICS)}")
    if args.tag is not None and (not args.tag.strip() or any(c in args.tag for c in "/\\\0")):
        raise UserError(f"--tag {args.tag!r}: a file-name part, without '/' or '\\' (use --out for the folder)")


def run(args) -> int:
    from ..errors import UserError
    from ..tasks.activity_eval import CLASSIFIERS
    from ..tasks.loading import read_checkpoint

    kind = read_checkpoint(args.checkpoint[0], expect=("caption", "describe") + CLASSIFIERS)["task"]
    if kind != "caption" and len(args.checkpoint) > 1:
        raise UserError(f"only captioners decode as an ensemble; {args.checkpoint[0]} is a {kind!r} "
                        "checkpoint (activity models fuse with --fuse-with)")
    one_caption_per_input(args, "evaluate", "it scores the best caption of each input")
    check_names(args)
    if args.fuse_with is not None and kind not in CLASSIFIERS:
        raise UserError(f"--fuse-with is for activity checkpoints; {args.checkpoint[0]} is a {kind!r} checkpoint")
    evaluate = evaluate_activity if kind in CLASSIFIERS else evaluate_text
    return evaluate(args, kind)


def evaluate_text(args, kind: str) -> int:
    """Captioners (and ensembles) and video describers: decode a split, score, write, print."""
    import torch

    from ..tasks.caption_eval import evaluate_captions
    from ..tasks.describe import evaluate_describer
    from ..tasks.loading import load_captioners, load_checkpoint
    from ..tasks.outputs import decode_tag, emit, write_outputs

    device = torch.device(args.device)
    if kind == "caption":
        task, model = load_captioners(args.checkpoint, device, args.data_root, args.overrides)
    else:
        task, model = load_checkpoint(args.checkpoint[0], kind, device, args.data_root, args.overrides)
    cfg = decode_config_from_args(args, task.cfg.decode)
    evaluate, outputs = ((evaluate_captions, "captions") if kind == "caption" else (evaluate_describer, "sentences"))
    summary, generated, report = evaluate(task, model, args.split, cfg, device, args.batch_size, args.limit,
                                          metric_list(args), not args.fast)
    summary["checkpoint"] = str(args.checkpoint[0])
    ens = f"_ens{len(args.checkpoint)}" if len(args.checkpoint) > 1 else ""
    if ens:
        summary["ensemble"] = list(map(str, args.checkpoint))
    tag = args.tag or f"{args.split}_{decode_tag(cfg)}{ens}"
    out = Path(args.out) if args.out else Path(args.checkpoint[0]).parent / "eval"
    files = {f"{outputs}_{tag}.json": generated, f"scores_{tag}.json": summary}
    if report.per_image is not None:  # {id: {metric: score}}, the format of ``captionkit score --per-image``
        files[f"per_image_{tag}.json"] = report.per_image
    written = write_outputs(out, files)
    if args.report:
        from ..report.evaluation import write_evaluation_report
        written.append(write_evaluation_report(out, tag, kind, task, args.split, generated, summary,
                                               report.per_image))
    n = summary.get("images", summary.get("segments"))
    lines = [f"{args.split}: {n} {'images' if kind == 'caption' else 'segments'}, decoding {decode_tag(cfg)}"
             + (f", ensemble of {len(args.checkpoint)} checkpoints" if ens else "")]
    if "BLEU4_sacrebleu" in summary["scores"]:
        lines.append(f"BLEU-4 (sacrebleu) {summary['scores']['BLEU4_sacrebleu']:.2f}")
    lines.append(report.table())
    if "stats" in summary:
        lines.append("caption statistics: " + ", ".join(f"{k}={v:.3f}" for k, v in summary["stats"].items()))
    emit(summary, "\n".join(lines), args.json, written)
    return 0


def evaluate_activity(args, kind: str) -> int:
    """Activity recognisers: classify the test (or training) list, score, draw the confusion matrix."""
    from ..tasks.activity_eval import activity_table, draw_confusion, evaluate_videos
    from ..tasks.outputs import emit, write_outputs

    summary, cm = evaluate_videos(args.checkpoint[0], args.split, args.limit, args.fuse_with, args.rgb_weight,
                                  args.device, args.data_root, args.overrides)
    out = Path(args.out) if args.out else Path(args.checkpoint[0]).parent
    fused = f"_fused{args.rgb_weight:.2f}" if args.fuse_with else ""
    tag = args.tag or f"{args.split}_{summary['modality']}{fused}"
    png = draw_confusion(cm, summary["classes"], out / f"{tag}_confusion.png")
    summary["confusion_png"] = str(png)
    written = write_outputs(out, {f"{tag}_scores.json": summary})
    if args.report:
        from ..report.evaluation import write_evaluation_report
        written.append(write_evaluation_report(out, tag, kind, None, args.split, None, summary))
    emit(summary, activity_table(summary) + f"\nconfusion matrix: {png}", args.json, written)
    return 0
