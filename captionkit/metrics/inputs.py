"""Reading captions to score and their references, and matching them by image id, loudly.

Results: a COCO results JSON (``[{"image_id": ..., "caption": ...}]``), JSONL (one such object a
line; ``id`` is accepted for ``image_id``), or TSV (``id<TAB>caption``, no header).
References: a COCO caption annotation JSON, a Karpathy ``dataset_*.json`` with a split, or a
Flickr8k token file with a split list, read by ``captionkit.data.captions``.

Ids are strings. Unknown ids (not in the references), duplicated ids, and references with no result
are ``UserError``s naming the file, the id and the count, unless a policy says otherwise; the policy
actually applied is returned so that it is printed beside the scores.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.captions import load_coco, load_flickr8k, load_karpathy, read_json
from ..errors import UserError

DUPLICATE_POLICIES = ("error", "first", "last")
UNKNOWN_POLICIES = ("error", "ignore")
MISSING_POLICIES = ("error", "ignore")


@dataclass
class Result:
    image_id: str
    caption: str
    where: str                     # "file:line" or "file[index]", for messages


def _result(path, where, obj) -> Result:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object with 'image_id' and 'caption', got {type(obj).__name__}")
    iid = obj.get("image_id", obj.get("id"))
    if iid is None or isinstance(iid, (dict, list, bool)):
        raise UserError(f"{where}: missing or invalid field 'image_id' ({iid!r})")
    cap = obj.get("caption")
    if not isinstance(cap, str):
        raise UserError(f"{where}: field 'caption' must be a string, got {cap!r:.60}")
    return Result(str(iid), cap, where)


def read_results(path: str | Path) -> list[Result]:
    """A results file (COCO JSON, JSONL or TSV, by extension) -> its entries in file order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"results file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = read_json(path, "results file")
        if isinstance(data, dict) and "annotations" in data:
            data = data["annotations"]
        if not isinstance(data, list):
            raise UserError(f"{path}: a COCO results file is a JSON list of {{image_id, caption}}")
        return [_result(path, f"{path}[{k}]", o) for k, o in enumerate(data)]
    if suffix not in (".jsonl", ".tsv", ".txt"):
        raise UserError(f"{path}: unknown results format {suffix!r} (use .json, .jsonl or .tsv)")
    out = []
    try:
        # newline="\n": only \n ends a record; a stray \r or U+2028 stays inside its caption
        with open(path, encoding="utf-8", newline="\n") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                if suffix == ".jsonl":
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UserError(f"{where}: not valid JSON ({e.msg})") from None
                    out.append(_result(path, where, obj))
                else:
                    if "\t" not in line:
                        raise UserError(f"{where}: expected '<id><TAB><caption>', got {line[:60]!r}")
                    iid, cap = line.split("\t", 1)
                    out.append(Result(iid.strip(), cap, where))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return out


def read_references(path: str | Path, split: str | None = None,
                    split_list: str | Path | None = None) -> dict[str, list[str]]:
    """COCO annotations / Karpathy json + split / Flickr8k token file + split list -> {id: [captions]}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"references file not found: {path}")
    if path.suffix.lower() != ".json":
        if split_list is None:
            raise UserError(f"{path}: a Flickr8k token file needs --split-list (e.g. Flickr_8k.testImages.txt)")
        items = load_flickr8k(path, split_list)
    else:
        data = read_json(path, "references file")
        if isinstance(data, dict) and "annotations" in data:
            if split is not None:
                raise UserError(f"{path}: --split is for Karpathy dataset files; a COCO file is one split")
            items = load_coco(path)
        elif isinstance(data, dict) and isinstance(data.get("images"), list):
            if split is None:
                raise UserError(f"{path}: a Karpathy dataset file needs --split (train, val or test)")
            items = load_karpathy(path, split)
        else:
            raise UserError(f"{path}: neither COCO caption annotations ('annotations') nor a "
                            "Karpathy dataset file ('images' with 'sentences')")
    refs = {it.image_id: list(it.captions) for it in items}
    if not refs:
        raise UserError(f"{path}: no reference captions" + (f" in split {split!r}" if split else ""))
    return refs


@dataclass
class Alignment:
    refs: dict[str, list[str]]
    res: dict[str, str]
    notes: list[str] = field(default_factory=list)   # what a policy dropped or chose


def _examples(ids) -> str:
    ids = list(ids)
    return ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def align(refs: dict[str, list[str]], results: list[Result], source: str = "results",
          on_duplicate: str = "error", on_unknown: str = "error", on_missing: str = "error") -> Alignment:
    """Match results to references by id under explicit policies; every deviation raises or is noted."""
    for name, val, ok in (("on_duplicate", on_duplicate, DUPLICATE_POLICIES),
                          ("on_unknown", on_unknown, UNKNOWN_POLICIES),
                          ("on_missing", on_missing, MISSING_POLICIES)):
        if val not in ok:
            raise UserError(f"{name} must be one of {ok}, got {val!r}")
    notes = []
    res: dict[str, str] = {}
    dups: dict[str, list[str]] = {}
    for r in results:
        if r.image_id in res:
            dups.setdefault(r.image_id, []).append(r.where)
            if on_duplicate == "last":
                res[r.image_id] = r.caption
        else:
            res[r.image_id] = r.caption
    if dups:
        if on_duplicate == "error":
            first = next(iter(dups))
            raise UserError(f"{source}: {len(dups)} image id(s) have more than one caption, e.g. "
                            f"{first!r} again at {dups[first][0]} (use --on-duplicate first|last)")
        notes.append(f"{len(dups)} duplicated id(s): kept the {on_duplicate} caption")
    unknown = [i for i in res if i not in refs]
    if unknown:
        if on_unknown == "error":
            raise UserError(f"{source}: {len(unknown)} image id(s) are not in the references: "
                            f"{_examples(unknown)} (use --on-unknown ignore to drop them)")
        for i in unknown:
            del res[i]
        notes.append(f"{len(unknown)} result(s) with ids not in the references: ignored")
    missing = [i for i in refs if i not in res]
    if missing:
        if on_missing == "error":
            raise UserError(f"{source}: {len(missing)} of {len(refs)} reference images have no result: "
                            f"{_examples(missing)} (use --on-missing ignore to score only the images "
                            "with results; CIDEr-D's document frequencies then come from those only)")
        notes.append(f"{len(missing)} reference image(s) without a result: not scored")
    if not res:
        raise UserError(f"{source}: no result matches a reference image id")
    kept = {i: refs[i] for i in refs if i in res}
    return Alignment(kept, {i: res[i] for i in kept}, notes)
