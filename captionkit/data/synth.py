"""Built-in synthetic data: procedurally drawn scenes with compositional captions.

Every scene holds one or two shapes (circle, square, triangle) of a colour and a size; two shapes
stand in a spatial relation (left of, right of, above, below). Five reference captions per image
describe it in different words, e.g. "a small red circle to the left of a large blue square" and
"a large blue square to the right of a small red circle", so CIDEr-D rewards the content, not one
template. Everything is a pure function of (seed, split, index): no files, no downloads.

This is the default data of ``captionkit demo`` and of the tests. ``write_coco`` writes a split as
PNG files plus a COCO caption annotation file, so the real-format loaders can be exercised too.
Synthetic *videos* (order-dependent activity classes, written as real .avi files in the UCF101
layout) live in ``synth_video`` and are re-exported here: ``write_synth_videos``, ``SynthVideoSpec``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 45, 45), "green": (40, 185, 70), "blue": (50, 90, 230),
           "yellow": (235, 215, 40), "white": (245, 245, 245)}
SIZES = {"small": 0.11, "large": 0.21}      # half-size as a fraction of the image side
RELATIONS = {"left": ("to the left of", "to the right of"), "above": ("above", "below")}
SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Shape:
    shape: str
    colour: str
    size: str
    cx: float   # centre, as a fraction of the image side
    cy: float

    def words(self, with_size: bool = True) -> str:
        return f"{self.size} {self.colour} {self.shape}" if with_size else f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]
    relation: str = ""          # "left" (shape 0 is left of shape 1) | "above" | "" for one shape
    background: tuple[int, int, int] = (40, 40, 40)


def make_scene(rng: np.random.Generator) -> Scene:
    """Draw one random scene: one shape (20%) or two distinct shapes in a relation."""
    n = 1 if rng.random() < 0.2 else 2
    kinds: list[tuple[str, str]] = []  # a list, not a set: set order varies between processes
    while len(kinds) < n:
        kind = (SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))])
        if kind not in kinds:
            kinds.append(kind)
    sizes = [list(SIZES)[rng.integers(len(SIZES))] for _ in range(n)]
    bg = tuple(int(v) for v in rng.integers(10, 90, size=3))
    if n == 1:
        c = rng.uniform(0.3, 0.7, size=2)
        return Scene((Shape(*kinds[0], sizes[0], float(c[0]), float(c[1])),), "", bg)
    relation = "left" if rng.random() < 0.5 else "above"
    first, second = rng.uniform(0.22, 0.34), rng.uniform(0.66, 0.78)  # along the relation's axis
    across = rng.uniform(0.3, 0.7, size=2)                           # along the other axis
    if relation == "left":
        pos = [(first, across[0]), (second, across[1])]
    else:
        pos = [(across[0], first), (across[1], second)]
    shapes = tuple(Shape(k[0], k[1], s, float(p[0]), float(p[1])) for k, s, p in zip(kinds, sizes, pos))
    return Scene(shapes, relation, bg)


def captions(scene: Scene) -> list[str]:
    """Five reference captions for a scene."""
    if len(scene.shapes) == 1:
        s = scene.shapes[0]
        return [f"a {s.words()}", f"a {s.words(False)}", f"there is a {s.words()}",
                f"one {s.words()}", f"a single {s.words(False)}"]
    a, b = scene.shapes
    rel, inv = RELATIONS[scene.relation]
    return [f"a {a.words()} {rel} a {b.words()}",
            f"a {b.words()} {inv} a {a.words()}",
            f"a {a.words(False)} {rel} a {b.words(False)}",
            f"a {b.words(False)} {inv} a {a.words(False)}",
            f"a {a.words()} and a {b.words()}"]


def render(scene: Scene, size: int = 64, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw a scene as an RGB image of ``size`` x ``size`` pixels (with mild pixel noise)."""
    img = Image.new("RGB", (size, size), scene.background)
    draw = ImageDraw.Draw(img)
    for s in scene.shapes:
        r = SIZES[s.size] * size
        x, y = s.cx * size, s.cy * size
        box = [x - r, y - r, x + r, y + r]
        colour = COLOURS[s.colour]
        if s.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif s.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    if rng is not None:
        arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, size=(size, size, 3))
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    return img


@dataclass(frozen=True)
class SynthItem:
    image_id: str
    scene: Scene
    captions: list[str]
    seed: int
    size: int

    def image(self) -> Image.Image:
        """Render on demand (deterministic: the noise is seeded by the item)."""
        split, idx = self.image_id.rsplit("-", 2)[-2:]
        return render(self.scene, self.size, np.random.default_rng([self.seed, SPLITS[split], int(idx), 1]))


def synth_items(split: str, n: int, seed: int = 0, size: int = 64) -> list[SynthItem]:
    """The first ``n`` items of a split ("train" | "val" | "test"); disjoint across splits by seed."""
    if split not in SPLITS:
        raise ValueError(f"synthetic split must be one of {tuple(SPLITS)}, got {split!r}")
    items = []
    for i in range(n):
        scene = make_scene(np.random.default_rng([seed, SPLITS[split], i]))
        items.append(SynthItem(f"synth{seed}s{size}-{split}-{i:06d}", scene, captions(scene), seed, size))
    return items


def write_coco(out_dir: str | Path, split: str, n: int, seed: int = 0, size: int = 64) -> Path:
    """Write a split as ``out_dir/<split>/*.png`` plus ``out_dir/captions_<split>.json`` (COCO format)."""
    out = Path(out_dir)
    (out / split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for num, item in enumerate(synth_items(split, n, seed, size)):
        fname = f"{item.image_id}.png"
        item.image().save(out / split / fname)
        images.append({"id": num, "file_name": fname, "width": size, "height": size})
        anns += [{"id": len(anns), "image_id": num, "caption": c} for c in item.captions]
    path = out / f"captions_{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    return path


from .synth_video import SynthVideoSpec, write_synth_videos  # noqa: E402,F401  (re-export)
