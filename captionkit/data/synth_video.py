"""Built-in synthetic videos whose class depends on the ORDER of the frames (for LRCN, section 4).

Classes come in pairs, and the second class of a pair is exactly the time reversal of the first:
  MoveRight / MoveLeft     a shape crosses the frame horizontally
  Grow / Shrink            a shape's size changes
  Appear / Disappear       a shape fades in / fades out
  MoveDown / MoveUp        a shape crosses the frame vertically
Each video draws its parameters (shape, colours, path, background) from a distribution that is the
same for both classes of a pair, and the reversed class plays the frames backwards. So any single
frame, or any order-free pooling of frames, carries no information about which class of a pair a
video belongs to: a single-frame model is at chance (1/2) inside each pair, while a model that reads
the frames in order (LRCN) can be perfect. Which pair a video belongs to is visible in one frame.

The videos are real files: lossless FFV1 in AVI, in the UCF101 layout
(``<root>/<Class>/v_<Class>_gNN_c01.avi``, ``classInd.txt``, ``trainlist01.txt``, ``testlist01.txt``),
so the whole pipeline (PyAV decoding, caches, flow, clips) runs on them. Everything is a pure
function of the parameters and the seed.

Shape legend: T frames, S frame side (square frames).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

PAIRS = (("MoveRight", "MoveLeft"), ("Grow", "Shrink"), ("Appear", "Disappear"), ("MoveDown", "MoveUp"))
CLASSES = tuple(name for pair in PAIRS for name in pair)
COLOURS = ((230, 60, 60), (60, 200, 80), (70, 110, 240), (240, 220, 50), (240, 240, 240), (200, 90, 220))


@dataclass(frozen=True)
class SynthVideoSpec:
    pairs: int = 3              # how many class pairs of PAIRS (2 * pairs classes)
    train_per_class: int = 40
    test_per_class: int = 10
    frames: int = 24            # frames per video
    size: int = 32              # frame side in pixels
    fps: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.pairs <= len(PAIRS):
            raise UserError(f"synthetic videos: pairs must be in 1..{len(PAIRS)}, got {self.pairs}")
        if self.frames < 2 or self.size < 16 or self.train_per_class < 1 or self.test_per_class < 1:
            raise UserError("synthetic videos: need frames >= 2, size >= 16 and at least one video per split")

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES[:2 * self.pairs]


def _mask(S: int, cx: float, cy: float, r: float, square: bool) -> np.ndarray:
    """Soft (anti-aliased) mask (S, S) in 0..1 of a circle or square of half-size r at (cx, cy) pixels."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    dist = np.maximum(abs(xx - cx), abs(yy - cy)) if square else np.hypot(xx - cx, yy - cy)
    return np.clip(r - dist + 0.5, 0.0, 1.0)


def render_video(pair: int, reverse: bool, spec: SynthVideoSpec, rng: np.random.Generator) -> np.ndarray:
    """One video of class pair ``pair`` (forward or time-reversed) -> uint8 (T, S, S, 3)."""
    S, T = spec.size, spec.frames
    square = bool(rng.random() < 0.5)
    colour = np.array(COLOURS[rng.integers(len(COLOURS))], np.float32)
    bg = rng.integers(10, 70, size=3).astype(np.float32)
    noise = rng.normal(0, 3, size=(T, S, S, 1)).astype(np.float32)
    s = np.linspace(0.0, 1.0, T)  # progress through the video
    r0 = S * rng.uniform(0.12, 0.18)
    if pair in (0, 3):  # crossing: horizontal (0) or vertical (3)
        along = S * (rng.uniform(0.15, 0.3) + s * rng.uniform(0.4, 0.55))
        across = np.full(T, S * rng.uniform(0.3, 0.7))
        xs, ys = (along, across) if pair == 0 else (across, along)
        rs, alphas = np.full(T, r0), np.ones(T)
    elif pair == 1:  # growing
        xs, ys = np.full(T, S * rng.uniform(0.4, 0.6)), np.full(T, S * rng.uniform(0.4, 0.6))
        rs, alphas = S * (0.06 + s * rng.uniform(0.2, 0.28)), np.ones(T)
    else:  # appearing (fading in)
        xs, ys = np.full(T, S * rng.uniform(0.3, 0.7)), np.full(T, S * rng.uniform(0.3, 0.7))
        rs, alphas = np.full(T, r0), s
    frames = np.empty((T, S, S, 3), np.float32)
    for t in range(T):
        m = (alphas[t] * _mask(S, xs[t], ys[t], rs[t], square))[..., None]  # (S, S, 1)
        frames[t] = (1 - m) * bg + m * colour
    frames = np.clip(frames + noise, 0, 255).astype(np.uint8)  # (T, S, S, 3)
    return frames[::-1].copy() if reverse else frames


def write_avi(path: str | Path, frames: np.ndarray, fps: int = 25) -> None:
    """uint8 (T, H, W, 3) RGB -> a lossless FFV1 AVI file (written to a temporary name, then renamed)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")  # concurrent writers never share it
    with av.open(str(tmp), "w", format="avi") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)


def write_synth_videos(root: str | Path, spec: SynthVideoSpec = SynthVideoSpec()) -> Path:
    """Write the set (videos, classInd.txt, trainlist01.txt, testlist01.txt) unless already there.

    A ``synth.json`` beside the lists records the spec; a folder written with another spec is
    rewritten. Returns ``root``.
    """
    root = Path(root)
    marker = root / "synth.json"
    if marker.is_file() and json.loads(marker.read_text()) == asdict(spec):
        return root
    classes = spec.classes
    train, test = [], []
    for c, name in enumerate(classes):
        pair, reverse = divmod(c, 2)
        for i in range(spec.train_per_class + spec.test_per_class):
            # per-video seed: the same parameters for both classes of a pair would make the test
            # trivially paired, so every (class, index) gets its own stream
            rng = np.random.default_rng([spec.seed, c, i])
            rel = f"{name}/v_{name}_g{i + 1:02d}_c01.avi"
            write_avi(root / rel, render_video(pair, bool(reverse), spec, rng), spec.fps)
            (train if i < spec.train_per_class else test).append((rel, c + 1))
    write_split_lists(root, classes, train, test)
    marker.write_text(json.dumps(asdict(spec)))
    return root


def write_split_lists(root: Path, classes: list[str], train: list[tuple[str, int]],
                      test: list[tuple[str, int]]) -> None:
    """UCF101-style classInd.txt, trainlist01.txt and testlist01.txt for (relative path, 1-based class)."""
    (root / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(classes)))
    (root / "trainlist01.txt").write_text("".join(f"{rel} {c}\n" for rel, c in train))
    (root / "testlist01.txt").write_text("".join(f"{rel}\n" for rel, _ in test))


def order_pairs(classes: list[str]) -> list[tuple[int, int]]:
    """Indices of the (forward, reversed) class pairs present in ``classes``."""
    index = {n: i for i, n in enumerate(classes)}
    return [(index[a], index[b]) for a, b in PAIRS if a in index and b in index]
