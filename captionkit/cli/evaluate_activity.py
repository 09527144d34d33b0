"""``captionkit evaluate`` for activity checkpoints: per-class and mean accuracy, confusion matrix PNG.

Called by ``captionkit.cli.evaluate`` when the checkpoint's task is "activity". Classifies every
video of the checkpoint's test list (``--split train`` uses the training list) as ``classify`` does
(softmax averaged over frames and stride-8 clips), prints overall and per-class accuracy, and writes
``<tag>_confusion.png`` (drawn with Pillow) and ``<tag>_scores.json`` next to the checkpoint (or in
``--out``).

Shape legend: N videos, K classes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """pred (N,), labels (N,) -> counts (K, K): row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels.numpy(), pred.numpy()), 1)
    return cm


def draw_confusion(cm: np.ndarray, classes: list[str], path: str | Path, max_labels: int = 40) -> Path:
    """Row-normalised confusion matrix (K, K) -> a PNG heat map with class names (Pillow only)."""
    from PIL import Image, ImageDraw, ImageFont

    K = len(classes)
    cell = max(4, min(40, 800 // max(K, 1)))
    font = ImageFont.load_default()
    show_labels = K <= max_labels
    margin = (8 + 7 * max(len(c) for c in classes)) if show_labels else 20
    side = margin + K * cell + 10
    img = Image.new("RGB", (side, side + 20), "white")
    draw = ImageDraw.Draw(img)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)  # (K, K) per true class
    for i in range(K):
        for j in range(K):
            shade = int(255 * (1.0 - rates[i, j]))
            x0, y0 = margin + j * cell, margin + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255),
                           outline=(220, 220, 220) if cell >= 8 else None)
            if cell >= 24 and cm[i, j]:
                draw.text((x0 + 3, y0 + cell // 3), str(int(cm[i, j])), fill="black" if shade > 128 else "white",
                          font=font)
    if show_labels:
        for k, name in enumerate(classes):
            draw.text((4, margin + k * cell + cell // 3), name, fill="black", font=font)  # rows: true
            label = Image.new("RGB", (margin - 4, 12), "white")  # columns: predicted, written upwards
            ImageDraw.Draw(label).text((2, 0), name, fill="black", font=font)
            img.paste(label.rotate(90, expand=True), (margin + k * cell + max(0, cell // 2 - 6), 2))
    draw.text((margin, side), "rows: true class, columns: predicted", fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def run_activity_eval(args, checkpoint_dict: dict) -> int:
    """Evaluate an activity checkpoint on its test (or training) list; prints and writes the scores."""
    from ..config import apply_overrides
    from ..data.synth_video import direction_accuracy, order_pairs
    from ..tasks import load_trained
    from ..tasks.activity import predict_videos, read_lists, video_metrics

    ckpt = checkpoint_dict
    if args.data_root is not None:
        ckpt["config"]["data"]["root"] = args.data_root
    apply_overrides(ckpt["config"], args.overrides)
    device = torch.device(args.device)
    task, model = load_trained(ckpt, device)
    classes, train, test = read_lists(task.cfg.data)
    if classes != task.classes:
        print(f"warning: the data's classInd differs from the checkpoint's {len(task.classes)} classes")
    videos = train if args.split == "train" else test
    videos = videos[:args.limit] if args.limit else videos
    with torch.no_grad():
        if getattr(args, "fuse_with", None):  # late fusion of an RGB and a flow model (LRCN Table 1)
            from .classify import video_probabilities
            _, probs = video_probabilities([v.path for v in videos], args.checkpoint, args.fuse_with,
                                           args.rgb_weight, device)
        else:
            probs = predict_videos(model, [v.path for v in videos], task.cfg.data,
                                   task.cfg.encoder.image_size, device, desc=f"evaluate {args.split}")
    labels = torch.tensor([v.label for v in videos])
    names = task.classes
    metrics = video_metrics(probs, labels, len(names))
    pairs = order_pairs(names)  # the synthetic set's time-reversed class pairs, if these are its classes
    if pairs:
        metrics["direction_accuracy"] = direction_accuracy(probs, labels, pairs)
    cm = confusion_matrix(probs.argmax(1), labels, len(names))
    per_class = {names[k]: float(cm[k, k] / cm[k].sum()) for k in range(len(names)) if cm[k].sum()}
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    fused = f"_fused{args.rgb_weight:.2f}" if getattr(args, "fuse_with", None) else ""
    tag = args.tag or f"{args.split}_{task.cfg.data.modality}{fused}"
    png = draw_confusion(cm, names, out / f"{tag}_confusion.png")
    scores = {"checkpoint": str(args.checkpoint), "split": args.split, "videos": len(videos), **metrics,
              "per_class_accuracy": per_class, "confusion": cm.tolist(), "classes": names,
              "confusion_png": str(png)}
    (out / f"{tag}_scores.json").write_text(json.dumps(scores, indent=1))
    if args.json:
        print(json.dumps(scores))
        return 0
    print(f"{len(videos)} videos  accuracy {metrics['accuracy']:.4f}  mean class accuracy "
          f"{metrics['mean_class_accuracy']:.4f}")
    if pairs:
        print(f"direction accuracy inside the time-reversed pairs: {metrics['direction_accuracy']:.4f} "
              "(chance 0.5)")
    width = max(len(n) for n in per_class) if per_class else 5
    for name, acc in per_class.items():
        print(f"  {name:<{width}}  {acc:.4f}  ({int(cm[names.index(name)].sum())} videos)")
    print(f"confusion matrix: {png}")
    return 0
