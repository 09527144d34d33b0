"""METEOR 1.5 scores from alignments (Lavie & Agarwal 2007, Sec. 2; Denkowski & Lavie 2014, Sec. 2.2).

Parameters of the English "rank" task (``-l en``): alpha 0.85, beta 0.20, gamma 0.60, delta 0.75; module
weights exact 1.0, stem 0.6, synonym 0.8, paraphrase 0.6. With content/function word weighting delta,

    P = sum_i w_i (delta m_i,c(h) + (1 - delta) m_i,f(h)) / (delta |h_c| + (1 - delta) |h_f|)   (R: same on r)
    Fmean = P R / (alpha P + (1 - alpha) R),   Pen = gamma (chunks / matches)^beta,
    score = Fmean (1 - Pen)   (Pen = 0 for a perfect one-chunk match).

Each image is scored against every reference and keeps the best one (the first on ties). The corpus
score is *not* the mean of the image scores: like the jar's ``EVAL`` line it sums the sufficient
statistics of every image (chunks of perfect one-chunk matches excluded) and scores the sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .aligner import align, count_chunks
from .matchers import Matchers, java_hash
from .normalise import java_tokens, normalize
from .resources import function_words, paraphrases_for

ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
WEIGHTS = (1.0, 0.6, 0.8, 0.6)
_JAVA_TRIM = "".join(chr(c) for c in range(33))


@dataclass
class Stats:
    """METEOR's sufficient statistics of one segment (or a sum of segments)."""
    test_len: float = 0.0
    ref_len: float = 0.0
    test_func: float = 0.0
    ref_func: float = 0.0
    content1: list = field(default_factory=lambda: [0.0] * 4)   # per module, hypothesis side
    content2: list = field(default_factory=lambda: [0.0] * 4)   # per module, reference side
    func1: list = field(default_factory=lambda: [0.0] * 4)
    func2: list = field(default_factory=lambda: [0.0] * 4)
    chunks: float = 0.0

    @property
    def matches1(self) -> float:
        return sum(self.content1) + sum(self.func1)

    @property
    def matches2(self) -> float:
        return sum(self.content2) + sum(self.func2)

    def perfect(self) -> bool:
        return self.matches1 == self.test_len and self.matches2 == self.ref_len and self.chunks == 1

    def add(self, o: "Stats") -> None:
        """Aggregate like the jar's addStats (chunks of a perfect match are not added)."""
        self.test_len += o.test_len
        self.ref_len += o.ref_len
        self.test_func += o.test_func
        self.ref_func += o.ref_func
        for mine, theirs in ((self.content1, o.content1), (self.content2, o.content2),
                             (self.func1, o.func1), (self.func2, o.func2)):
            for k in range(4):
                mine[k] += theirs[k]
        if not o.perfect():
            self.chunks += o.chunks


def score(s: Stats) -> float:
    """The METEOR score of a Stats, with the jar's floating-point order and IEEE division."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.float64
        twl = DELTA * (s.test_len - s.test_func) + (1.0 - DELTA) * s.test_func
        rwl = DELTA * (s.ref_len - s.ref_func) + (1.0 - DELTA) * s.ref_func
        twm = rwm = 0.0
        for i in range(4):
            twm += s.content1[i] * WEIGHTS[i] * DELTA
        for i in range(4):
            rwm += s.content2[i] * WEIGHTS[i] * DELTA
        for i in range(4):
            twm += s.func1[i] * WEIGHTS[i] * (1.0 - DELTA)
        for i in range(4):
            rwm += s.func2[i] * WEIGHTS[i] * (1.0 - DELTA)
        p, r = f(twm) / f(twl), f(rwm) / f(rwl)
        fmean = f(1.0) / (((1.0 - ALPHA) / p) + (ALPHA / r))
        if s.perfect():
            frag = f(0.0)
        else:
            frag = f(s.chunks) / ((f(s.matches1) + f(s.matches2)) / 2)
        pen = GAMMA * float(frag) ** BETA
        val = float(fmean * (1.0 - pen))
    return 0.0 if math.isnan(val) else max(val, 0.0)


class Meteor:
    """METEOR 1.5 (``-l en -norm``) for a fixed set of sentences; resources loaded once."""

    def __init__(self, sentences: list[tuple], paraphrases: dict | None = None):
        """``sentences``: every normalised token tuple that will be scored (selects paraphrases);
        ``paraphrases``: {phrase: [paraphrase, ...]} to use instead of the jar's table (tests)."""
        if paraphrases is None:
            paraphrases = paraphrases_for([list(t) for t in sentences])
        self.matchers = Matchers(paraphrases)
        self.function = function_words()

    def stats(self, hyp: tuple, ref: tuple) -> Stats:
        """Sufficient statistics of one hypothesis against one reference (token tuples)."""
        m = self.matchers
        same = len(hyp) == len(ref) and [java_hash(w) for w in hyp] == [java_hash(w) for w in ref]
        chosen = align(m.stage(hyp, ref, exact_only=same))
        fw = self.function
        f1 = [w.lower() in fw for w in hyp]
        f2 = [w.lower() in fw for w in ref]
        s = Stats(float(len(hyp)), float(len(ref)), float(sum(f1)), float(sum(f2)))
        for st, ln, ms, ml, mod, _, _ in chosen:
            for k in range(ml):
                if f1[ms + k]:
                    s.func1[mod] += 1
                else:
                    s.content1[mod] += 1
            for k in range(ln):
                if f2[st + k]:
                    s.func2[mod] += 1
                else:
                    s.content2[mod] += 1
        s.chunks = float(count_chunks(chosen))
        return s

    def best(self, hyp: tuple, refs: list[tuple]) -> tuple[Stats, float]:
        """The best reference's stats and score (the first one on ties)."""
        best, best_score = None, -1.0
        for ref in refs:
            s = self.stats(hyp, ref)
            v = score(s)
            if v > best_score:
                best, best_score = s, v
        return best, best_score


def _line(text: str) -> tuple:
    return tuple(java_tokens(normalize(text.strip(_JAVA_TRIM))))


def meteor_score(gts: dict, res: dict, progress: bool = False, paraphrases: dict | None = None):
    """-> (corpus METEOR, [per image]) for tokenized ``gts {id: [ref]}``, ``res {id: [hyp]}``.

    The same inputs, cleaning and outputs as pycocoevalcap's Meteor (and ``official.meteor``).
    """
    ids = list(gts)
    hyps, refs = [], []
    for i in ids:
        if len(res[i]) != 1:
            raise ValueError(f"METEOR needs one hypothesis per image; image {i!r} has {len(res[i])}")
        hyps.append(_line(res[i][0].replace("|||", "").replace("  ", " ")))
        refs.append([_line(r.replace("|||", "")) for r in gts[i]])
    scorer = Meteor(hyps + [r for rs in refs for r in rs], paraphrases)
    total = Stats()
    per = []
    it = zip(hyps, refs)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(ids), desc="METEOR (python)", leave=False)
    for h, rs in it:
        s, v = scorer.best(h, rs)
        per.append(v)
        total.add(s)
    return score(total), per
