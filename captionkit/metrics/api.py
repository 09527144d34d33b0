"""``score_captions`` and ``fast_scores``: one entry point for coco-caption metrics, and its report.

Official path (``official=True``): PTB tokenization by pycocoevalcap's Java tokenizer (the pure-Python
one, proven equal on COCO, when Java is missing), then pycocoevalcap's Bleu/Rouge/Cider in-process,
METEOR supervised with a deadline (or captionkit's Python METEOR, equal to the jar: by choice, and
whenever Java is missing), SPICE when it can run. Fast path (``official=False`` and ``fast_scores``):
the pure-Python tokenizer, numpy BLEU/CIDEr-D, bit-parallel ROUGE-L and Python METEOR, equal to the
official ones to float rounding; no Java. Either way every score comes with the settings that
produced it, including which METEOR ran.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from . import fast
from . import official as _official
from ..errors import UserError
from .inputs import Alignment, Result, align
from .tokenize import MAX_CHARS, find_java, java_version, ptb_tokenize

METRICS = ("bleu", "meteor", "rouge", "cider", "spice")
METEOR_NAMES = {"java": "meteor-1.5.jar (Java, -l en -norm)",
                "python": "captionkit METEOR 1.5 (Python, equal to the jar -l en -norm)"}
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
                     f"tokenizer: {s.get('tokenizer')}  path: {s.get('path')}"
                     + (f"  meteor: {s['meteor']}" if "meteor" in s.get("metrics", []) else ""))
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


# A scorer: tokenized gts {id: [ref]}, res {id: [hyp]} -> (keys, overall per key, per-image list per key).
# One that cannot run raises official.MetricError with the reason, and the metric is reported skipped.
Scorer = Callable[[dict, dict], tuple[list[str], list[float], list]]


def _fast_bleu_cider() -> tuple[Scorer, Scorer]:
    """BLEU and CIDEr-D scorers of the exact fast path that share one n-gram pass (``fast.bleu_cider``)."""
    done: dict = {}

    def counts(gts, res):
        if "scores" not in done:
            done["scores"], done["per"], _ = fast.bleu_cider(gts, {k: v[0] for k, v in res.items()})
        return done["scores"], done["per"]

    def pick(keys: list[str]) -> Scorer:
        def scorer(gts, res):
            scores, per = counts(gts, res)
            return keys, [scores[k] for k in keys], [per[k] for k in keys]
        return scorer
    return pick(KEYS["bleu"]), pick(KEYS["cider"])


def _one(key: str, fn: Callable) -> Scorer:
    """A pycocoevalcap-style fn(gts, res) -> (overall, per) as a scorer of one key (or of BLEU's four)."""
    def scorer(gts, res):
        overall, per = fn(gts, res)
        return (KEYS["bleu"], overall, per) if key == "bleu" else ([key], [overall], [per])
    return scorer


def _python_meteor(gts, res):
    from .meteor import meteor_score
    return meteor_score(gts, res, progress=len(gts) > 2000)


def meteor_backend(choice: str | None, official: bool, java: str | None) -> str:
    """"java" (the jar) or "python" (captionkit.metrics.meteor, equal to it): the choice if given,
    else the jar when it can run on the official path, else Python."""
    if choice not in (None, "java", "python"):
        raise UserError(f"--meteor must be 'python' or 'java', got {choice!r}")
    return choice or ("java" if official and java else "python")


def scorers(official: bool, java: str | None, meteor_timeout: float | None,
            meteor: str = "java") -> dict[str, Scorer]:
    """The table of scorers for one call: the official ones, or the exact fast BLEU/ROUGE-L/CIDEr-D;
    METEOR from the jar or from Python (``meteor``, see ``meteor_backend``)."""
    def needs_java(fn: Callable) -> Callable:
        def run(gts, res):
            if java is None:
                raise _official.MetricError("Java not found on PATH (install a Java runtime to compute it)")
            return fn(gts, res, java)
        return run
    fast_bleu, fast_cider = _fast_bleu_cider()
    return {"bleu": _one("bleu", _official.bleu) if official else fast_bleu,
            "meteor": _one("METEOR", _python_meteor if meteor == "python" else
                           needs_java(lambda g, r, j: _official.meteor(g, r, j, meteor_timeout))),
            "rouge": _one("ROUGE_L", _official.rouge if official else fast.rouge_l_scorer),
            "cider": _one("CIDEr", _official.cider) if official else fast_cider,
            "spice": _one("SPICE", needs_java(_official.spice))}


def score_captions(refs: dict[str, list[str]], res: dict[str, str],
                   metrics=("bleu", "meteor", "rouge", "cider"), official: bool = True,
                   per_image: bool = False, *, max_chars: int = MAX_CHARS, truncate_long: bool = False,
                   meteor_timeout: float | None = None, aligned: Alignment | None = None,
                   meteor: str | None = None) -> ScoreReport:
    """coco-caption metrics of res {id: caption} against refs {id: [caption]} -> ScoreReport.

    ``aligned``: the result of ``inputs.align`` when the caller (``captionkit score``) already applied
    its id policies; refs and res are then taken from it and not checked again.
    ``meteor``: "java" or "python" (see ``meteor_backend``; None: the jar if it can run, else Python)."""
    bad = [m for m in metrics if m.lower() not in METRICS]
    if bad:
        raise UserError(f"unknown metric(s) {bad}; choose from {', '.join(METRICS)}")
    a = aligned or _check(refs, res)
    java = find_java()
    backend = "java" if (official and java) else "python"
    settings = _settings(a, metrics, official, java, backend, max_chars, truncate_long)
    meteor = meteor_backend(meteor, official, java)
    settings["meteor"] = METEOR_NAMES[meteor]
    gts = ptb_tokenize(a.refs, backend, max_chars, truncate_long, java)
    hyp = ptb_tokenize({k: [v] for k, v in a.res.items()}, backend, max_chars, truncate_long, java)
    scores, per, skipped = {}, {}, settings["skipped"]
    table = scorers(official, java, meteor_timeout, meteor)
    for m in (m for m in METRICS if m in [x.lower() for x in metrics]):  # fixed order, same report
        try:
            keys, overall, per_lists = table[m](gts, hyp)
        except _official.MetricError as e:
            skipped[m] = str(e)
            continue
        for k, o, p in zip(keys, overall, per_lists):
            scores[k], per[k] = float(o), [float(x) for x in p]
    by_image = {i: {k: per[k][j] for k in per} for j, i in enumerate(gts)} if per_image else None
    return ScoreReport(scores, by_image, settings)


def _settings(a: Alignment, metrics, official: bool, java, backend: str, max_chars: int,
              truncate_long: bool) -> dict:
    """Everything that produced the scores, printed and saved beside them."""
    notes = list(a.notes)
    if official and not java:
        notes.append("java not found: PTB tokenization by captionkit's Python re-implementation "
                     "(equal to the Java tokenizer on COCO val2017)")
    tokenizer = ("Stanford PTBTokenizer (CoreNLP 3.4.1 jar, -preserveLines -lowerCase)" if backend == "java"
                 else "captionkit PTB (Python re-implementation)")
    return {"path": "official" if official else "fast", "images": len(a.res),
            "references": sum(len(v) for v in a.refs.values()), "metrics": [m.lower() for m in metrics],
            "notes": notes, "max_chars": max_chars, "truncate_long": truncate_long,
            "tokenizer": tokenizer + ", punctuation removed as in pycocoevalcap", "skipped": {},
            "versions": {"captionkit": _version("captionkit"), "pycocoevalcap": _version("pycocoevalcap"),
                         "numpy": np.__version__, "java": java_version(java) if java else "not found"},
            "cider": "CIDEr-D (sigma 6, clipped, x10), document frequencies over the whole scored set"}


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
