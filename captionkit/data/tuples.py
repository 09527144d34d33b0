"""CRF tuple datasets for video description (LRCN section 6): tuple -> sentence.

A tuple dataset lists video segments; each has the CRF's predicted (max) label for every slot of the
semantic tuple <activity, tool, object, source, target>, optionally the CRF's probability vector per
slot over that slot's label set, and the segment's reference sentences.

**JSON file** (``*.json``)::

    {"format": "captionkit-tuples/1",
     "slots": ["activity", "tool", "object", "source", "target"],
     "labels": {"activity": ["<none>", "<other>", "cut", ...], "tool": [...], ...},
     "segments": [
       {"id": "s13-d21/3", "video": "s13-d21", "start": 8.57, "end": 15.37,   # video/start/end optional
        "tuple": {"activity": "take out", "tool": "<none>", "object": "cutting board",
                  "source": "drawer", "target": "<none>"},
        "probs": {"object": {"cutting board": 0.81, "plate": 0.12}, ...},   # optional
        "gold":  {...same shape as "tuple"...},                              # optional (analysis only)
        "sentences": ["He took out cutting board", "The person gets out a cutting board."]}]}

**JSONL file** (``*.jsonl``): line 1 is the header object (``format``, ``slots``, ``labels``), every
further non-empty line one segment object as above. Errors name the file and line.

Rules: every tuple label must belong to its slot's label set (``null`` means ``"<none>"``). A slot's
``probs`` is either a dense list of ``len(labels[slot])`` numbers or a sparse ``{label: p}`` map whose
missing mass (1 - sum) is spread uniformly over the unlisted labels; either must sum to 1 (+-1e-3,
dense) or to at most 1 (sparse). A slot without ``probs`` gets the one-hot of its max label, so (c)
models still run on max-only files. ``sentences`` may be empty at test time.

**TACoS multilevel** (``load_tacos_multilevel``; assumed layout, documented because the corpus cannot
be fetched here): ``ROOT/{split}.tsv``, tab separated, header row, columns ``video start end
activity tool object source target sentence`` (one row per sentence; rows with the same video/start/
end form one segment; an empty slot cell is ``<none>``), and optionally ``ROOT/{split}.probs.jsonl``
with one ``{"video", "start", "end", "probs": {slot: {label: p}}}`` object per segment.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError, read_utf8

FORMAT = "captionkit-tuples/1"
SLOTS = ("activity", "tool", "object", "source", "target")
NONE = "<none>"     # empty slot (e.g. no tool mentioned); index 0 of every label set
OTHER = "<other>"   # a label outside the training label set; index 1 of every label set


@dataclass
class Segment:
    id: str
    tuple: dict[str, str]                                    # slot -> max label
    sentences: list[str] = field(default_factory=list)
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # slot -> (K_slot,) dense, sums to 1
    video: str = ""
    start: float = 0.0
    end: float = 0.0
    gold: dict[str, str] | None = None


@dataclass
class TupleSet:
    slots: tuple[str, ...]
    labels: dict[str, list[str]]     # slot -> label list (index = position)
    segments: list[Segment]

    def label_index(self) -> dict[str, dict[str, int]]:
        return {s: {lab: i for i, lab in enumerate(self.labels[s])} for s in self.slots}

    def sizes(self) -> list[int]:
        return [len(self.labels[s]) for s in self.slots]

    def label_ids(self, seg: Segment) -> list[int]:
        """One segment's max labels -> one index per slot."""
        index = self.label_index()
        return [index[s][seg.tuple[s]] for s in self.slots]

    def prob_vector(self, seg: Segment) -> np.ndarray:
        """Concatenated per-slot probability vectors (sum_s K_s,); one-hot where a slot has none."""
        parts = []
        for s in self.slots:
            p = seg.probs.get(s)
            if p is None:
                p = np.zeros(len(self.labels[s]), dtype=np.float32)
                p[self.labels[s].index(seg.tuple[s])] = 1.0
            parts.append(np.asarray(p, dtype=np.float32))
        return np.concatenate(parts)  # (sum K,)


# ----------------------------------------------------------------------------- reading

def _err(where: str, msg: str) -> UserError:
    return UserError(f"{where}: {msg}")


def _header(obj, where: str) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    if not isinstance(obj, dict):
        raise _err(where, "expected a JSON object with 'format', 'slots' and 'labels'")
    if obj.get("format") != FORMAT:
        raise _err(where, f"field 'format' must be {FORMAT!r}, got {obj.get('format')!r}")
    slots = obj.get("slots", list(SLOTS))
    if not isinstance(slots, list) or not slots or not all(isinstance(s, str) for s in slots):
        raise _err(where, "field 'slots' must be a non-empty list of strings")
    labels = obj.get("labels")
    if not isinstance(labels, dict):
        raise _err(where, "field 'labels' must be an object {slot: [label, ...]}")
    for s in slots:
        labs = labels.get(s)
        if not isinstance(labs, list) or not labs or not all(isinstance(x, str) for x in labs):
            raise _err(where, f"field 'labels.{s}' must be a non-empty list of strings")
        if len(set(labs)) != len(labs):
            raise _err(where, f"field 'labels.{s}' has a repeated label")
        if NONE not in labs:
            raise _err(where, f"field 'labels.{s}' must contain {NONE!r}")
    return tuple(slots), {s: list(labels[s]) for s in slots}


def _slot_labels(obj, key, slots, index, where) -> dict[str, str]:
    if not isinstance(obj, dict):
        raise _err(where, f"field {key!r} must be an object {{slot: label}}")
    out = {}
    for s in slots:
        lab = obj.get(s, NONE)
        lab = NONE if lab is None else lab
        if not isinstance(lab, str):
            raise _err(where, f"field '{key}.{s}' must be a string, got {lab!r}")
        if lab not in index[s]:
            raise _err(where, f"field '{key}.{s}': label {lab!r} is not in labels.{s}")
        out[s] = lab
    return out


def _probs(obj, slots, labels, index, where) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise _err(where, "field 'probs' must be an object {slot: probabilities}")
    out = {}
    for s, p in obj.items():
        if s not in index:
            raise _err(where, f"field 'probs.{s}': unknown slot")
        K = len(labels[s])
        if isinstance(p, list):
            if len(p) != K or not all(isinstance(x, (int, float)) for x in p):
                raise _err(where, f"field 'probs.{s}' must hold {K} numbers (one per label)")
            vec = np.asarray(p, dtype=np.float64)
            if abs(vec.sum() - 1.0) > 1e-3:
                raise _err(where, f"field 'probs.{s}' sums to {vec.sum():.4f}, not 1")
        elif isinstance(p, dict):
            vec = np.zeros(K, dtype=np.float64)
            for lab, x in p.items():
                if lab not in index[s]:
                    raise _err(where, f"field 'probs.{s}': label {lab!r} is not in labels.{s}")
                if not isinstance(x, (int, float)):
                    raise _err(where, f"field 'probs.{s}.{lab}' must be a number")
                vec[index[s][lab]] = x
            total = vec.sum()
            if total > 1 + 1e-3:
                raise _err(where, f"field 'probs.{s}' sums to {total:.4f} > 1")
            rest = [i for i in range(K) if labels[s][i] not in p]
            if rest:
                vec[rest] = max(0.0, 1.0 - total) / len(rest)
            vec /= vec.sum()
        else:
            raise _err(where, f"field 'probs.{s}' must be a list or an object")
        if (vec < 0).any():
            raise _err(where, f"field 'probs.{s}' has a negative probability")
        out[s] = vec.astype(np.float32)
    return out


def _segment(obj, n: int, slots, labels, index, where) -> Segment:
    if not isinstance(obj, dict):
        raise _err(where, "a segment must be a JSON object")
    if "tuple" not in obj:
        raise _err(where, "segment has no field 'tuple'")
    sents = obj.get("sentences", [])
    if not isinstance(sents, list) or not all(isinstance(x, str) for x in sents):
        raise _err(where, "field 'sentences' must be a list of strings")
    for key in ("start", "end"):
        if not isinstance(obj.get(key, 0.0), (int, float)):
            raise _err(where, f"field {key!r} must be a number")
    gold = obj.get("gold")
    return Segment(
        id=str(obj.get("id", n)), tuple=_slot_labels(obj["tuple"], "tuple", slots, index, where),
        sentences=list(sents), probs=_probs(obj.get("probs", {}), slots, labels, index, where),
        video=str(obj.get("video", "")), start=float(obj.get("start", 0.0)), end=float(obj.get("end", 0.0)),
        gold=None if gold is None else _slot_labels(gold, "gold", slots, index, where))


def load_tuples(path: str | Path) -> TupleSet:
    """Read a tuple dataset (``.json`` or ``.jsonl``); problems raise one-line UserErrors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"tuple file not found: {path}")
    text = read_utf8(path)
    if path.suffix == ".jsonl":
        lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
        if not lines:
            raise UserError(f"{path}: empty tuple file (line 1 must be the header)")
        objs = []
        for lineno, ln in lines:
            try:
                objs.append((lineno, json.loads(ln)))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        slots, labels = _header(objs[0][1], f"{path}:{objs[0][0]}")
        index = {s: {lab: i for i, lab in enumerate(labels[s])} for s in slots}
        segs = [_segment(o, n, slots, labels, index, f"{path}:{lineno}")
                for n, (lineno, o) in enumerate(objs[1:])]
        return TupleSet(slots, labels, segs)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    slots, labels = _header(data, str(path))
    index = {s: {lab: i for i, lab in enumerate(labels[s])} for s in slots}
    raw = data.get("segments")
    if not isinstance(raw, list):
        raise UserError(f"{path}: field 'segments' must be a list")
    segs = [_segment(o, n, slots, labels, index, f"{path}: segments[{n}]") for n, o in enumerate(raw)]
    return TupleSet(slots, labels, segs)


# ----------------------------------------------------------------------------- writing

def _sparse(vec: np.ndarray, labels: list[str], floor: float = 1e-3) -> dict[str, float]:
    keep = np.nonzero(vec >= floor)[0]
    return {labels[i]: round(float(vec[i]), 4) for i in keep}


def segment_to_dict(seg: Segment, labels: dict[str, list[str]]) -> dict:
    out = {"id": seg.id, "video": seg.video, "start": seg.start, "end": seg.end, "tuple": dict(seg.tuple)}
    if seg.probs:
        out["probs"] = {s: _sparse(p, labels[s]) for s, p in seg.probs.items()}
    if seg.gold is not None:
        out["gold"] = dict(seg.gold)
    out["sentences"] = list(seg.sentences)
    return out


def save_tuples(ts: TupleSet, path: str | Path) -> None:
    """Write ``ts`` as JSON or JSONL (by suffix); probabilities are stored sparsely (p >= 1e-3)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "slots": list(ts.slots), "labels": ts.labels}
    segs = [segment_to_dict(s, ts.labels) for s in ts.segments]
    with open(path, "w", encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            f.write(json.dumps(header) + "\n")
            for s in segs:
                f.write(json.dumps(s) + "\n")
        else:
            json.dump(header | {"segments": segs}, f)


# ----------------------------------------------------------------------------- TACoS multilevel

TSV_COLUMNS = ("video", "start", "end", *SLOTS, "sentence")


def load_tacos_multilevel(root: str | Path, split: str) -> TupleSet:
    """``ROOT/{split}.tsv`` (+ optional ``ROOT/{split}.probs.jsonl``) -> TupleSet (layout: module doc)."""
    path = Path(root) / f"{split}.tsv"
    if not path.is_file():
        raise UserError(f"TACoS multilevel file not found: {path}")
    groups: dict[tuple, Segment] = {}
    with io.StringIO(read_utf8(path, newline=""), newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        head = next(reader, None)
        if head is None or tuple(h.strip() for h in head) != TSV_COLUMNS:
            raise UserError(f"{path}:1: header must be the columns {' '.join(TSV_COLUMNS)}")
        for lineno, row in enumerate(reader, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(TSV_COLUMNS):
                raise UserError(f"{path}:{lineno}: expected {len(TSV_COLUMNS)} columns, got {len(row)}")
            video, start, end, *labs, sentence = (c.strip() for c in row)
            try:
                key = (video, float(start), float(end))
            except ValueError:
                raise UserError(f"{path}:{lineno}: field 'start'/'end' must be numbers") from None
            tup = {s: (lab or NONE) for s, lab in zip(SLOTS, labs)}
            seg = groups.setdefault(key, Segment(id=f"{video}/{start}-{end}", tuple=tup, video=video,
                                                 start=key[1], end=key[2]))
            if seg.tuple != tup:
                raise UserError(f"{path}:{lineno}: segment {seg.id} has two different tuples")
            seg.sentences.append(sentence)
    segments = list(groups.values())
    labels = {s: [NONE, OTHER] + sorted({g.tuple[s] for g in segments} - {NONE, OTHER}) for s in SLOTS}
    probs_path = Path(root) / f"{split}.probs.jsonl"
    if probs_path.is_file():
        _attach_probs(probs_path, groups, labels)
    return TupleSet(SLOTS, labels, segments)


def _attach_probs(path: Path, groups: dict, labels: dict[str, list[str]]) -> None:
    index = {s: {lab: i for i, lab in enumerate(labels[s])} for s in SLOTS}
    for lineno, ln in enumerate(read_utf8(path).splitlines(), start=1):
        if not ln.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(ln)
            key = (str(obj["video"]), float(obj["start"]), float(obj["end"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserError(f"{where}: expected {{video, start, end, probs}}") from None
        if key not in groups:
            raise UserError(f"{where}: no segment {key[0]} {key[1]}-{key[2]} in the .tsv")
        groups[key].probs = _probs(obj.get("probs", {}), SLOTS, labels, index, where)
