"""The fast paths of the Python METEOR equal plain reference implementations written from the spec.

Each optimised part (the beam search, paraphrase matching, coverage, the batched upper bounds, the
pruned best-reference choice, tokenisation, forked workers) is compared, on random and hand-made
inputs, with a straightforward version of what it computes. No Java and no paraphrase table needed.
"""
from __future__ import annotations

import gc
import random
from types import SimpleNamespace

import numpy as np
import pytest

from captionkit.metrics.meteor import Meteor, meteor_score, score
from captionkit.metrics.meteor.aligner import BEAM, SEARCH_WEIGHTS, align
from captionkit.metrics.meteor.bounds import pair_bounds
from captionkit.metrics.meteor.matchers import PARAPHRASE, Stage
from captionkit.metrics.meteor.normalise import _JAVA_TRIM, java_tokens, normalize, tokens

# paraphrases with several words on either side, a repeated entry and a shared first word
TABLE = {("in", "front", "of"): [("before",), ("ahead", "of")],
         ("before",): [("in", "front", "of"), ("ahead", "of"), ("in", "front", "of")],
         ("ahead", "of"): [("before",)],
         ("a", "man"): [("a", "person"), ("someone",)],
         ("someone",): [("a", "man"), ("a", "person")]}
# exact, stem (runs/running), synonym (car/automobile, slow/slowly, dog/puppy), function words
WORDS = ("a the man person someone dog puppy runs running run car automobile slow slowly in front "
         "of before ahead on red house home").split()


def _sentence(rng, pool=WORDS, lo=1, hi=10) -> tuple:
    return tuple(rng.choice(pool) for _ in range(rng.randint(lo, hi)))


def _images(rng, n, pool=WORDS, refs=(1, 5)):
    return ([_sentence(rng, pool) for _ in range(n)],
            [[_sentence(rng, pool) for _ in range(rng.randint(*refs))] for _ in range(n)])


# ------------------------------------------------------------------ the beam search

def _reference_align(stage) -> list:
    """METEOR 1.5's aligner written plainly: paths as namespaces ranked by the tuple (-(weighted
    matches), chunks, distance); the same quirks as the jar (see aligner's docstring)."""
    n = len(stage.matches)
    fixed = [None] * n
    for j, ms in enumerate(stage.matches):
        if len(ms) == 1:
            m = ms[0]
            if all(stage.cov2[j + k] == 1 for k in range(m[1])) and \
                    all(stage.cov1[m[2] + k] == 1 for k in range(m[3])):
                fixed[j] = m
    fixed_list = [m for m in fixed if m is not None]
    if not any(len(ms) > (f is not None) for ms, f in zip(stage.matches, fixed)):
        return fixed_list
    start = SimpleNamespace(m1=0, m2=0, chunks=0, dist=0, idx=0, last=-1, chosen=[],
                            used1={p for m in fixed_list for p in range(m[2], m[2] + m[3])},
                            used2={p for m in fixed_list for p in range(m[0], m[0] + m[1])})

    def rank(p):
        return (-(p.m1 + p.m2), p.chunks, p.dist)

    def take(p, m):
        w = SEARCH_WEIGHTS[m[4]]
        p.m1, p.m2 = int(p.m1 + m[3] * w), int(p.m2 + m[1] * w)
        if p.last != -1 and m[2] != p.last:
            p.chunks += 1
        p.idx, p.last = m[0] + m[1], m[2] + m[3]

    paths = [start]
    for current in range(n + 1):
        paths.sort(key=rank)
        nxt = []
        for p in paths[:BEAM]:
            if current == n:
                p.chunks += p.last != -1
                nxt.append(p)
            elif current in p.used2:
                if current < p.idx:
                    nxt.append(p)
                elif fixed[p.idx] is not None:
                    m = fixed[p.idx]
                    take(p, m)
                    p.dist += abs(m[0] - m[2])
                    nxt.append(p)
            else:
                for m in stage.matches[current]:
                    r, h = set(range(m[0], m[0] + m[1])), set(range(m[2], m[2] + m[3]))
                    if r & p.used2 or h & p.used1:
                        continue
                    child = SimpleNamespace(**vars(p))
                    child.used1, child.used2, child.chosen = p.used1 | h, p.used2 | r, p.chosen + [m]
                    take(child, m)
                    nxt.append(child)
                    p.dist += abs(m[0] - m[2])
                if p.last != -1:
                    p.chunks += 1
                    p.last = -1
                p.idx += 1
                nxt.append(p)
        paths = nxt or [paths[0]]
    paths.sort(key=rank)
    out = {m[0]: m for m in fixed_list}
    out.update((m[0], m) for m in paths[0].chosen)
    return [out[j] for j in sorted(out)]


def _random_stage(rng) -> Stage:
    """Candidates with random spans, modules and overlaps, many per position (beam overflow)."""
    n1, n2 = rng.randint(1, 9), rng.randint(1, 9)
    st = Stage([[] for _ in range(n2)], [0] * n1, [0] * n2)
    for _ in range(rng.randint(0, 30)):
        j, i = rng.randrange(n2), rng.randrange(n1)
        ln, ml = rng.randint(1, min(3, n2 - j)), rng.randint(1, min(3, n1 - i))
        if rng.random() < 0.6:
            ln = ml = 1
        st.add((j, ln, i, ml, rng.randrange(4), ((1 << ln) - 1) << j, ((1 << ml) - 1) << i))
    return st


def test_beam_search_equals_the_plain_reference_on_random_stages():
    rng = random.Random(11)
    beam_full = 0
    for _ in range(3000):
        st = _random_stage(rng)
        assert align(st) == _reference_align(st)
        beam_full += sum(len(ms) for ms in st.matches) > 20
    assert beam_full > 100                     # many stages whose paths overflow the beam of 40


def test_beam_search_equals_the_plain_reference_on_matcher_stages():
    rng = random.Random(12)
    m = Meteor([], TABLE)
    for _ in range(1500):
        pool = rng.choice([WORDS, ("a", "a", "man", "the"), ("a", "b")])     # repeats: ties, overflow
        h, r = _sentence(rng, pool, 1, 12), _sentence(rng, pool, 1, 12)
        st = m.matchers.stage(h, r)
        assert align(st) == _reference_align(st)


# ------------------------------------------------------------------ matching and bounds

def _reference_paraphrases(hyp: tuple, ref: tuple, table: dict) -> list[tuple]:
    """Every reference phrase (by start, then length) whose table paraphrases (file order) occur in
    the hypothesis, at each occurrence; then the same from the hypothesis side."""
    out = []
    for this, other, flip in ((ref, hyp, False), (hyp, ref, True)):
        for s in range(len(this)):
            for e in range(s + 1, len(this) + 1):
                for t in table.get(this[s:e], []):
                    for p in range(len(other) - len(t) + 1):
                        if other[p:p + len(t)] == t:
                            rs, rl, hs, hl = (p, len(t), s, e - s) if flip else (s, e - s, p, len(t))
                            out.append((rs, rl, hs, hl, PARAPHRASE, ((1 << rl) - 1) << rs, ((1 << hl) - 1) << hs))
    return out


def test_paraphrase_matches_equal_the_plain_reference():
    rng = random.Random(13)
    m = Meteor([], TABLE).matchers
    pool = "a man person someone in front of before ahead the".split()     # the table's words
    found = 0
    for _ in range(2000):
        h, r = _sentence(rng, pool, 0, 12), _sentence(rng, pool, 0, 12)
        got = m.paraphrase_matches(m.sentence(h), m.sentence(r))
        assert got == _reference_paraphrases(h, r, TABLE)
        found += bool(got)
    assert found > 200


def test_coverage_and_bounds_equal_those_of_the_stage():
    rng = random.Random(14)
    met = Meteor([], TABLE)
    hyps, refs = _images(rng, 300)
    pairs = [(h, r) for h, rs in zip(hyps, refs) for r in rs]
    paras = [met._paraphrases(h, r) for h, r in pairs]
    fast = pair_bounds(hyps, refs, paras, met.matchers.lex, met.function)
    assert len(fast) == len(pairs)
    for (h, r), para, b in zip(pairs, paras, fast):
        st = met._stage(h, r)
        c1, c2 = met.matchers.coverage(h, r, para or [])
        assert c1 == [c > 0 for c in st.cov1] and c2 == [c > 0 for c in st.cov2]
        slow = met.upper_bound(h, r, st)
        assert b == pytest.approx(slow, rel=1e-12, abs=1e-15)
        assert b >= score(met.stats(h, r, st))


def test_batched_best_equals_aligning_every_reference():
    rng = random.Random(15)
    met = Meteor([], TABLE)
    hyps, refs = _images(rng, 400)
    hyps[0], refs[0] = hyps[1], [hyps[1], hyps[1]]        # identical captions (the exact-only path)
    hyps[2], refs[2] = (), [("a", "man")]                 # an empty hypothesis
    batched = met.best_all(hyps, refs)
    for h, rs, (s, v) in zip(hyps, refs, batched):
        scores = [score(met.stats(h, r)) for r in rs]      # every reference aligned, in order
        assert v == max(scores)
        assert s == met.stats(h, rs[scores.index(v)])       # the first of the best, as the jar
        assert (s, v) == met.best(h, rs)


def test_blocks_of_images_give_the_same_result(monkeypatch):
    from captionkit.metrics.meteor import scorer
    rng = random.Random(18)
    hyps, refs = _images(rng, 100)
    whole = Meteor([], TABLE).best_all(hyps, refs)
    monkeypatch.setattr(scorer, "BLOCK", 7)
    assert Meteor([], TABLE).best_all(hyps, refs) == whole


# ------------------------------------------------------------------ tokens, workers, gc

@pytest.mark.parametrize("line", ["A man  rides a horse", " two dogs\tplay ", "a t-shirt and a man's hat",
                                  "the dog is n't on 2,000 st. no. 5", "", "caf\u00e9 au lait", "A.M. u.s."])
def test_tokens_equal_normalize_then_java_tokens(line):
    assert tokens(line) == tuple(java_tokens(normalize(line.strip(_JAVA_TRIM))))


def test_forked_workers_and_default_give_the_same_scores():
    rng = random.Random(16)
    hyps, refs = _images(rng, 260)
    gts = {str(k): [" ".join(r) for r in rs] for k, rs in enumerate(refs)}
    res = {str(k): [" ".join(h)] for k, h in enumerate(hyps)}
    one = meteor_score(gts, res, paraphrases=TABLE, workers=1)
    assert meteor_score(gts, res, paraphrases=TABLE, workers=2) == one
    assert meteor_score(gts, res, paraphrases=TABLE) == one              # the default, whatever it picks


def test_garbage_collector_state_is_restored():
    gts, res = {"1": ["a man runs"]}, {"1": ["a man running"]}
    assert gc.isenabled()
    meteor_score(gts, res, paraphrases=TABLE)
    assert gc.isenabled()
    gc.disable()
    try:
        meteor_score(gts, res, paraphrases=TABLE)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_corpus_score_is_unchanged_by_the_batching():
    rng = random.Random(17)
    hyps, refs = _images(rng, 120)
    gts = {str(k): [" ".join(r) for r in rs] for k, rs in enumerate(refs)}
    res = {str(k): [" ".join(h)] for k, h in enumerate(hyps)}
    overall, per = meteor_score(gts, res, paraphrases=TABLE)
    met = Meteor([], TABLE)
    want = [met.best(h, rs)[1] for h, rs in zip(hyps, refs)]
    np.testing.assert_array_equal(per, want)


def test_default_workers_follow_the_free_cpus(monkeypatch):
    from captionkit.metrics.meteor import scorer
    monkeypatch.setattr(scorer.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(scorer.os, "getloadavg", lambda: (1.2, 0.0, 0.0), raising=False)
    monkeypatch.setattr(scorer.threading, "active_count", lambda: 1)
    assert scorer._workers(5000, None) == 3                  # 4 CPUs, ~1 busy
    assert scorer._workers(scorer.AUTO_MIN_IMAGES - 1, None) == 1      # small corpus: no fork
    assert scorer._workers(5000, 1) == 1 and scorer._workers(5000, 0) == 4
    monkeypatch.setattr(scorer.os, "getloadavg", lambda: (3.9, 0.0, 0.0), raising=False)
    assert scorer._workers(5000, None) == 1                  # a busy machine: one process
    monkeypatch.setattr(scorer.threading, "active_count", lambda: 2)
    monkeypatch.setattr(scorer.os, "getloadavg", lambda: (0.0, 0.0, 0.0), raising=False)
    assert scorer._workers(5000, None) == 1                  # other threads: never fork by default
