"""``captionkit describe --checkpoint CKPT --tuples FILE [--format text|json] [decoding options]``.

Prints one sentence per segment of a tuple file (``captionkit.data.tuples`` format), in file order:
``segment_id<TAB>sentence`` (text) or a JSON list with the n-best sentences and log-probabilities.
"""
from __future__ import annotations

import json

from .decode_args import add_decode_args, decode_config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("describe", help="describe video segments from CRF tuples (LRCN section 6)",
                       description="Generate one sentence per segment of a tuple file; needs only the "
                                   "checkpoint of a 'describe' model.")
    p.add_argument("--checkpoint", required=True, help="a captionkit 'describe' checkpoint (best.pt / last.pt)")
    p.add_argument("--tuples", required=True, help="tuple file (.json or .jsonl, see captionkit.data.tuples)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: segment_id<TAB>sentence; json: n-best with log-probabilities")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    add_decode_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import checkpoint
    from ..data.tuples import load_tuples
    from ..errors import UserError
    from ..tasks import load_trained
    from ..tasks.describe import describe_segments, encode_tuples

    ckpt = checkpoint.load(args.checkpoint)
    if ckpt["task"] != "describe":
        raise UserError(f"{args.checkpoint} is a {ckpt['task']!r} checkpoint, not a 'describe' model")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    task, model = load_trained(ckpt, args.device)
    cfg = decode_config_from_args(args, task.cfg.decode)
    ts = load_tuples(args.tuples)
    if not ts.segments:
        raise UserError(f"{args.tuples}: no segments")
    labels, probs = encode_tuples(ts, task.slots, task.labels)
    hyps = describe_segments(model, labels, probs, task.vocab, cfg, args.device, args.batch_size)
    if args.format == "text":
        for seg, h in zip(ts.segments, hyps):
            print(f"{seg.id}\t{h[0][0]}")
    else:
        print(json.dumps([{"id": seg.id, "sentences": [{"sentence": s, "logp": lp} for s, lp in h]}
                          for seg, h in zip(ts.segments, hyps)], indent=2))
    return 0


def run_describe_eval(args, ckpt: dict) -> int:
    """``captionkit evaluate`` for a 'describe' checkpoint: describe a split's tuple file and score it.

    The split's file is the checkpoint's ``data.{train,val,test}`` (``--set data.test=FILE`` to change
    it); BLEU-4 by sacrebleu (LRCN's metric) plus the coco-caption metrics; writes sentences + scores.
    """
    from pathlib import Path

    from ..config import apply_overrides
    from ..data.tuples import load_tuples
    from ..errors import UserError
    from ..metrics import score_captions
    from ..tasks import load_trained
    from ..tasks.describe import bleu4, describe_segments, encode_tuples
    from .evaluate import decode_tag, metric_list

    apply_overrides(ckpt["config"], args.overrides)
    task, model = load_trained(ckpt, args.device)
    cfg = decode_config_from_args(args, task.cfg.decode)
    d = task.cfg.data
    path = {"train": d.train, "val": d.val, "test": d.test}[args.split]
    ts = load_tuples(path)
    ts.segments = [s for s in ts.segments if s.sentences]
    ts.segments = ts.segments[:args.limit] if args.limit else ts.segments
    if not ts.segments:
        raise UserError(f"{path}: no segment with reference sentences")
    labels, probs = encode_tuples(ts, task.slots, task.labels)
    hyps = describe_segments(model, labels, probs, task.vocab, cfg, args.device, args.batch_size)
    res = {seg.id: h[0][0] for seg, h in zip(ts.segments, hyps)}
    refs = {seg.id: [task.normalise(t) for t in seg.sentences] for seg in ts.segments}
    report = score_captions(refs, res, metrics=metric_list(args), official=not args.fast)
    scores = {"BLEU4_sacrebleu": bleu4(list(res.values()), list(refs.values())), **report.scores}
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or f"{args.split}_{decode_tag(cfg)}"
    (out / f"sentences_{tag}.json").write_text(json.dumps(res, indent=1))
    summary = {"checkpoint": str(args.checkpoint), "split": args.split, "tuples": str(path),
               "segments": len(res), "decode": vars(cfg), "scores": scores, "settings": report.settings}
    (out / f"scores_{tag}.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.split}: {len(res)} segments, decoding {decode_tag(cfg)}")
    print(f"BLEU-4 (sacrebleu) {scores['BLEU4_sacrebleu']:.2f}")
    print(report.table())
    print(f"wrote {out / f'sentences_{tag}.json'} and {out / f'scores_{tag}.json'}")
    if args.json:
        print(json.dumps(summary))
    return 0
