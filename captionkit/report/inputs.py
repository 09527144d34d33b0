"""Reading what the other commands write, for the report: captions, scores, per-image scores.

**Captions** (``.json``): a list with one object per image, any of
  - COCO results, as ``captionkit evaluate`` / ``caption --format coco`` write them:
    ``{"image_id": ID, "caption": "..."}``, optionally ``"logp": -3.2``;
  - n-best, as ``captionkit caption --format json`` writes it: ``{"file": PATH, "captions":
    [{"caption": "...", "logp": -3.2}, ...]}`` (best first; the id is the file name, and the file is
    the image) or ``{"image_id": ID, "captions": [...]}``;
  - either with ``"attention"``: one map per generated word (``T`` words, optionally one more for the
    end token), each a ``K x K`` nested list or a flat list of ``K*K`` weights over the image grid.
``.jsonl`` / ``.tsv`` results files are read by ``captionkit score``'s reader (captions only).

**Scores** (``.json``): what ``captionkit evaluate`` writes (``{"scores": {...}, "settings": {...},
"checkpoint", "split", "decode", ...}``, with ``"per_image"`` when present) or ``captionkit score
--json`` prints (metric names at the top level, then ``"settings"``). **Per-image scores**:
``captionkit score --per-image FILE`` (``{id: {metric: score}}``).

Every problem is a one-line ``UserError`` naming the file and the entry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.captions import read_json
from ..errors import UserError
from ..metrics.inputs import read_results

NBest = list[tuple[str, "float | None"]]   # captions of one image, best first, with log-probabilities


@dataclass
class Captions:
    nbest: dict[str, NBest]                    # image id -> n-best captions (file order)
    attention: dict[str, np.ndarray]           # image id -> (T, K, K) attention maps, where given
    files: dict[str, Path]                     # image id -> the image file, where the entry names it


def _logp(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UserError(f"{where}: 'logp' must be a number, got {value!r:.40}")
    return float(value)


def parse_caption(obj, where: str) -> tuple[str, float | None]:
    if isinstance(obj, str):
        return obj, None
    if not isinstance(obj, dict) or not isinstance(obj.get("caption"), str):
        raise UserError(f"{where}: expected {{'caption': str, 'logp': number}}, got {str(obj)[:60]!r}")
    return obj["caption"], _logp(obj.get("logp"), where)


def attention_maps(value, n_words: int, where: str) -> np.ndarray:
    """Nested lists -> (T, K, K) float maps; T is the word count (or one more, for the end token)."""
    try:
        maps = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise UserError(f"{where}: 'attention' must be numbers, one map per word") from None
    if maps.ndim == 2:   # (T, K*K)
        k = int(round(math.sqrt(maps.shape[1]))) if maps.shape[1] else 0
        if k * k != maps.shape[1] or k == 0:
            raise UserError(f"{where}: 'attention' maps of {maps.shape[1]} weights are not a square grid")
        maps = maps.reshape(len(maps), k, k)                      # (T, K, K)
    if maps.ndim != 3 or maps.shape[1] != maps.shape[2] or maps.shape[1] == 0:
        raise UserError(f"{where}: 'attention' must be T maps of K x K weights, got shape {maps.shape}")
    if maps.shape[0] not in (n_words, n_words + 1):
        raise UserError(f"{where}: 'attention' has {maps.shape[0]} maps for a caption of {n_words} words")
    if not np.isfinite(maps).all():
        raise UserError(f"{where}: 'attention' holds a NaN or infinite weight")
    return maps


def _entry(obj, where: str, base: Path, out: Captions) -> None:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object with 'image_id' and 'caption', got {type(obj).__name__}")
    iid = obj.get("image_id", obj.get("id"))
    if obj.get("file") is not None:
        if not isinstance(obj["file"], str):
            raise UserError(f"{where}: field 'file' must be a path string")
        f = Path(obj["file"])
        out.files[str(iid) if iid is not None else f.name] = f if f.is_absolute() else base / f
        iid = f.name if iid is None else iid
    if iid is None or isinstance(iid, (dict, list, bool)):
        raise UserError(f"{where}: missing or invalid field 'image_id' ({iid!r})")
    iid = str(iid)
    if iid in out.nbest:
        raise UserError(f"{where}: image id {iid!r} appears twice")
    if "captions" in obj:
        caps = obj["captions"]
        if not isinstance(caps, list) or not caps:
            raise UserError(f"{where}: 'captions' must be a non-empty list")
        nbest = [parse_caption(c, f"{where}.captions[{k}]") for k, c in enumerate(caps)]
    else:
        nbest = [parse_caption(obj, where)]
    out.nbest[iid] = nbest
    if obj.get("attention") is not None:
        out.attention[iid] = attention_maps(obj["attention"], len(nbest[0][0].split()), where)


def read_captions(path: str | Path) -> Captions:
    """A captions file (see the module docstring) -> Captions."""
    path = Path(path)
    out = Captions({}, {}, {})
    if path.suffix.lower() != ".json":
        for r in read_results(path):
            if r.image_id in out.nbest:
                raise UserError(f"{r.where}: image id {r.image_id!r} appears twice")
            out.nbest[r.image_id] = [(r.caption, None)]
        return out
    data = read_json(path, "captions file")
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise UserError(f"{path}: a captions file is a JSON list of {{image_id, caption}} objects")
    for k, obj in enumerate(data):
        _entry(obj, f"{path}[{k}]", path.parent, out)
    if not out.nbest:
        raise UserError(f"{path}: no captions")
    return out


def read_scores(path: str | Path) -> dict:
    """An evaluate / score --json file -> {"scores", "settings", "per_image", and the rest as is}."""
    data = read_json(path, "scores file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a scores file is a JSON object")
    out = dict(data)
    if not isinstance(out.get("scores"), dict):   # score --json: metrics at the top level
        out["scores"] = {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not isinstance(out.get("settings", {}), dict):
        raise UserError(f"{path}: field 'settings' must be an object")
    bad = [k for k, v in out["scores"].items() if v is not None and not isinstance(v, (int, float))]
    if bad:
        raise UserError(f"{path}: score {bad[0]!r} is not a number")
    if out.get("per_image") is not None:
        out["per_image"] = _per_image(out["per_image"], f"{path}: per_image")
    return out


def read_per_image(path: str | Path) -> dict[str, dict[str, float]]:
    """``captionkit score --per-image`` output -> {id: {metric: score}}."""
    return _per_image(read_json(path, "per-image scores file"), str(path))


def _per_image(data, where: str) -> dict[str, dict[str, float]]:
    if not isinstance(data, dict):
        raise UserError(f"{where}: per-image scores are an object {{image id: {{metric: score}}}}")
    for iid, s in data.items():
        if not isinstance(s, dict) or not all(isinstance(v, (int, float)) for v in s.values()):
            raise UserError(f"{where}: entry {iid!r} is not {{metric: number}}")
    return {str(k): {m: float(v) for m, v in s.items()} for k, s in data.items()}


def source_kind(path: str | Path) -> str:
    """What ``captionkit report PATH`` was given: "run" (a folder), "activity" (an activity scores
    file), "describe" (video-description sentences) or "captions"."""
    path = Path(path)
    if path.is_dir():
        return "run"
    if not path.is_file():
        raise UserError(f"no such file or run folder: {path}")
    if path.suffix.lower() != ".json":
        return "captions"
    data = read_json(path, "report input")
    if isinstance(data, dict) and "confusion" in data and "classes" in data:
        return "activity"
    if isinstance(data, dict) and "annotations" not in data:
        return "describe"                         # {segment id: sentence}
    if isinstance(data, list) and data and isinstance(data[0], dict) and "sentences" in data[0]:
        return "describe"                         # describe --format json
    return "captions"
