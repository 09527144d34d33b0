"""``score_captions`` and ``fast_scores``: one entry point for coco-caption metrics, and its report.

Official path (``official=True``): PTB tokenization by pycocoevalcap's Java tokenizer (the pure-Python
one, proven equal on COCO, when Java is missing), then pycocoevalcap's Bleu/Rouge/Cider in-process,
METEOR supervised with a deadline, SPICE when it can run. Fast path (``official=False`` and
``fast_scores``): the pure-Python tokenizer and numpy BLEU/CIDEr-D, equal to the official ones to
float rounding; no Java. Either way every score comes with the settings that produced it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from . import fast
from . import official as _official
from .inputs import Result, align
from .tokenize import MAX_CHARS, find_java, java_version, ptb_tokenize

METRICS = ("bleu", "meteor", "rouge", "cider", "spice")
KEYS = {"bleu": ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], "meteor": ["METEOR"], "rouge": ["ROUGE_L"],
        "cider": ["CIDEr"], "spice": ["SPICE"]}


@dataclass
class ScoreReport:
    scores: dict[str, float]                                  # Bleu_1..4, METEOR, ROUGE_L, CIDEr, SPICE
    per_image: dict[str, dict[str, float]] | None = None      # {image id: {metric: score}}
    settings: dict = field(default_factory=dict)              # tokenizer, versions, skipped metrics

    def table(self) -> str:
        """Scores as an aligned two-column table, then the settings and anything skipped."""
        lines = [f"{'metric':<10} {'score':>8}"]
        lines += [f"{k:<10} {v:>8.4f}" for k, v in self.scores.items()]
        s = self.settings
        lines.append(f"images: {s.get('images')}  references: {s.get('references')}  "
                     f"tokenizer: {s.get('tokenizer')}  path: {s.get('path')}")
        for name, why in s.get("skipped", {}).items():
            lines.append(f"skipped {name}: {why}")
        for note in s.get("notes", []):
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """Scores and settings as one JSON-ready dict (per-image scores under "per_image" if computed)."""
        out: dict = dict(self.scores)
        out["settings"] = self.settings
        if self.per_image is not None:
            out["per_image"] = self.per_image
        return out


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _check(refs: dict[str, list[str]], res: dict[str, str]):
    """The public API's id check: the same rules as the CLI's default policies."""
    if not isinstance(refs, dict) or not isinstance(res, dict):
        raise TypeError("refs and res must be dicts keyed by image id")
    results = [Result(str(k), v, f"res[{k!r}]") for k, v in res.items()]
    refs = {str(k): v for k, v in refs.items()}
    for k, v in refs.items():
        if isinstance(v, str) or not v:
            raise ValueError(f"refs[{k!r}] must be a non-empty list of captions")
    return align(refs, results, source="res")


def fast_scores(refs: dict[str, list[str]], res: dict[str, str]) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D of res {id: caption} against refs {id: [caption]}; Python only, no Java.

    Pass the whole split at once: CIDEr-D's document frequencies come from the scored set.
    """
    a = _check(refs, res)
    gts = ptb_tokenize(a.refs, backend="python")
    hyp = ptb_tokenize({k: [v] for k, v in a.res.items()}, backend="python")
    scores, _, _ = fast.bleu_cider(gts, {k: v[0] for k, v in hyp.items()})
    return scores


def score_captions(refs: dict[str, list[str]], res: dict[str, str],
                   metrics=("bleu", "meteor", "rouge", "cider"), official: bool = True,
                   per_image: bool = False, *, max_chars: int = MAX_CHARS, truncate_long: bool = False,
                   meteor_timeout: float | None = None, notes: list[str] | None = None) -> ScoreReport:
    """coco-caption metrics of res {id: caption} against refs {id: [caption]} -> ScoreReport."""
    metrics = [m.lower() for m in metrics]
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        from ..errors import UserError
        raise UserError(f"unknown metric(s) {bad}; choose from {', '.join(METRICS)}")
    a = _check(refs, res)
    java = find_java()
    skipped: dict[str, str] = {}
    settings: dict = {"path": "official" if official else "fast", "images": len(a.res),
                      "references": sum(len(v) for v in a.refs.values()), "metrics": list(metrics),
                      "notes": list(notes or []) + a.notes, "max_chars": max_chars,
                      "truncate_long": truncate_long}
    backend = "java" if (official and java) else "python"
    if official and not java:
        settings["notes"].append("java not found: PTB tokenization by captionkit's Python "
                                 "re-implementation (equal to the Java tokenizer on COCO val2017)")
    gts = ptb_tokenize(a.refs, backend, max_chars, truncate_long, java)
    hyp = ptb_tokenize({k: [v] for k, v in a.res.items()}, backend, max_chars, truncate_long, java)
    settings["tokenizer"] = ("Stanford PTBTokenizer (CoreNLP 3.4.1 jar, -preserveLines -lowerCase)"
                             if backend == "java" else "captionkit PTB (Python re-implementation)")
    settings["tokenizer"] += ", punctuation removed as in pycocoevalcap"
    ids = list(gts)
    scores: dict[str, float] = {}
    per: dict[str, list[float]] = {}

    def put(keys, overall, per_lists):
        for k, o, p in zip(keys, overall, per_lists):
            scores[k] = float(o)
            per[k] = [float(x) for x in p]

    if not official and ("bleu" in metrics or "cider" in metrics):
        s, p, _ = fast.bleu_cider(gts, {k: v[0] for k, v in hyp.items()})
    for m in METRICS:                       # fixed order: the report reads the same every time
        if m not in metrics:
            continue
        if m == "bleu":
            put(KEYS[m], *((_official_bleu(gts, hyp)) if official else
                           ([s[k] for k in KEYS[m]], [p[k] for k in KEYS[m]])))
        elif m == "cider":
            if official:
                c, cs = _official_call("cider", gts, hyp)
                put(["CIDEr"], [c], [cs])
            else:
                put(["CIDEr"], [s["CIDEr"]], [p["CIDEr"]])
        elif m == "rouge":
            r, rs = _official_call("rouge", gts, hyp)
            put(["ROUGE_L"], [r], [rs])
        elif m in ("meteor", "spice"):
            if java is None:
                skipped[m] = "Java not found on PATH (install a Java runtime to compute it)"
                continue
            if m == "spice" and official_spice_missing(java):
                skipped[m] = official_spice_missing(java)
                continue
            try:
                if m == "meteor":
                    v, vs = _official.meteor(gts, hyp, java, meteor_timeout)
                else:
                    v, vs = _official.spice(gts, hyp, java)
                put(KEYS[m], [v], [vs])
            except _official.MetricError as e:
                skipped[m] = str(e)
    settings["skipped"] = skipped
    settings["versions"] = {"captionkit": _version("captionkit"), "pycocoevalcap": _version("pycocoevalcap"),
                            "numpy": np.__version__, "java": java_version(java) if java else "not found"}
    settings["cider"] = "CIDEr-D (sigma 6, clipped, x10), document frequencies over the whole scored set"
    table = None
    if per_image:
        table = {i: {k: per[k][j] for k in per} for j, i in enumerate(ids)}
    return ScoreReport(scores, table, settings)


def official_spice_missing(java):
    return _official.spice_missing(java)


def _official_bleu(gts, hyp):
    b, bs = _official.bleu(gts, hyp)
    return b, bs


def _official_call(name, gts, hyp):
    return getattr(_official, name)(gts, hyp)


def dumps(report: ScoreReport) -> str:
    """The report as one line of JSON (NaN written as null)."""
    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(report.to_json()))
