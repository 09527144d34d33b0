"""``captionkit caption --checkpoint CKPT IMAGE|DIR ... [--format text|json|coco] [decoding options]``."""
from __future__ import annotations

import json
import sys

from .decode_args import add_decode_args, decode_config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help="caption images with a trained checkpoint",
                       description="Caption image files and folders; needs only the checkpoint.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    p.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                   help="a captionkit checkpoint (best.pt / last.pt); repeat it to decode with an ensemble")
    p.add_argument("--format", choices=("text", "json", "coco"), default="text",
                   help="text: file<TAB>caption; json: n-best with log-probabilities; coco: COCO results")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted on stderr)")
    add_decode_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from ..data.files import expand_inputs
    from ..errors import UserError
    from ..features import load_image
    from ..tasks.caption_generate import caption_features, encode_images
    from ..tasks.loading import load_captioners

    task, model = load_captioners(args.checkpoint, args.device)
    cfg = decode_config_from_args(args, task.cfg.decode)
    files, images = [], []
    candidates = expand_inputs(args.inputs)
    for f in candidates:
        try:
            images.append(load_image(f))
            files.append(f)
        except UserError as e:
            if not args.skip_bad:
                raise
            print(f"skipped: {e}", file=sys.stderr)
    if len(files) == 0:
        raise UserError("no readable image")
    feats = encode_images(model, lambda i: images[i], len(images), torch.device(args.device), args.batch_size)
    hyps = caption_features(model, feats, task.vocab, cfg, args.device, args.batch_size)
    if args.format == "text":
        for f, h in zip(files, hyps):
            print(f"{f}\t{h[0][0]}")
    elif args.format == "json":
        print(json.dumps([{"file": str(f), "captions": [{"caption": c, "logp": lp} for c, lp in h]}
                          for f, h in zip(files, hyps)], indent=2))
    else:
        print(json.dumps([{"image_id": f.stem, "caption": h[0][0]} for f, h in zip(files, hyps)]))
    skipped = len(candidates) - len(files)
    if skipped:
        print(f"{skipped} unreadable image(s) skipped", file=sys.stderr)
    return 0
