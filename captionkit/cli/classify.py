"""``captionkit classify --checkpoint CKPT VIDEO|DIR ... [--topk 5] [--json]``: the top classes of videos.

Needs only the checkpoint: frames are decoded (and, for a flow model, optical flow computed) with the
checkpoint's data settings, each video is cut into the test clips (``clip_len`` frames every
``stride``), and the softmax is averaged over frames and clips (LRCN section 4). With
``--fuse-with`` a second checkpoint (the other modality) is late-fused with weight ``--rgb-weight``
for the RGB model (the paper: 1/2 or 1/3).
"""
from __future__ import annotations

import json
from pathlib import Path


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


def expand_videos(inputs: list[str]) -> list[Path]:
    """Files as given; folders expanded to their video files (class sub-folders too), sorted."""
    from ..data.video import list_videos
    from ..errors import UserError

    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files += list_videos(path)
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"no such video or folder: {path}")
    if not files:
        raise UserError(f"no videos found in {', '.join(inputs)}")
    return files


def load_activity(path: str, device):
    """An activity checkpoint -> (task, model in eval mode)."""
    from .. import checkpoint
    from ..errors import UserError
    from ..tasks import load_trained

    ckpt = checkpoint.load(path)
    if ckpt["task"] != "activity":
        raise UserError(f"{path}: a {ckpt['task']!r} checkpoint, not an activity recogniser")
    return load_trained(ckpt, device)


def video_probabilities(paths: list[Path], checkpoint: str, fuse_with: str | None, rgb_weight: float,
                        device) -> tuple[list[str], "torch.Tensor"]:  # noqa: F821
    """Videos -> (class names, probabilities (N, K)), late-fused over two checkpoints when asked."""
    from ..errors import UserError
    from ..tasks.activity import late_fusion, predict_videos

    task, model = load_activity(checkpoint, device)
    probs = predict_videos(model, paths, task.cfg.data, task.cfg.encoder.image_size, device)
    if fuse_with is None:
        return task.classes, probs
    other_task, other = load_activity(fuse_with, device)
    if other_task.classes != task.classes:
        raise UserError(f"--fuse-with {fuse_with}: its classes differ from {checkpoint}'s")
    modalities = (task.cfg.data.modality, other_task.cfg.data.modality)
    if sorted(modalities) != ["flow", "rgb"]:
        raise UserError(f"late fusion needs one rgb and one flow checkpoint, got {modalities}")
    other_probs = predict_videos(other, paths, other_task.cfg.data, other_task.cfg.encoder.image_size, device)
    p_rgb, p_flow = (probs, other_probs) if modalities[0] == "rgb" else (other_probs, probs)
    try:
        return task.classes, late_fusion(p_rgb, p_flow, rgb_weight)
    except ValueError as e:
        raise UserError(f"--rgb-weight: {e}") from None


def run(args) -> int:
    import torch

    from ..errors import UserError

    if args.topk < 1:
        raise UserError(f"--topk must be positive, got {args.topk}")
    paths = expand_videos(args.inputs)
    with torch.no_grad():
        classes, probs = video_probabilities(paths, args.checkpoint, args.fuse_with, args.rgb_weight,
                                             torch.device(args.device))
    k = min(args.topk, len(classes))
    top_p, top_i = probs.topk(k, dim=1)  # (N, k) each
    for path, ps, ids in zip(paths, top_p.tolist(), top_i.tolist()):
        ranked = [{"class": classes[i], "prob": round(p, 6)} for p, i in zip(ps, ids)]
        if args.json:
            print(json.dumps({"video": str(path), "top": ranked}))
        else:
            print(f"{path}\t" + "  ".join(f"{r['class']} {r['prob']:.3f}" for r in ranked))
    return 0
