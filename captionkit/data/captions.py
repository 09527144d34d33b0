"""Caption annotation formats users actually have, read into one record type.

- COCO caption annotations (``captions_*.json``: ``images[].{id, file_name}``, ``annotations[].{image_id, caption}``)
- Karpathy split files (``dataset_{coco,flickr8k,flickr30k}.json``: ``images[].{filename, split, sentences[].raw}``)
- Flickr8k's ``Flickr8k.token.txt`` (``<file>.jpg#<n>\\t<caption>``) with a split list (``Flickr_8k.*Images.txt``)

Image ids are strings everywhere in captionkit (COCO's integer ids are written back as integers in
COCO results files). Every parse problem raises ``UserError`` naming the file and the field.
"""
from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError, read_utf8


@dataclass
class CaptionItem:
    image_id: str                       # COCO: str(int id); Flickr8k / Karpathy-Flickr: the file name
    file: Path | None                   # the image file, when an image folder was given
    captions: list[str] = field(default_factory=list)  # raw reference captions


def read_json(path: str | Path, what: str = "JSON file"):
    """Load a JSON file, turning every failure into a one-line UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _field(obj, key, path, where):
    if not isinstance(obj, dict) or key not in obj:
        raise UserError(f"{path}: {where} has no field {key!r}")
    return obj[key]


def load_coco(annotations: str | Path, image_dir: str | Path | None = None) -> list[CaptionItem]:
    """COCO caption annotations -> one CaptionItem per image that has at least one caption."""
    data = read_json(annotations, "COCO annotation file")
    if not isinstance(data, dict) or "annotations" not in data:
        raise UserError(f"{annotations}: not a COCO caption file (no 'annotations' list)")
    files: dict[str, str] = {}
    for i, img in enumerate(data.get("images", [])):
        files[str(_field(img, "id", annotations, f"images[{i}]"))] = img.get("file_name", "")
    items: "OrderedDict[str, CaptionItem]" = OrderedDict()
    for i, ann in enumerate(data["annotations"]):
        iid = str(_field(ann, "image_id", annotations, f"annotations[{i}]"))
        cap = _field(ann, "caption", annotations, f"annotations[{i}]")
        if not isinstance(cap, str):
            raise UserError(f"{annotations}: annotations[{i}].caption is not a string")
        if iid not in items:
            fname = files.get(iid)
            f = Path(image_dir) / fname if (image_dir is not None and fname) else None
            items[iid] = CaptionItem(iid, f)
        items[iid].captions.append(cap)
    return list(items.values())


KARPATHY_SPLITS = ("train", "restval", "val", "test")


def load_karpathy(dataset_json: str | Path, split: str, image_dir: str | Path | None = None,
                  restval_in_train: bool = True) -> list[CaptionItem]:
    """Karpathy ``dataset_*.json`` -> the items of one split ("train" includes "restval" by default)."""
    if split not in KARPATHY_SPLITS:
        raise UserError(f"split must be one of {KARPATHY_SPLITS}, got {split!r}")
    data = read_json(dataset_json, "Karpathy dataset file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{dataset_json}: not a Karpathy dataset file (no 'images' list)")
    wanted = {split} | ({"restval"} if split == "train" and restval_in_train else set())
    items = []
    for i, img in enumerate(data["images"]):
        if _field(img, "split", dataset_json, f"images[{i}]") not in wanted:
            continue
        fname = _field(img, "filename", dataset_json, f"images[{i}]")
        iid = str(img["cocoid"]) if "cocoid" in img else fname
        sub = img.get("filepath", "")
        f = Path(image_dir) / sub / fname if image_dir is not None else None
        sents = _field(img, "sentences", dataset_json, f"images[{i}]")
        caps = [_field(s, "raw", dataset_json, f"images[{i}].sentences") for s in sents]
        items.append(CaptionItem(iid, f, caps))
    return items


_TOKEN_LINE = re.compile(r"^(?P<file>[^#\t]+)#(?P<n>\d+)\t(?P<caption>.*)$")


def read_flickr8k_tokens(token_file: str | Path) -> "OrderedDict[str, list[str]]":
    """``Flickr8k.token.txt`` -> {file name: captions}, in file order."""
    path = Path(token_file)
    if not path.is_file():
        raise UserError(f"Flickr8k token file not found: {path}")
    caps: "OrderedDict[str, list[str]]" = OrderedDict()
    for lineno, line in enumerate(read_utf8(path).split("\n"), 1):
        if not line.strip():
            continue
        m = _TOKEN_LINE.match(line)
        if m is None:
            raise UserError(f"{path}:{lineno}: expected '<image>#<n><TAB><caption>', got {line[:60]!r}")
        caps.setdefault(m["file"], []).append(m["caption"])
    return caps


def read_split_list(split_file: str | Path) -> list[str]:
    """A Flickr-style split list (one image file name per line)."""
    path = Path(split_file)
    if not path.is_file():
        raise UserError(f"split list not found: {path}")
    return [line.strip() for line in read_utf8(path).split("\n") if line.strip()]


def load_flickr8k(token_file: str | Path, split_file: str | Path,
                  image_dir: str | Path | None = None) -> list[CaptionItem]:
    """Flickr8k token file + split list -> the split's items, in split-list order.

    Token lines naming files outside the split (such as the original file's five lines for the
    non-existent ``2258277193_586949ec62.jpg.1``) are ignored; a split image with no caption is an error.
    """
    caps = read_flickr8k_tokens(token_file)
    items = []
    for fname in read_split_list(split_file):
        if fname not in caps:
            raise UserError(f"{split_file}: image {fname!r} has no caption in {token_file}")
        f = Path(image_dir) / fname if image_dir is not None else None
        items.append(CaptionItem(fname, f, list(caps[fname])))
    return items
