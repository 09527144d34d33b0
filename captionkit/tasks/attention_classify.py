"""``captionkit classify`` for soft-attention action checkpoints (Sharma et al.): top classes of each
video and, with ``--attention OUT``, its attention maps (the paper's Figs. 3-4): a PNG strip, an
animated GIF and the numbers as JSON per video (``captionkit.attention_maps``).

Needs only the checkpoint: its frozen CNN makes the grids (cached like training grids), its data
settings cut the windows. Shape legend: T frames, H x W display size, C classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..attention_maps import write_maps
from ..data.video import decode_video
from ..errors import UserError
from .attention_activity import AttentionActivityTask, video_grids

DISPLAY_HEIGHT = 128  # pixel height of the frames drawn in the maps


def display_frames(path: Path, frame_step: int, height: int = DISPLAY_HEIGHT) -> np.ndarray:
    """The frames the model saw, at display size: uint8 (T, H, W, 3), aspect ratio kept."""
    frames = decode_video(path)[::frame_step]  # (T, H0, W0, 3)
    H0, W0 = frames.shape[1:3]
    size = (max(1, round(W0 * height / H0)), height)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])


def map_names(paths: list[Path]) -> list[str]:
    """File stems, numbered when two videos share one."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else f"{s}_{i}" for i, s in enumerate(stems)]


def classify_videos(task: AttentionActivityTask, model, paths: list[Path], device: torch.device,
                    topk: int = 5, attention_out: str | Path | None = None) -> list[dict]:
    """Videos -> one record per video {"video", "top": [{"class", "prob"}], "maps": {png, gif, json}}."""
    if attention_out is not None and model.cfg.kind != "attention":
        raise UserError(f"--attention: this checkpoint is a {model.cfg.kind!r} baseline, which has no attention")
    classes = task.classes
    grids = video_grids(model.encoder, paths, task.cfg.data, device, desc="videos")
    preds = task.predict(model, grids, device)
    records = []
    for path, name, pred in zip(paths, map_names(paths), preds):
        probs, ids = pred.scores.topk(min(topk, len(classes)))
        record = {"video": str(path), "top": [{"class": classes[i], "prob": round(p, 6)}
                                              for p, i in zip(probs.tolist(), ids.tolist())]}
        if attention_out is not None:
            frames = display_frames(path, task.cfg.data.frame_step)
            record["maps"] = write_maps(attention_out, name, frames, pred.frame_weights.numpy(),
                                        {**record, "classes": classes, "scores": pred.scores.tolist()})
        records.append(record)
    return records
