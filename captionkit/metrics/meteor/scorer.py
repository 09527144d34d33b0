"""METEOR 1.5 scores from alignments (Lavie & Agarwal 2007, Sec. 2; Denkowski & Lavie 2014, Sec. 2.2).

Parameters (``params``) of the English "rank" task (``-l en``): alpha 0.85, beta 0.20, gamma 0.60, delta 0.75; module
weights exact 1.0, stem 0.6, synonym 0.8, paraphrase 0.6. With content/function word weighting delta,

    P = sum_i w_i (delta m_i,c(h) + (1 - delta) m_i,f(h)) / (delta |h_c| + (1 - delta) |h_f|)   (R: same on r)
    Fmean = P R / (alpha P + (1 - alpha) R),   Pen = gamma (chunks / matches)^beta,
    score = Fmean (1 - Pen)   (Pen = 0 for a perfect one-chunk match).

Each image is scored against every reference and keeps the best one (the first on ties); a reference
whose upper bound (``bounds``) is below the best score so far cannot win and is not aligned. The corpus
score is *not* the mean of the image scores: like the jar's ``EVAL`` line it sums the sufficient
statistics of every image (chunks of perfect one-chunk matches excluded) and scores the sums.
"""
from __future__ import annotations

import gc
import math
import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .aligner import align, count_chunks
from .bounds import pair_bounds
from .matchers import Matchers, java_hash
from .normalise import tokens
from .params import ALPHA, BETA, DELTA, GAMMA, WEIGHTS
from .resources import function_words, paraphrases_for


BLOCK = 5000                  # images whose pair bounds are computed together (bounds the memory)


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
            paraphrases = paraphrases_for(sentences)
        self.matchers = Matchers(paraphrases)
        self.function = function_words()

    def _same(self, hyp: tuple, ref: tuple) -> bool:
        """Identical hash sequences: the jar aligns them with the exact module only."""
        return len(hyp) == len(ref) and all(a == b or java_hash(a) == java_hash(b) for a, b in zip(hyp, ref))

    def _stage(self, hyp: tuple, ref: tuple):
        return self.matchers.stage(hyp, ref, exact_only=self._same(hyp, ref))

    def stats(self, hyp: tuple, ref: tuple, stage=None) -> Stats:
        """Sufficient statistics of one hypothesis against one reference (token tuples)."""
        m = self.matchers
        chosen = align(stage or self._stage(hyp, ref))
        f1, f2 = self._function_flags(m.sentence(hyp)), self._function_flags(m.sentence(ref))
        s = Stats(float(len(hyp)), float(len(ref)), float(sum(f1)), float(sum(f2)))
        c1, c2, u1, u2 = s.content1, s.content2, s.func1, s.func2
        for st, ln, ms, ml, mod, _, _ in chosen:
            for k in range(ms, ms + ml):
                if f1[k]:
                    u1[mod] += 1
                else:
                    c1[mod] += 1
            for k in range(st, st + ln):
                if f2[k]:
                    u2[mod] += 1
                else:
                    c2[mod] += 1
        s.chunks = float(count_chunks(chosen))
        return s

    def upper_bound(self, hyp: tuple, ref: tuple, stage) -> float:
        """A score no alignment of this pair can exceed: every word that has a candidate counted as
        an exact match, and the fragmentation penalty of a single chunk (none if all words have one)."""
        return self._bound(hyp, ref, [c > 0 for c in stage.cov1], [c > 0 for c in stage.cov2])

    def _bound(self, hyp: tuple, ref: tuple, cov1: list[bool], cov2: list[bool]) -> float:
        """``upper_bound`` from the words that have a candidate (True per position)."""
        m = self.matchers
        f1, f2 = self._function_flags(m.sentence(hyp)), self._function_flags(m.sentence(ref))
        n1, n2 = sum(cov1), sum(cov2)
        if not n1 or not n2:
            return 0.0
        try:
            p = sum((1.0 - DELTA) if f else DELTA for f, c in zip(f1, cov1) if c) / \
                (DELTA * (len(hyp) - sum(f1)) + (1.0 - DELTA) * sum(f1))
            r = sum((1.0 - DELTA) if f else DELTA for f, c in zip(f2, cov2) if c) / \
                (DELTA * (len(ref) - sum(f2)) + (1.0 - DELTA) * sum(f2))
            fmean = 1.0 / (((1.0 - ALPHA) / p) + (ALPHA / r))
        except ZeroDivisionError:
            return math.inf
        everything = n1 == len(hyp) and n2 == len(ref)
        pen = 0.0 if everything else GAMMA * (2.0 / (n1 + n2)) ** BETA
        return fmean * (1.0 - pen) * (1 + 1e-9) + 1e-12      # (a margin for rounding)

    def _function_flags(self, sent) -> list[bool]:
        flags = getattr(sent, "function", None)
        if flags is None:
            fw = self.function
            flags = sent.function = [w.lower() in fw for w in sent.words]
        return flags

    def _paraphrases(self, hyp: tuple, ref: tuple) -> list | None:
        """The pair's paraphrase matches; None for identical hash sequences (exact module only)."""
        m = self.matchers
        return None if self._same(hyp, ref) else m.paraphrase_matches(m.sentence(hyp), m.sentence(ref))

    def best(self, hyp: tuple, refs: list[tuple]) -> tuple[Stats, float]:
        """The best reference's stats and score (the first one on ties), as the jar picks it.

        References are aligned in decreasing order of ``upper_bound`` (computed from which words
        have a candidate, without building the candidates); once the bound falls below the best
        score the rest cannot win and are neither staged nor aligned (the result is unchanged)."""
        paras = [self._paraphrases(hyp, ref) for ref in refs]
        bounds = [self._bound(hyp, ref, *self.matchers.coverage(hyp, ref, para or []))
                  for ref, para in zip(refs, paras)]
        return self._pick(hyp, refs, paras, bounds)

    def best_all(self, hyps: list[tuple], refs: list[list[tuple]]) -> list[tuple[Stats, float]]:
        """``best`` of every image, equal to it, with the bounds of the pairs computed together
        (BLOCK images at a time: their word cells take ~50 bytes each, ~1,000 an image)."""
        out = []
        for b in range(0, len(hyps), BLOCK):
            hs, rss = hyps[b:b + BLOCK], refs[b:b + BLOCK]
            paras = [self._paraphrases(h, r) for h, rs in zip(hs, rss) for r in rs]
            bounds = pair_bounds(hs, rss, paras, self.matchers.lex, self.function).tolist()
            k = 0
            for h, rs in zip(hs, rss):
                out.append(self._pick(h, rs, paras[k:k + len(rs)], bounds[k:k + len(rs)]))
                k += len(rs)
        return out

    def _pick(self, hyp: tuple, refs: list[tuple], paras: list, bounds: list[float]):
        """Aligns references by decreasing bound until the bound falls below the best score."""
        best, best_score, best_at = None, -1.0, len(refs)
        for k in sorted(range(len(refs)), key=lambda k: (-bounds[k], k)):
            if bounds[k] < best_score:
                break
            stage = self.matchers.stage(hyp, refs[k], exact_only=paras[k] is None, para=paras[k])
            s = self.stats(hyp, refs[k], stage)
            v = score(s)
            if v > best_score or (v == best_score and k < best_at):
                best, best_score, best_at = s, v, k
        return best, best_score


_SHARED: tuple | None = None     # (scorer, pairs) that forked workers inherit (set just before forking)


def _best_of_chunk(span: tuple[int, int]):
    scorer, pairs = _SHARED
    return scorer.best_all([h for h, _ in pairs[span[0]:span[1]]], [rs for _, rs in pairs[span[0]:span[1]]])


AUTO_MIN_IMAGES = 2000      # below this the per-image work (~0.4 ms an image) does not pay for forking


def _workers(n_images: int, workers: int | None) -> int:
    """Processes to align with: ``workers`` if given (0: one per usable CPU, at most 8); None: one per
    CPU the machine's load (1-minute average) leaves free, for corpora of AUTO_MIN_IMAGES or more,
    and only where no other Python thread runs (a fork copies locks other threads may hold; the
    forked workers use no BLAS or OpenMP pool, so idle native pools, numpy's, are no matter)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers is None:
        workers = 1
        if n_images >= AUTO_MIN_IMAGES and hasattr(os, "getloadavg") and threading.active_count() == 1:
            workers = max(1, min(8, int(cpus - os.getloadavg()[0] + 0.5)))
    elif workers == 0:
        workers = min(cpus, 8)
    return workers if n_images >= 200 and "fork" in mp.get_all_start_methods() else 1


def _best_all(scorer: Meteor, pairs: list, workers: int, bar):
    """(stats, score) of every image; forked workers share the loaded resources (copy on write)."""
    if workers <= 1:
        yield from scorer.best_all([h for h, _ in pairs], [rs for _, rs in pairs])
        bar.update(len(pairs))
        return
    global _SHARED
    _SHARED = scorer, pairs                             # inherited: only the spans are sent
    size = max(50, -(-len(pairs) // (workers * 2)))     # few chunks: each one sets up its own bounds
    chunks = [(k, min(k + size, len(pairs))) for k in range(0, len(pairs), size)]
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
            for out in ex.map(_best_of_chunk, chunks):
                yield from out
                bar.update(len(out))
    finally:
        _SHARED = None


@contextmanager
def _gc_paused():
    """The cyclic garbage collector off while scoring (restored after). Scoring builds ~10^6 small
    tuples, lists and dicts, none of them in reference cycles, next to the large resources (synonyms,
    paraphrase trie); every generation-2 collection walks all of them, which took a third of the run."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def meteor_score(gts: dict, res: dict, progress: bool = False, paraphrases: dict | None = None,
                 workers: int | None = None):
    """-> (corpus METEOR, [per image]) for tokenized ``gts {id: [ref]}``, ``res {id: [hyp]}``.

    The same inputs, cleaning and outputs as pycocoevalcap's Meteor (and ``official.meteor``).
    ``workers``: processes aligning images in parallel (forked, sharing the loaded resources; 0: one
    per CPU, at most 8; None: as many as the load leaves CPUs free, for large corpora, see
    ``_workers``). The result does not depend on it; on a busy machine more workers only add
    overhead and slow down the work already there.
    """
    with _gc_paused():
        return _meteor_score(gts, res, progress, paraphrases, workers)


def _meteor_score(gts: dict, res: dict, progress: bool, paraphrases: dict | None, workers: int):
    from tqdm import tqdm
    ids = list(gts)
    hyps, refs = [], []
    for i in ids:
        if len(res[i]) != 1:
            raise ValueError(f"METEOR needs one hypothesis per image; image {i!r} has {len(res[i])}")
        hyps.append(tokens(res[i][0].replace("|||", "").replace("  ", " ")))
        refs.append([tokens(r.replace("|||", "")) for r in gts[i]])
    scorer = Meteor(hyps + [r for rs in refs for r in rs], paraphrases)
    total = Stats()
    per = []
    with tqdm(total=len(ids), desc="METEOR (python)", leave=False, disable=not progress) as bar:
        for s, v in _best_all(scorer, list(zip(hyps, refs)), _workers(len(ids), workers), bar):
            per.append(v)
            total.add(s)
    return score(total), per
