"""``captionkit caption --checkpoint CKPT IMAGE|DIR ... [--format text|json|coco] [decoding options]``."""
from __future__ import annotations

import json
import sys

from .decode_args import (add_decode_args, add_device_arg, decode_config_from_args, one_caption_per_input,
                          positive_int)


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help="caption images with a trained checkpoint",
                       description="Caption image files and folders; needs only the checkpoint.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    p.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                   help="a captionkit checkpoint (best.pt / last.pt); repeat it to decode with an ensemble")
    p.add_argument("--format", choices=("text", "json", "coco"), default="text",
                   help="text: file<TAB>caption; json: n-best with log-probabilities; coco: COCO results "
                        "(image_id: the number of COCO file names, else the file name, as 'captionkit score' "
                        "keys COCO, Karpathy and Flickr8k references)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    add_device_arg(p)
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted on stderr)")
    p.add_argument("--attention", metavar="OUT", default=None,
                   help="attention captioners: write OUT/<image>.png, the image and one attention map per word")
    add_decode_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from ..data.files import expand_inputs
    from ..errors import UserError
    from ..tasks.caption_generate import caption_features, coco_image_ids, encode_files
    from ..tasks.loading import load_captioners

    if args.format != "json":
        one_caption_per_input(args, f"--format {args.format}")
    task, model = load_captioners(args.checkpoint, args.device)
    cfg = decode_config_from_args(args, task.cfg.decode)
    candidates = expand_inputs(args.inputs)
    ids = coco_image_ids(candidates) if args.format == "coco" else None  # collisions: before any image
    if args.attention:
        from ..attention_figure import check_attention_model
        check_attention_model(model)  # before any decoding
    progress = len(candidates) > args.batch_size  # more than one batch: show where it is (stderr)
    files, feats = encode_files(model, candidates, torch.device(args.device), args.batch_size, args.skip_bad,
                                lambda why: print(f"skipped: {why}", file=sys.stderr), progress)
    if len(files) == 0:
        raise UserError("no readable image")
    hyps = caption_features(model, feats, task.vocab, cfg, args.device, args.batch_size, progress)
    if args.format == "text":
        for f, h in zip(files, hyps):
            print(f"{f}\t{h[0][0]}")
    elif args.format == "json":
        print(json.dumps([{"file": str(f), "captions": [{"caption": c, "logp": lp} for c, lp in h]}
                          for f, h in zip(files, hyps)], indent=2))
    else:
        id_of = dict(zip(candidates, ids))
        print(json.dumps([{"image_id": id_of[f], "caption": h[0][0]} for f, h in zip(files, hyps)]))
    if args.attention:
        from ..attention_figure import write_attention_maps
        written = write_attention_maps(model, feats, [h[0][0] for h in hyps], files, task.vocab, args.attention)
        print(f"{len(written)} attention figure(s) in {args.attention}", file=sys.stderr)
    skipped = len(candidates) - len(files)
    if skipped:
        print(f"{skipped} unreadable image(s) skipped", file=sys.stderr)
    return 0
