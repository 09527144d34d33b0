"""Classifying and evaluating videos with trained activity checkpoints (``captionkit classify`` and
``captionkit evaluate``): class probabilities per video (softmax averaged over frames and clips,
LRCN section 4), late fusion of an RGB and a flow model (LRCN Table 1), the scores of a split, and
the confusion matrix drawn as a PNG (Pillow only).

Any task in ``CLASSIFIERS`` works here: it has ``classes``, ``cfg.data``, ``video_lists()`` and
``predict_videos(model, paths, device, desc) -> (N, K)``.

Shape legend: N videos, K classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.synth_video import order_pairs
from ..errors import UserError
from ..metrics.classification import classification_scores, confusion_matrix, per_class_accuracy
from ..models.activity import late_fusion
from .loading import load_checkpoint, read_checkpoint

CLASSIFIERS = ("activity", "attention_activity")  # tasks whose checkpoints classify videos


def video_probabilities(task, model, paths: list[Path], device: torch.device | str = "cpu",
                        fuse_with: str | Path | None = None, rgb_weight: float = 0.5, data_root=None,
                        overrides=(), desc: str = "videos") -> torch.Tensor:
    """Videos -> class probabilities (N, K); late-fused with a second checkpoint (the other
    modality, read with the same data settings) when ``fuse_with`` is given."""
    device = torch.device(device)
    if fuse_with is not None:  # open and check the second checkpoint before any video is read
        if not 0.0 <= rgb_weight <= 1.0:
            raise UserError(f"--rgb-weight must be in [0, 1], got {rgb_weight}")
        other_task, other = load_checkpoint(fuse_with, CLASSIFIERS, device, data_root, overrides)
        if other_task.classes != task.classes:
            raise UserError(f"--fuse-with {fuse_with}: its classes differ from the first checkpoint's")
        modalities = (task.cfg.data.modality, other_task.cfg.data.modality)
        if sorted(modalities) != ["flow", "rgb"]:
            raise UserError(f"late fusion needs one rgb and one flow checkpoint, got {modalities}")
    with torch.no_grad():
        probs = task.predict_videos(model, paths, device, desc)
        if fuse_with is None:
            return probs
        other_probs = other_task.predict_videos(other, paths, device, desc)
    p_rgb, p_flow = (probs, other_probs) if modalities[0] == "rgb" else (other_probs, probs)
    return late_fusion(p_rgb, p_flow, rgb_weight)


def evaluate_videos(checkpoint: str | Path, split: str = "test", limit: int = 0, fuse_with=None,
                    rgb_weight: float = 0.5, device: torch.device | str = "cpu", data_root=None,
                    overrides=()) -> tuple[dict, np.ndarray]:
    """Classify a checkpoint's test (or training) list -> (scores, confusion counts (K, K))."""
    if fuse_with is not None:
        read_checkpoint(fuse_with, CLASSIFIERS)  # a wrong second checkpoint fails before anything is built
    task, model = load_checkpoint(checkpoint, CLASSIFIERS, device, data_root, overrides)
    classes, train, test = task.video_lists()
    notes = [] if classes == task.classes else [
        f"the data's classInd differs from the checkpoint's {len(task.classes)} classes"]
    videos = train if split == "train" else test
    videos = videos[:limit] if limit else videos
    probs = video_probabilities(task, model, [v.path for v in videos], device, fuse_with, rgb_weight,
                                data_root, overrides, desc=f"evaluate {split}")
    labels = torch.tensor([v.label for v in videos])
    names = task.classes
    scores = classification_scores(probs, labels, order_pairs(names))
    cm = confusion_matrix(probs.argmax(1), labels, len(names))
    per_class = {names[k]: acc for k, acc in per_class_accuracy(probs, labels).items()}
    summary = {"checkpoint": str(checkpoint), "split": split, "videos": len(videos), **scores,
               "per_class_accuracy": per_class, "confusion": cm.tolist(), "classes": names,
               "modality": task.cfg.data.modality, "notes": notes}
    if fuse_with is not None:
        summary.update(fuse_with=str(fuse_with), rgb_weight=rgb_weight)
    return summary, cm


def activity_table(summary: dict) -> str:
    """The scores of ``evaluate_videos`` as lines people read."""
    lines = [f"note: {n}" for n in summary["notes"]]
    lines.append(f"{summary['videos']} videos  accuracy {summary['accuracy']:.4f}  mean class accuracy "
                 f"{summary['mean_class_accuracy']:.4f}")
    if summary.get("direction_accuracy") is not None:
        lines.append(f"direction accuracy inside the time-reversed pairs: {summary['direction_accuracy']:.4f} "
                     "(chance 0.5)")
    counts = np.asarray(summary["confusion"]).sum(1)
    names = summary["classes"]
    width = max(map(len, summary["per_class_accuracy"]), default=5)
    lines += [f"  {name:<{width}}  {acc:.4f}  ({int(counts[names.index(name)])} videos)"
              for name, acc in summary["per_class_accuracy"].items()]
    return "\n".join(lines)


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
