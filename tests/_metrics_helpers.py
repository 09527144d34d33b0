"""Shared bits for the metrics tests: a built-in caption set and COCO val2017 loading."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
COCO_VAL = DATA / "coco" / "captions_val2017.json"

REFS = {
    "1": ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave.",
          "Man on a surfboard riding the ocean's wave.", "a person surfing a wave in the ocean",
          "A surfer in a black wetsuit on a wave."],
    "2": ["Two dogs playing with a frisbee in the grass.", "Dogs run after a flying disc.",
          "two brown dogs on a lawn"],
    "3": ["A plate of food with broccoli and rice.", "A white plate topped with rice, meat and broccoli."],
    "4": ["A red double decker bus on a city street.", "A bus driving down the street.",
          "The bus isn't moving; it's parked at St. Louis Ave."],
    "5": ["a kitchen with a stove and a sink"],
}
RES = {"1": "a man riding a wave on a surfboard", "2": "a dog playing with a frisbee",
       "3": "a plate of food", "4": "a bus", "5": "broccoli"}


def coco_refs() -> dict[str, list[str]]:
    if not COCO_VAL.is_file():
        pytest.skip(f"COCO val2017 captions not found at {COCO_VAL} (shared data folder absent)")
    refs: dict[str, list[str]] = {}
    for a in json.loads(COCO_VAL.read_text())["annotations"]:
        refs.setdefault(str(a["image_id"]), []).append(a["caption"])
    return refs


def perturb(refs: dict[str, list[str]], seed: int = 0) -> dict[str, str]:
    """Plausible generated captions: a reference (sometimes another image's) with words dropped,
    swapped or repeated; a few empty, one-word and upper-case ones."""
    rng = random.Random(seed)
    ids = list(refs)
    out = {}
    for i in ids:
        src = refs[rng.choice(ids)] if rng.random() < 0.2 else refs[i]
        w = rng.choice(src).split()
        w = [x for x in w if rng.random() > 0.15]
        if len(w) > 3 and rng.random() < 0.3:
            k = rng.randrange(len(w) - 1)
            w[k], w[k + 1] = w[k + 1], w[k]
        if rng.random() < 0.1:
            w = w + w[-2:]
        r = rng.random()
        if r < 0.01:
            w = []
        elif r < 0.04:
            w = w[:1]
        elif r < 0.06:
            w = [x.upper() for x in w]
        out[i] = " ".join(w)
    return out
