"""Upper bounds of the METEOR score of many hypothesis/reference pairs at once, in numpy.

The jar scores an image against every reference and keeps the best (Denkowski & Lavie 2014,
Sec. 2.2). ``Meteor.best`` aligns the references in decreasing order of an upper bound and stops
once the bound falls below the best score so far; the bound only needs to know which words have a
candidate match at all (``Meteor.upper_bound``). Here that is computed for all pairs together: a
word has an exact, stem or synonym candidate iff some word of the other side has the same Java hash,
the same stem, or shares a synset with it (equal hashes are exact matches, so the jar's "not an exact
match" conditions change no coverage); paraphrase coverage comes from the pairs' paraphrase matches.

Shape legend: P pairs, W1 / W2 hypothesis / reference word slots over all pairs (a hypothesis is
repeated for each of its references), C = sum over pairs of |hyp| x |ref| word cells, V distinct words.
"""
from __future__ import annotations

import numpy as np

from .params import ALPHA, BETA, DELTA, GAMMA
from .words import java_hash


def _word_classes(words: list[str], lex, function: frozenset):
    """(V,) hash class, stem class, function-word flag, and the sorted keys a * V + b of the
    ordered word pairs (a, b) that share a synset."""
    v = len(words)
    hcls = np.unique(np.array([java_hash(w) for w in words], dtype=np.int64), return_inverse=True)[1]
    scls = np.unique(np.array([lex.stem_key(w) for w in words], dtype=np.int64), return_inverse=True)[1]
    func = np.array([w.lower() in function for w in words], dtype=bool)
    syn = [lex.synsets(w) for w in words]
    lens = np.fromiter((len(y) for y in syn), dtype=np.int64, count=v)
    word = np.repeat(np.arange(v, dtype=np.int64), lens)                          # (S,) incidences
    sid = np.fromiter((x for y in syn for x in y), dtype=np.int64, count=int(lens.sum()))
    order = np.argsort(sid, kind="stable")
    word, sid = word[order], sid[order]
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])                   # synset groups
    size = np.diff(np.r_[starts, len(sid)])
    # every ordered pair inside each group: incidence k pairs with each member of its group
    grp = np.repeat(np.arange(len(starts)), size)                                # (S,) group of k
    reps = size[grp]                                                             # (S,)
    left = np.repeat(word, reps)                                                 # (sum size^2,)
    first = np.repeat(starts[grp], reps)
    offset = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    right = word[first + offset]
    keys = np.unique(left * v + right)
    return hcls, scls, func, keys, lens > 0


def pair_bounds(hyps: list[tuple], refs: list[list[tuple]], paras: list, lex, function: frozenset) -> np.ndarray:
    """(P,) float upper bound of the score of each (hypothesis, reference) pair, the pairs image by
    image, as ``Meteor.upper_bound`` computes it from the pair's stage (up to float rounding, within
    its margin). ``paras``: per pair its paraphrase matches (match tuples), None for a pair aligned
    by the exact module only (identical hash sequences: every word is covered)."""
    nref = np.fromiter((len(rs) for rs in refs), dtype=np.int64, count=len(refs))   # (I,)
    p = int(nref.sum())
    if p == 0:
        return np.zeros(0)
    vocab: dict[str, int] = {}
    ids = [vocab[w] if w in vocab else vocab.setdefault(w, len(vocab)) for h in hyps for w in h]
    hyp_ids = np.array(ids, dtype=np.int32)
    ids = [vocab[w] if w in vocab else vocab.setdefault(w, len(vocab)) for rs in refs for r in rs for w in r]
    w2 = np.array(ids, dtype=np.int32)                                           # (W2,)
    hyp_len = np.fromiter((len(h) for h in hyps), dtype=np.int64, count=len(hyps))
    n1 = np.repeat(hyp_len, nref)                                                # (P,)
    n2 = np.fromiter((len(r) for rs in refs for r in rs), dtype=np.int64, count=p)
    # each hypothesis once per reference: (W1,) slot -> word of its hypothesis
    start = np.repeat(np.cumsum(hyp_len) - hyp_len, nref)                        # (P,)
    off1 = np.cumsum(n1) - n1
    w1 = hyp_ids[np.repeat(start - off1, n1) + np.arange(int(n1.sum()))]         # (W1,)
    off2 = np.cumsum(n2) - n2
    hcls, scls, func, keys, has_syn = _word_classes(list(vocab), lex, function)
    cov1, cov2 = _cell_coverage(n1, n2, off1, off2, w1, w2, (hcls, scls, keys, has_syn, len(vocab)))
    _paraphrase_coverage(paras, off1, off2, cov1, cov2)
    pair1, pair2 = np.repeat(np.arange(p), n1), np.repeat(np.arange(p), n2)      # (W1,), (W2,)
    wt1 = np.where(func[w1], 1.0 - DELTA, DELTA)
    wt2 = np.where(func[w2], 1.0 - DELTA, DELTA)
    c1 = np.bincount(pair1, weights=cov1, minlength=p)                           # covered words
    c2 = np.bincount(pair2, weights=cov2, minlength=p)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.bincount(pair1, weights=wt1 * cov1, minlength=p) / np.bincount(pair1, weights=wt1, minlength=p)
        rec = np.bincount(pair2, weights=wt2 * cov2, minlength=p) / np.bincount(pair2, weights=wt2, minlength=p)
        fmean = 1.0 / ((1.0 - ALPHA) / prec + ALPHA / rec)
        pen = np.where((c1 == n1) & (c2 == n2), 0.0, GAMMA * (2.0 / (c1 + c2)) ** BETA)
        bound = fmean * (1.0 - pen) * (1 + 1e-9) + 1e-12                         # (a margin for rounding)
    return np.where((c1 > 0) & (c2 > 0), bound, 0.0)


def _cell_coverage(n1, n2, off1, off2, w1, w2, classes):
    """(W1,), (W2,) bool: the word has an exact, stem or synonym candidate on the other side."""
    hcls, scls, keys, has_syn, v = classes
    pair1 = np.repeat(np.arange(len(n1)), n1)                                    # (W1,)
    rep = n2[pair1]                                         # (W1,) cells of each hypothesis slot
    at1 = np.repeat(np.arange(len(w1), dtype=np.int32), rep)                     # (C,) slot in w1
    ends = np.cumsum(rep)
    at2 = np.repeat((off2[pair1] - (ends - rep)).astype(np.int32), rep)          # (C,) slot in w2
    at2 += np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int32)
    s2 = scls[w2]
    hit = np.repeat(scls[w1], rep) == s2[at2]      # equal words have equal stems: exact or stem
    pairs = np.unique(hcls.astype(np.int64) * (int(scls.max(initial=0)) + 1) + scls)
    if len(pairs) > len(np.unique(hcls)):          # a Java hash shared by words of other stems
        hit |= np.repeat(hcls[w1], rep) == hcls[w2][at2]
    cov1, cov2 = np.zeros(len(w1), dtype=bool), np.zeros(len(w2), dtype=bool)
    cov1[at1[hit]] = True
    cov2[at2[hit]] = True
    # synonyms, only in cells that could still cover a word: both words have synsets, one of
    # them is not covered yet
    maybe = np.flatnonzero(np.repeat(has_syn[w1], rep) & has_syn[w2][at2])
    c1, c2 = at1[maybe], at2[maybe]
    keep = ~cov1[c1] | ~cov2[c2]
    c1, c2 = c1[keep], c2[keep]
    if len(c1) and len(keys):
        k = w1[c1].astype(np.int64) * v + w2[c2]
        at = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
        found = keys[at] == k
        cov1[c1[found]] = True
        cov2[c2[found]] = True
    return cov1, cov2


def _paraphrase_coverage(paras: list, off1, off2, cov1, cov2) -> None:
    """Marks the words of every paraphrase match (in place); a pair without paraphrases (None: the
    exact module only) is already fully covered by its exact matches."""
    at1: list[int] = []
    at2: list[int] = []
    for k, ms in enumerate(paras):
        if ms:
            o1, o2 = int(off1[k]), int(off2[k])
            for m in ms:
                at1.extend(range(o1 + m[2], o1 + m[2] + m[3]))
                at2.extend(range(o2 + m[0], o2 + m[0] + m[1]))
    cov1[at1] = True
    cov2[at2] = True
