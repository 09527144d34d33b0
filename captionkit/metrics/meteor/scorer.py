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
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .aligner import align, count_chunks
from .matchers import Matchers
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
    try:
        return _score(s, float)
    except ZeroDivisionError:            # Java divides by zero into inf / NaN: redo it that way
        with np.errstate(divide="ignore", invalid="ignore"):
            return _score(s, np.float64)


def _score(s: Stats, f) -> float:
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
    val = float(fmean * (1.0 - GAMMA * float(frag) ** BETA))
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

    def _stage(self, hyp: tuple, ref: tuple):
        m = self.matchers
        same = m.sentence(hyp).hashes == m.sentence(ref).hashes   # identical: exact module only
        return m.stage(hyp, ref, exact_only=same)

    def stats(self, hyp: tuple, ref: tuple, stage=None) -> Stats:
        """Sufficient statistics of one hypothesis against one reference (token tuples)."""
        m = self.matchers
        chosen = align(stage or self._stage(hyp, ref))
        f1, f2 = self._function_flags(m.sentence(hyp)), self._function_flags(m.sentence(ref))
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

    def upper_bound(self, hyp: tuple, ref: tuple, stage) -> float:
        """A score no alignment of this pair can exceed: every word that has a candidate counted as
        an exact match, and the fragmentation penalty of a single chunk (none if all words have one)."""
        m = self.matchers
        f1, f2 = self._function_flags(m.sentence(hyp)), self._function_flags(m.sentence(ref))
        c1 = [i for i, c in enumerate(stage.cov1) if c]
        c2 = [j for j, c in enumerate(stage.cov2) if c]
        if not c1 or not c2:
            return 0.0
        try:
            p = sum((1.0 - DELTA) if f1[i] else DELTA for i in c1) / \
                (DELTA * (len(hyp) - sum(f1)) + (1.0 - DELTA) * sum(f1))
            r = sum((1.0 - DELTA) if f2[j] else DELTA for j in c2) / \
                (DELTA * (len(ref) - sum(f2)) + (1.0 - DELTA) * sum(f2))
            fmean = 1.0 / (((1.0 - ALPHA) / p) + (ALPHA / r))
        except ZeroDivisionError:
            return math.inf
        everything = len(c1) == len(hyp) and len(c2) == len(ref)
        pen = 0.0 if everything else GAMMA * (2.0 / (len(c1) + len(c2))) ** BETA
        return fmean * (1.0 - pen) * (1 + 1e-9) + 1e-12      # (a margin for rounding)

    def _function_flags(self, sent) -> list[bool]:
        flags = getattr(sent, "function", None)
        if flags is None:
            fw = self.function
            flags = sent.function = [w.lower() in fw for w in sent.words]
        return flags

    def best(self, hyp: tuple, refs: list[tuple]) -> tuple[Stats, float]:
        """The best reference's stats and score (the first one on ties), as the jar picks it.

        References are aligned in decreasing order of ``upper_bound``; once the bound falls below
        the best score the rest cannot win and are not aligned (the result is unchanged)."""
        stages = [self._stage(hyp, ref) for ref in refs]
        bounds = [self.upper_bound(hyp, ref, st) for ref, st in zip(refs, stages)]
        best, best_score, best_at = None, -1.0, len(refs)
        for k in sorted(range(len(refs)), key=lambda k: (-bounds[k], k)):
            if bounds[k] < best_score:
                break
            s = self.stats(hyp, refs[k], stages[k])
            v = score(s)
            if v > best_score or (v == best_score and k < best_at):
                best, best_score, best_at = s, v, k
        return best, best_score


def _line(text: str) -> tuple:
    return tuple(java_tokens(normalize(text.strip(_JAVA_TRIM))))


_SHARED: "Meteor | None" = None          # the scorer forked workers inherit (set just before forking)


def _best_of_chunk(pairs):
    return [_SHARED.best(h, rs) for h, rs in pairs]


def _workers(n_images: int, workers: int) -> int:
    if workers == 0:                   # one per CPU this process may use, at most 8
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(cpus or 1, 8)
    return workers if n_images >= 200 and "fork" in mp.get_all_start_methods() else 1


def _best_all(scorer: Meteor, pairs: list, workers: int, bar):
    """(stats, score) of every image; forked workers share the loaded resources (copy on write)."""
    if workers <= 1:
        for h, rs in pairs:
            yield scorer.best(h, rs)
            bar.update()
        return
    global _SHARED
    _SHARED = scorer
    size = max(50, len(pairs) // (workers * 8))
    chunks = [pairs[k:k + size] for k in range(0, len(pairs), size)]
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
            for out in ex.map(_best_of_chunk, chunks):
                yield from out
                bar.update(len(out))
    finally:
        _SHARED = None


def meteor_score(gts: dict, res: dict, progress: bool = False, paraphrases: dict | None = None,
                 workers: int = 1):
    """-> (corpus METEOR, [per image]) for tokenized ``gts {id: [ref]}``, ``res {id: [hyp]}``.

    The same inputs, cleaning and outputs as pycocoevalcap's Meteor (and ``official.meteor``).
    ``workers``: processes aligning images in parallel (forked, sharing the loaded resources; 0: one
    per CPU, at most 8). The result does not depend on it; on a busy machine more workers only add
    overhead, hence the default 1.
    """
    from tqdm import tqdm
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
    with tqdm(total=len(ids), desc="METEOR (python)", leave=False, disable=not progress) as bar:
        for s, v in _best_all(scorer, list(zip(hyps, refs)), _workers(len(ids), workers), bar):
            per.append(v)
            total.add(s)
    return score(total), per
