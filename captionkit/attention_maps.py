"""Attention maps of the soft-attention action model (Sharma, Kiros & Salakhutdinov, Figs. 3-4) and
the numbers that summarise them.

  draw_strip / write_maps   a PNG strip of frames with the location softmax l_t laid over them
                            (bright = attended, as in the paper's figures), an animated GIF, and the
                            numbers as JSON
  box_share                 how much attention falls on a ground-truth box, against chance (the share
                            a uniform map would put there), at grid-cell and at pixel level
  motion_stats              how attention moves over time: mean total variation between steps,
                            entropy of each step's map, and entropy of the window's summed map
                            (lambda = 10 spreads sum_t l_t over the frame: high coverage entropy)
  map_summary               all of these over a test set: object, zone and motion numbers at once
  best_fixed_cell           the oracle a map that never changes could reach: the one cell most
                            often touched by the boxes, and its share

Shape legend: T frames, P = K*K positions, K grid side, H x W frame size, W windows.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def grid_side(positions: int) -> int:
    K = int(round(math.sqrt(positions)))
    if K * K != positions:
        raise ValueError(f"attention over {positions} positions is not a square grid")
    return K


def cell_edges(K: int, size: int) -> np.ndarray:
    """Pixel edges (K+1,) of K equal cells across ``size`` pixels (the CNN saw the frame resized)."""
    return np.round(np.linspace(0, size, K + 1)).astype(int)


def pixel_map(weights: np.ndarray, H: int, W: int) -> np.ndarray:
    """One step's weights (P,) -> attention per pixel (H, W), each cell's mass spread evenly (sums to 1)."""
    K = grid_side(weights.size)
    ys, xs = cell_edges(K, H), cell_edges(K, W)
    cell = weights.reshape(K, K) / np.maximum(np.outer(np.diff(ys), np.diff(xs)), 1)  # mass per pixel
    rows = np.searchsorted(ys, np.arange(H), side="right") - 1  # (H,) cell row of every pixel row
    cols = np.searchsorted(xs, np.arange(W), side="right") - 1  # (W,)
    return cell[rows][:, cols]  # (H, W)


def box_share(frame_weights: np.ndarray, boxes: list[list[int]], frame_size: tuple[int, int]) -> dict | None:
    """frame_weights (T, P), per-frame boxes [x0, y0, x1, y1] ([] = object absent) -> mean over frames of
    the attention on the box and its chance level: ``cell_share`` (mass on the cells the box touches),
    ``cell_chance`` (their share of the P cells), ``pixel_share``, ``pixel_chance`` (box area / frame)."""
    H, W = frame_size
    K = grid_side(frame_weights.shape[1])
    ys, xs = cell_edges(K, H), cell_edges(K, W)
    rows = []
    for w, box in zip(frame_weights, boxes):
        if not box:
            continue
        x0, y0, x1, y1 = box
        r = np.flatnonzero((ys[:-1] < y1) & (ys[1:] > y0))  # cell rows the box touches
        c = np.flatnonzero((xs[:-1] < x1) & (xs[1:] > x0))
        cells = w.reshape(K, K)[np.ix_(r, c)]
        pix = pixel_map(w, H, W)[y0:y1, x0:x1]
        rows.append((cells.sum(), cells.size / (K * K), pix.sum(), (y1 - y0) * (x1 - x0) / (H * W)))
    if not rows:
        return None
    mean = np.mean(rows, axis=0)
    return dict(zip(("cell_share", "cell_chance", "pixel_share", "pixel_chance"), map(float, mean)))


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis of distributions (..., P)."""
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def motion_stats(weights: np.ndarray) -> dict[str, float]:
    """Attention of windows (W, T, P) -> mean step-to-step total variation, mean per-step entropy and
    the entropy of each window's time-averaged map, the entropies divided by log P (1 = uniform)."""
    W, T, P = weights.shape
    tv = 0.5 * np.abs(np.diff(weights, axis=1)).sum(-1).mean() if T > 1 else 0.0
    return {"total_variation": float(tv), "step_entropy": float(entropy(weights).mean() / math.log(P)),
            "coverage_entropy": float(entropy(weights.mean(1)).mean() / math.log(P))}


def map_summary(frame_weights: list[np.ndarray], window_weights: list[np.ndarray],
                boxes: list[list[list[int]]], zone: list[int], frame_size: tuple[int, int]) -> dict[str, float]:
    """Per video: frame weights (T, P), window weights (W, T', P), boxes per frame -> the mean over
    videos of ``box_share`` on the object, ``zone_share`` / ``zone_chance`` (the same on the fixed
    pixel box ``zone``) and ``motion_stats`` of all windows."""
    shares = [s for s in (box_share(w, b, frame_size) for w, b in zip(frame_weights, boxes)) if s]
    zones = [box_share(w, [zone] * len(w), frame_size) for w in frame_weights]
    out = {k: float(np.mean([s[k] for s in shares])) for k in shares[0]}
    out.update({f"zone_{k[5:]}": float(np.mean([z[k] for z in zones])) for k in ("cell_share", "cell_chance")})
    return out | motion_stats(np.concatenate(window_weights))


def best_fixed_cell(boxes: list[list[list[int]]], frame_size: tuple[int, int], K: int) -> tuple[int, float]:
    """Boxes of every video's frames -> (cell, share): the cell whose one-hot map, shown in every frame
    of every video, has the highest mean ``cell_share`` (the share is linear in the map, so no fixed
    map does better). The ceiling of a map that does not depend on the video or the frame."""
    P = K * K
    per_video = []
    for video in boxes:
        present = [b for b in video if b]
        one_hot = np.eye(P)[:, None, :].repeat(len(video), 1)  # (P cells, T, P)
        per_video.append([box_share(one_hot[c], video, frame_size)["cell_share"] for c in range(P)] if present
                         else None)
    mean = np.mean([v for v in per_video if v is not None], axis=0)  # (P,)
    return int(mean.argmax()), float(mean.max())


def overlay(frame: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """frame (H, W, 3) uint8, weights (P,) -> the frame darkened where attention is low (bright = looked at)."""
    K = grid_side(weights.size)
    H, W = frame.shape[:2]
    heat = Image.fromarray((weights.reshape(K, K) / max(weights.max(), 1e-12) * 255).astype(np.uint8))
    heat = np.asarray(heat.resize((W, H), Image.BILINEAR), np.float32)[..., None] / 255.0  # (H, W, 1)
    return (frame.astype(np.float32) * (0.2 + 0.8 * heat)).clip(0, 255).astype(np.uint8)


def draw_strip(frames: np.ndarray, frame_weights: np.ndarray, title: str, count: int = 8) -> Image.Image:
    """frames (T, H, W, 3), frame_weights (T, P) -> one row of ``count`` evenly spaced overlaid frames
    under a title line, each labelled with its frame number."""
    T, H, W = frames.shape[:3]
    picks = np.unique(np.linspace(0, T - 1, min(count, T)).round().astype(int))
    font = ImageFont.load_default()
    strip = Image.new("RGB", (len(picks) * (W + 4) + 4, H + 36), "white")
    draw = ImageDraw.Draw(strip)
    draw.text((4, 4), title, fill="black", font=font)
    for n, t in enumerate(picks):
        strip.paste(Image.fromarray(overlay(frames[t], frame_weights[t])), (4 + n * (W + 4), 20))
        draw.text((4 + n * (W + 4), H + 22), f"t={t}", fill="black", font=font)
    return strip


def write_maps(out: str | Path, name: str, frames: np.ndarray, frame_weights: np.ndarray,
               record: dict, fps: float = 8.0) -> dict[str, str]:
    """Write ``<name>_attention.png`` (strip), ``<name>_attention.gif`` (every frame) and
    ``<name>_attention.json`` (``record`` + the weights) under ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = " ".join(f"{r['class']} {r['prob']:.2f}" for r in record.get("top", [])[:3])
    paths = {kind: str(out / f"{name}_attention.{kind}") for kind in ("png", "gif", "json")}
    draw_strip(frames, frame_weights, title).save(paths["png"])
    gif = [Image.fromarray(overlay(f, w)) for f, w in zip(frames, frame_weights)]
    gif[0].save(paths["gif"], save_all=True, append_images=gif[1:], duration=int(1000 / fps), loop=0)
    K = grid_side(frame_weights.shape[1])
    Path(paths["json"]).write_text(json.dumps({**record, "grid": [K, K], "frames": int(len(frames)),
                                               "frame_weights": np.round(frame_weights, 5).tolist()}))
    return paths
