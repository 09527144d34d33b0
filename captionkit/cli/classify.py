"""``captionkit classify --checkpoint CKPT VIDEO|DIR ... [--topk 5] [--json]``: the top classes of videos.

Needs only the checkpoint: frames are decoded (and, for a flow model, optical flow computed) with the
checkpoint's data settings, each video is cut into the test clips (``clip_len`` frames every
``stride``), and the softmax is averaged over frames and clips (LRCN section 4). With
``--fuse-with`` a second checkpoint (the other modality) is late-fused with weight ``--rgb-weight``
for the RGB model (the paper: 1/2 or 1/3). ``--attention OUT`` (soft-attention checkpoints, Sharma et
al.) also writes each video's attention maps: a PNG strip, an animated GIF and the numbers as JSON.
"""
from __future__ import annotations

import json

from .decode_args import add_device_arg, positive_int, probability


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="classify videos with a trained activity checkpoint",
                       description="Print the top-k classes (with probabilities) of each video.")
    p.add_argument("inputs", nargs="+", metavar="VIDEO|DIR")
    p.add_argument("--checkpoint", required=True, help="an activity checkpoint (best.pt / last.pt)")
    p.add_argument("--topk", type=positive_int, default=5)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout: {checkpoint, videos: [{video, top}, ...]}")
    p.add_argument("--fuse-with", default=None, metavar="CKPT",
                   help="late fusion with a second checkpoint of the other modality (rgb + flow)")
    p.add_argument("--rgb-weight", type=probability, default=0.5,
                   help="weight of the RGB model in late fusion (LRCN: 0.5 or 0.333)")
    add_device_arg(p)
    p.add_argument("--attention", default=None, metavar="OUT",
                   help="soft-attention checkpoints: write each video's attention maps to OUT (PNG strip, "
                        "animated GIF, JSON numbers; Sharma et al. Figs. 3-4)")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from ..data.files import expand_inputs
    from ..errors import UserError
    from ..tasks.activity_eval import CLASSIFIERS, video_probabilities
    from ..tasks.loading import load_checkpoint

    paths = expand_inputs(args.inputs, "video")
    device = torch.device(args.device)
    if args.attention is not None:
        from ..tasks.attention_classify import classify_videos

        if args.fuse_with is not None:
            raise UserError("--attention draws one soft-attention model's maps; it does not combine with --fuse-with")
        task, model = load_checkpoint(args.checkpoint, "attention_activity", device)
        records = classify_videos(task, model, paths, device, args.topk, args.attention)
    else:
        task, model = load_checkpoint(args.checkpoint, CLASSIFIERS, device)
        probs = video_probabilities(task, model, paths, device, args.fuse_with, args.rgb_weight)
        top_p, top_i = probs.topk(min(args.topk, len(task.classes)), dim=1)  # (N, k) each
        records = [{"video": str(path), "top": [{"class": task.classes[i], "prob": round(p, 6)}
                                                for p, i in zip(ps, ids)]}
                   for path, ps, ids in zip(paths, top_p.tolist(), top_i.tolist())]
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "fuse_with": args.fuse_with, "videos": records}))
        return 0
    for record in records:
        print(f"{record['video']}\t" + "  ".join(f"{r['class']} {r['prob']:.3f}" for r in record["top"])
              + (f"\tmaps: {record['maps']['png']}" if "maps" in record else ""))
    return 0
