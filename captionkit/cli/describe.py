"""``captionkit describe --checkpoint CKPT --tuples FILE [--format text|json] [decoding options]``.

Prints one sentence per segment of a tuple file (``captionkit.data.tuples`` format), in file order:
``segment_id<TAB>sentence`` (text) or a JSON list with the n-best sentences and log-probabilities.
"""
from __future__ import annotations

import json

from .decode_args import (add_decode_args, add_device_arg, decode_config_from_args, one_caption_per_input,
                          positive_int)


def add_parser(sub) -> None:
    p = sub.add_parser("describe", help="describe video segments from CRF tuples (LRCN section 6)",
                       description="Generate one sentence per segment of a tuple file; needs only the "
                                   "checkpoint of a 'describe' model.")
    p.add_argument("--checkpoint", required=True, help="a captionkit 'describe' checkpoint (best.pt / last.pt)")
    p.add_argument("--tuples", required=True, help="tuple file (.json or .jsonl, see captionkit.data.tuples)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: segment_id<TAB>sentence; json: n-best with log-probabilities")
    p.add_argument("--batch-size", type=positive_int, default=256)
    add_device_arg(p)
    add_decode_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data.tuples import load_tuples
    from ..errors import UserError
    from ..tasks.describe import describe_segments, encode_tuples
    from ..tasks.loading import load_checkpoint

    if args.format == "text":
        one_caption_per_input(args, "--format text")
    task, model = load_checkpoint(args.checkpoint, "describe", args.device)
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
