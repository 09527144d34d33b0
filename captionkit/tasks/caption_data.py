"""Where captioning images and references come from: one ``ImageSource`` per split.

``data.source`` picks the format; relative paths are resolved against ``data.root`` so that a recipe
points at ``../shared/data`` here and at a user's own copy elsewhere (``--set data.root=...``).
  synth     built-in synthetic scenes (``synth_*`` sizes; no files)
  coco      ``annotations`` / ``val_annotations`` (COCO caption JSON) + ``images`` / ``val_images``
  karpathy  ``annotations`` = dataset_*.json, ``train_split`` / ``val_split`` = split names, ``images``
  flickr8k  ``annotations`` = Flickr8k.token.txt, ``train_split`` / ``val_split`` = split-list files
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..data.captions import CaptionItem, load_coco, load_flickr8k, load_karpathy
from ..config import require
from ..data.synth import synth_items
from ..errors import UserError
from ..features import file_stamp, load_image

SOURCES = ("synth", "coco", "karpathy", "flickr8k")
REAL_DATA_KEYS = ("root", "annotations", "val_annotations", "images", "val_images")  # meaningless for "synth"


@dataclass
class CaptionDataConfig:
    source: str = "synth"       # one of SOURCES
    root: str = ""              # data root for the relative paths below
    images: str = ""            # image folder (train; val too unless val_images is set)
    val_images: str = ""
    annotations: str = ""       # coco: train captions JSON; karpathy: dataset_*.json; flickr8k: token file
    val_annotations: str = ""   # coco only
    train_split: str = "train"  # karpathy: split name; flickr8k: split-list file
    val_split: str = "val"
    test_split: str = "test"
    min_count: int = 5          # words rarer than this in training captions become <unk>
    max_len: int = 20           # training captions are cut to this many words
    val_limit: int = 0          # validate on the first N images only (0 = all)
    train_limit: int = 0        # train on the first N images only (0 = all)
    captions_per_image: int = 0  # train on the first N captions of each image only (0 = all)
    group_captions: bool = False  # a training item = one image with all its captions: the CNN runs
                                  # once per image (fine-tuning); train.batch_size then counts images
    synth_train: int = 4000
    synth_val: int = 250
    synth_test: int = 250
    synth_seed: int = 0
    synth_size: int = 64

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {self.source!r}")
        require(self, "data", positive=("max_len", "synth_train", "synth_val", "synth_test", "synth_size"))
        files = [k for k in REAL_DATA_KEYS if getattr(self, k)]
        if self.source == "synth" and files:
            raise ValueError(f"data.{files[0]} is set but data.source is 'synth' (the default: built-in "
                             f"synthetic scenes): set data.source to one of {SOURCES[1:]}")

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or not self.root else Path(self.root) / p


class ImageSource:
    """The items of one split and how to load their images (files or synthetic renders)."""

    def __init__(self, split: str, items: list, synthetic: bool):
        self.split, self.items, self.synthetic = split, items, synthetic
        self._index = {it.image_id: i for i, it in enumerate(items)}

    def ids(self) -> list[str]:
        return [it.image_id for it in self.items]

    def image(self, i: int) -> Image.Image:
        item = self.items[i]
        if self.synthetic:
            return item.image()
        if item.file is None:
            raise UserError(f"no image folder configured for {item.image_id} (set data.images)")
        return load_image(item.file)

    def image_by_id(self, image_id: str) -> Image.Image:
        return self.image(self._index[image_id])

    def stamp(self, image_id: str) -> str:
        """What the image is, for the feature cache: its file's path, size and mtime (a synthetic
        scene is a function of its id, which names its seed and size)."""
        item = self.items[self._index[image_id]]
        return "synthetic" if self.synthetic else file_stamp(item.file) if item.file else "no file"


def load_split(d: CaptionDataConfig, split: str) -> ImageSource:
    """The ``split`` ("train" | "val" | "test") of the configured source."""
    if d.source == "synth":
        n = {"train": d.synth_train, "val": d.synth_val, "test": d.synth_test}[split]
        items = synth_items(split, n, d.synth_seed, d.synth_size)
    else:
        items = _file_items(d, split)
    if split == "train" and d.train_limit:
        items = items[:d.train_limit]
    if not items:
        raise UserError(f"data split {split!r} of source {d.source!r} is empty")
    return ImageSource(split, items, d.source == "synth")


def _file_items(d: CaptionDataConfig, split: str) -> list[CaptionItem]:
    split_name = {"train": d.train_split, "val": d.val_split, "test": d.test_split}[split]
    images = d.path(d.val_images) if (split != "train" and d.val_images) else \
        (d.path(d.images) if d.images else None)
    if not d.annotations:
        raise UserError(f"data.annotations is required for data.source={d.source!r}")
    if d.source == "coco":
        ann = d.annotations if split == "train" else (d.val_annotations or d.annotations)
        return load_coco(d.path(ann), images)
    if d.source == "karpathy":
        return load_karpathy(d.path(d.annotations), split_name, images)
    return load_flickr8k(d.path(d.annotations), d.path(split_name), images)
