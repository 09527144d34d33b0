"""``captionkit classify --checkpoint CKPT VIDEO|DIR ... [--topk 5] [--json]``: the top classes of videos.

Needs only the checkpoint: frames are decoded (and, for a flow model, optical flow computed) with the
checkpoint's data settings, each video is cut into the test clips (``clip_len`` frames every
``stride``), and the softmax is averaged over frames and clips (LRCN section 4). With
``--fuse-with`` a second checkpoint (the other modality) is late-fused with weight ``--rgb-weight``
for the RGB model (the paper: 1/2 or 1/3).
"""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="classify videos with a trained activity checkpoint",
                       description="Print the top-k classes (with probabilities) of each video.")
    p.add_argument("inputs", nargs="+", metavar="VIDEO|DIR")
    p.add_argument("--checkpoint", required=True, help="an activity checkpoint (best.pt / last.pt)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON object per video (JSON lines)")
    p.add_argument("--fuse-with", default=None, metavar="CKPT",
                   help="late fusion with a second checkpoint of the other modality (rgb + flow)")
    p.add_argument("--rgb-weight", type=float, default=0.5,
                   help="weight of the RGB model in late fusion (LRCN: 0.5 or 0.333)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from ..data.files import expand_inputs
    from ..errors import UserError
    from ..tasks.activity_eval import CLASSIFIERS, video_probabilities
    from ..tasks.loading import load_checkpoint

    if args.topk < 1:
        raise UserError(f"--topk must be positive, got {args.topk}")
    paths = expand_inputs(args.inputs, "video")
    device = torch.device(args.device)
    task, model = load_checkpoint(args.checkpoint, CLASSIFIERS, device)
    probs = video_probabilities(task, model, paths, device, args.fuse_with, args.rgb_weight)
    classes = task.classes
    k = min(args.topk, len(classes))
    top_p, top_i = probs.topk(k, dim=1)  # (N, k) each
    for path, ps, ids in zip(paths, top_p.tolist(), top_i.tolist()):
        ranked = [{"class": classes[i], "prob": round(p, 6)} for p, i in zip(ps, ids)]
        if args.json:
            print(json.dumps({"video": str(path), "top": ranked}))
        else:
            print(f"{path}\t" + "  ".join(f"{r['class']} {r['prob']:.3f}" for r in ranked))
    return 0
