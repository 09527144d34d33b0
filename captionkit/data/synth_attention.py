"""Synthetic videos where WHERE matters (for the soft-attention model of Sharma, Kiros & Salakhutdinov,
"Action Recognition using Visual Attention", section 3; the test bed of its Table 1 / Fig. 3 claims).

Each video shows one small *deciding* object inside a fixed zone of the frame (``zone``, fractions
of the frame, default the lower-left area) and ``distractors`` larger objects elsewhere. Every object
does one action of
  Grow      its size doubles           Shrink   the time reversal of Grow
  Blink     it switches on and off     Slide    it moves steadily to the right
The class is the deciding object's action; each distractor does an action drawn at random from the
same four, with colours and shapes drawn from the same palette. So a model that pools the whole
frame sees a mixture dominated by the larger distractors, while a model that looks at the zone sees
the class directly. Which object decides is visible from where it is (the zone) and its size.

The videos are real files (lossless FFV1 in AVI, through PyAV) in the UCF101 layout
(``<root>/<Class>/v_<Class>_gNN_c01.avi``, ``classInd.txt``, ``trainlist01.txt``, ``testlist01.txt``);
beside each video a JSON file (same name, ``.json``) records the deciding object's box in every
frame (``boxes``: [x0, y0, x1, y1] in pixels, exclusive ends) and the frame size. Everything is a
pure function of the spec and the seed.

Shape legend: T frames, S frame side (square frames).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .synth_video import COLOURS, _mask, write_avi, write_split_lists

CLASSES = ("Grow", "Shrink", "Blink", "Slide")


@dataclass(frozen=True)
class SynthAttentionSpec:
    train_per_class: int = 40
    test_per_class: int = 16
    frames: int = 20            # frames per video
    size: int = 96              # frame side in pixels
    fps: int = 25
    distractors: int = 2        # larger objects outside the zone, each doing a random action
    object_size: float = 0.06   # half-size of the deciding object, as a fraction of the side
    distractor_size: list[float] = field(default_factory=lambda: [0.10, 0.13])  # half-size range
    zone: list[float] = field(default_factory=lambda: [0.06, 0.56, 0.40, 0.90])  # x0, y0, x1, y1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames < 4 or self.size < 32 or self.train_per_class < 1 or self.test_per_class < 1:
            raise UserError("synthetic attention videos: need frames >= 4, size >= 32 and a video per split")
        x0, y0, x1, y1 = self.zone if len(self.zone) == 4 else (0, 0, 0, 0)
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise UserError(f"synthetic attention videos: zone must be [x0, y0, x1, y1] in 0..1, got {self.zone}")
        if self.distractors < 0 or len(self.distractor_size) != 2:
            raise UserError("synthetic attention videos: distractors >= 0 and distractor_size = [min, max]")

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES


def action_path(action: int, T: int, cx: float, cy: float, r: float, rng: np.random.Generator):
    """One object's (xs, ys, rs, alphas), each (T,), for action index ``action`` of CLASSES."""
    s = np.linspace(0.0, 1.0, T)
    xs, ys, rs, alphas = np.full(T, cx), np.full(T, cy), np.full(T, r), np.ones(T)
    if action in (0, 1):  # grow from 0.6 r to 1.4 r (shrink: the reverse)
        rs = r * (0.6 + 0.8 * (s if action == 0 else 1.0 - s))
    elif action == 2:  # blink: on for `period` frames, off for `period`, from a random phase
        period = int(rng.integers(2, 4))
        phase = int(rng.integers(0, 2 * period))
        alphas = (((np.arange(T) + phase) // period) % 2 == 0).astype(np.float64)
    else:  # slide right by 3 r over the video, centred on cx
        xs = cx + r * (3.0 * s - 1.5)
    return xs, ys, rs, alphas


def _place_distractor(S: int, r: float, zone_px: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A centre whose whole path (slide +-1.5 r, grow to 1.4 r) stays in the frame and off the zone."""
    rx, ry = 2.9 * r, 1.4 * r  # slide + grow sideways, grow up and down
    for _ in range(200):
        cx, cy = rng.uniform(rx, S - rx), rng.uniform(ry, S - ry)
        apart_x = cx + rx <= zone_px[0] or cx - rx >= zone_px[2]
        apart_y = cy + ry <= zone_px[1] or cy - ry >= zone_px[3]
        if apart_x or apart_y:
            return float(cx), float(cy)
    raise UserError("synthetic attention videos: no room for the distractors outside the zone "
                    "(make the zone or distractor_size smaller)")


def _box(xs, ys, rs, alphas, S: int) -> list[list[int]]:
    """Per-frame pixel boxes [x0, y0, x1, y1] (exclusive ends) of an object; [] where it is off."""
    boxes = []
    for x, y, r, a in zip(xs, ys, rs, alphas):
        if a <= 0:
            boxes.append([])
            continue
        x0, y0 = max(0, int(np.floor(x - r))), max(0, int(np.floor(y - r)))
        boxes.append([x0, y0, min(S, int(np.ceil(x + r)) + 1), min(S, int(np.ceil(y + r)) + 1)])
    return boxes


def _inside(lo: float, hi: float, margin: float, rng: np.random.Generator) -> float:
    """A uniform position in [lo + margin, hi - margin], or the middle when the range is too short."""
    return float(rng.uniform(lo + margin, hi - margin)) if hi - lo > 2 * margin else (lo + hi) / 2


def render_video(label: int, spec: SynthAttentionSpec, rng: np.random.Generator):
    """-> (frames uint8 (T, S, S, 3), per-frame boxes of the deciding object)."""
    S, T = spec.size, spec.frames
    zone_px = np.array(spec.zone) * S
    r = spec.object_size * S
    cx = _inside(zone_px[0], zone_px[2], 2.0 * r, rng)  # room to slide sideways
    cy = _inside(zone_px[1], zone_px[3], 1.5 * r, rng)
    objects = [action_path(label, T, cx, cy, r, rng)]
    for _ in range(spec.distractors):
        rd = S * rng.uniform(*spec.distractor_size)
        dx, dy = _place_distractor(S, rd, zone_px, rng)
        objects.append(action_path(int(rng.integers(len(CLASSES))), T, dx, dy, rd, rng))
    bg = rng.integers(10, 70, size=3).astype(np.float32)
    frames = np.broadcast_to(bg, (T, S, S, 3)).copy()
    for xs, ys, rs, alphas in objects:
        square = bool(rng.random() < 0.5)
        colour = np.array(COLOURS[rng.integers(len(COLOURS))], np.float32)
        for t in range(T):
            m = (alphas[t] * _mask(S, xs[t], ys[t], rs[t], square))[..., None]  # (S, S, 1)
            frames[t] = (1 - m) * frames[t] + m * colour
    frames += rng.normal(0, 3, size=(T, S, S, 1)).astype(np.float32)
    return np.clip(frames, 0, 255).astype(np.uint8), _box(*objects[0], S)


def write_synth_attention(root: str | Path, spec: SynthAttentionSpec = SynthAttentionSpec()) -> Path:
    """Write the set (videos + box JSON, classInd.txt, trainlist01.txt, testlist01.txt) unless there.

    A ``synth_attention.json`` records the spec; a folder written with another spec is rewritten.
    """
    root = Path(root)
    marker = root / "synth_attention.json"
    if marker.is_file() and json.loads(marker.read_text()) == asdict(spec):
        return root
    train, test = [], []
    for c, name in enumerate(CLASSES):
        for i in range(spec.train_per_class + spec.test_per_class):
            rng = np.random.default_rng([spec.seed, c, i])  # one stream per (class, index)
            frames, boxes = render_video(c, spec, rng)
            rel = f"{name}/v_{name}_g{i + 1:02d}_c01.avi"
            write_avi(root / rel, frames, spec.fps)
            (root / rel).with_suffix(".json").write_text(json.dumps(
                {"class": name, "frame_size": [spec.size, spec.size], "boxes": boxes}))
            (train if i < spec.train_per_class else test).append((rel, c + 1))
    write_split_lists(root, list(CLASSES), train, test)
    marker.write_text(json.dumps(asdict(spec)))
    return root


def read_boxes(video: str | Path) -> dict | None:
    """The box JSON written beside a synthetic video ({"frame_size", "boxes"}), or None if absent."""
    path = Path(video).with_suffix(".json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return {"frame_size": list(data["frame_size"]), "boxes": list(data["boxes"])}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a box file ({type(e).__name__}: {e})") from None
