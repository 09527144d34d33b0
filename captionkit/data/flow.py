"""Optical flow for the flow stream of LRCN activity recognition (Donahue et al., section 4).

Flow between consecutive frames is computed with OpenCV: TV-L1 when ``cv2.optflow`` (opencv-contrib)
is installed, else DIS, else Farneback. As in the paper it is stored as a "flow image": the x and y
components multiplied by ``scale``, clipped to [-128, 128] and shifted by 128 into 0..255, with the
flow magnitude (of the scaled, clipped x and y, clipped to 255) as the third channel, so the flow
stream reuses the RGB pipeline (cache, clips, crops, CNN). A video of T frames has T - 1 flow images.

Shape legend: T frames, H x W frame size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .video import cache_key, load_frames, save_array_atomic

METHODS = ("auto", "tvl1", "dis", "farneback")
DEFAULT_SCALE = 16.0  # grey levels per pixel of motion: displacements beyond +-8 px saturate


def available_method() -> str:
    """The best flow method this OpenCV build has: "tvl1", "dis" or "farneback"."""
    import cv2

    if hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create"):
        return "tvl1"
    if hasattr(cv2, "DISOpticalFlow_create"):
        return "dis"
    return "farneback"


def _flow_fn(method: str):
    """method -> f(prev_gray (H, W) uint8, next_gray (H, W) uint8) -> flow float32 (H, W, 2)."""
    import cv2

    if method == "auto":
        method = available_method()
    if method == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise UserError("data.flow_method='tvl1' needs opencv-contrib (cv2.optflow); use 'auto' or 'dis'")
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda a, b: tvl1.calc(a, b, None)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda a, b: dis.calc(a, b, None)
    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise UserError(f"unknown flow method {method!r} (known: {', '.join(METHODS)})")


def compute_flow(frames: np.ndarray, method: str = "auto") -> np.ndarray:
    """RGB frames uint8 (T, H, W, 3) -> flow float32 (T - 1, H, W, 2) in pixels (x, y)."""
    import cv2

    if len(frames) < 2:
        raise UserError(f"optical flow needs at least 2 frames, got {len(frames)}")
    fn = _flow_fn(method)
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]  # T x (H, W)
    return np.stack([fn(a, b) for a, b in zip(gray[:-1], gray[1:])]).astype(np.float32)


def encode_flow(flow: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Flow float (..., 2) in pixels -> flow image uint8 (..., 3): 128 + scaled x, 128 + scaled y, magnitude."""
    xy = np.clip(flow * scale, -128.0, 128.0)  # (..., 2)
    mag = np.sqrt((xy ** 2).sum(-1, keepdims=True))  # (..., 1)
    img = np.concatenate([xy + 128.0, mag], axis=-1)  # (..., 3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def decode_flow(image: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Flow image uint8 (..., 3) -> flow float32 (..., 2) in pixels (exact up to 1/scale and the clip)."""
    return ((image[..., :2].astype(np.float32) - 128.0) / scale).astype(np.float32)


def load_flow(path: str | Path, size: tuple[int, int] | None, cache_dir: str | Path | None,
              method: str = "auto", scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Flow images (T - 1, H, W, 3) uint8 of one video, computed once and cached like the frames."""
    path = Path(path)
    if method == "auto":
        method = available_method()
    if cache_dir is None:
        return encode_flow(compute_flow(load_frames(path, size, None), method), scale)
    cached = Path(cache_dir) / "flow" / (cache_key(path, "flow", size, method, scale) + ".npy")
    if cached.is_file():
        return np.load(cached, mmap_mode="r")
    frames = load_frames(path, size, cache_dir)
    images = encode_flow(compute_flow(np.asarray(frames), method), scale)
    save_array_atomic(images, cached)
    return images
