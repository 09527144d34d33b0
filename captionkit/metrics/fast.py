"""Exact BLEU-1..4 and CIDEr-D in numpy, equal to pycocoevalcap 1.2 to float rounding.

BLEU: Papineni et al. 2002 as coco-caption computes it (``Bleu(4)``, option "closest": the effective
reference length of each image is the reference length closest to the hypothesis length, ties to the
shorter; per-image scores use the same smoothing constants tiny=1e-15 and small=1e-9).
CIDEr-D: Vedantam et al. 2015 as coco-caption's ``Cider`` computes it: tf-idf n-gram vectors (n=1..4),
document frequencies over the references of the *whole scored set* (so scoring in batches gives other
numbers: always score the whole split at once), clipped hypothesis weights, a Gaussian length penalty
with sigma = 6 on the difference of *bigram* counts (coco-caption's ``length`` counts bigrams, kept
here so the numbers agree), mean over n, mean over references, times 10.

Inputs are already tokenized captions (tokens joined by single spaces, as ``tokenize.ptb_tokenize``
returns them). Everything is vectorised: every n-gram gets an integer id (the id of its (n-1)-gram
prefix combined with its last word), and the per-image sums become sorted-key joins and bincounts.

Shape legend: C captions (hypotheses and references together), E n-gram entries (one per distinct
n-gram of a caption), I images, R references.
"""
from __future__ import annotations

import math

import numpy as np

N = 4          # n-gram orders 1..4
SIGMA = 6.0    # CIDEr-D length penalty
_TINY, _SMALL = 1e-15, 1e-9   # coco-caption's BLEU smoothing constants


class _Grams:
    """Distinct n-grams of every caption: entry arrays of length E."""

    def __init__(self, captions: list[list[str]]):
        vocab: dict[str, int] = {}
        lens = np.fromiter((len(c) for c in captions), dtype=np.int64, count=len(captions))
        words = np.fromiter((vocab.setdefault(w, len(vocab)) for c in captions for w in c),
                            dtype=np.int64, count=int(lens.sum()))
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)   # (C,)
        cap_of_word = np.repeat(np.arange(len(captions), dtype=np.int64), lens)  # (W,)
        pos = np.arange(len(words), dtype=np.int64) - starts[cap_of_word]        # (W,) position in caption
        self.lens = lens
        caps, grams, orders, counts = [], [], [], []
        prev = words.copy()            # id of the n-gram ending at each word (n=1: the word)
        base = len(vocab) + 1
        next_id = 0
        for n in range(1, N + 1):
            if n > 1:
                # the n-gram ending at word j = (n-1)-gram ending at j-1, then word j
                ok = np.zeros(len(words), dtype=bool)
                ok[1:] = pos[1:] >= n - 1
                key = np.full(len(words), -1, dtype=np.int64)
                key[1:] = prev[:-1] * base + words[1:]
                key = np.where(ok, key, -1)
            else:
                ok = np.ones(len(words), dtype=bool)
                key = words
            uniq, inv = np.unique(key[ok], return_inverse=True)            # n-gram ids of order n
            ids = np.full(len(words), -1, dtype=np.int64)
            ids[ok] = inv + next_id
            next_id += len(uniq)
            prev = ids
            # distinct (caption, n-gram) pairs and their counts
            pair = cap_of_word[ok] * np.int64(next_id) + ids[ok]
            up, cnt = np.unique(pair, return_counts=True)
            caps.append(up // next_id)
            grams.append(up % next_id)
            orders.append(np.full(len(up), n - 1, dtype=np.int64))
            counts.append(cnt.astype(np.float64))
        self.n_grams = next_id
        self.cap = np.concatenate(caps)       # (E,) caption index
        self.gram = np.concatenate(grams)     # (E,) n-gram id
        self.order = np.concatenate(orders)   # (E,) n - 1
        self.count = np.concatenate(counts)   # (E,) term frequency


def _prepare(refs: dict[str, list[str]], res: dict[str, str]):
    ids = list(refs)
    if set(ids) != set(res):
        raise ValueError("refs and res must have the same image ids")
    hyps = [res[i].split() for i in ids]
    ref_lists = [[r.split() for r in refs[i]] for i in ids]
    if any(len(rs) == 0 for rs in ref_lists):
        raise ValueError("every image needs at least one reference")
    n_refs = np.array([len(rs) for rs in ref_lists], dtype=np.int64)        # (I,)
    img_of_ref = np.repeat(np.arange(len(ids), dtype=np.int64), n_refs)     # (R,)
    grams = _Grams(hyps + [r for rs in ref_lists for r in rs])               # captions: I hyps, then R refs
    return ids, n_refs, img_of_ref, grams


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hash-based unique is several times slower on int64 keys)."""
    x = np.sort(x)
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    return x[keep]


def _lookup(keys_sorted: np.ndarray, values: np.ndarray, query: np.ndarray):
    """values[keys_sorted == q] for each q (0 where absent), plus the found mask."""
    at = np.searchsorted(keys_sorted, query)
    at_c = np.minimum(at, max(len(keys_sorted) - 1, 0))
    found = (at < len(keys_sorted)) & (keys_sorted[at_c] == query) if len(keys_sorted) else np.zeros(len(query), bool)
    return np.where(found, values[at_c] if len(values) else 0.0, 0.0), found


def bleu(refs: dict[str, list[str]], res: dict[str, str], prepared=None):
    """BLEU-1..4 -> (overall: list of 4 floats, per_image: (I, 4) array), ids in refs order."""
    ids, n_refs, img_of_ref, g = prepared or _prepare(refs, res)
    I = len(ids)
    is_hyp = g.cap < I
    G = np.int64(g.n_grams)
    # max count of each n-gram over an image's references: key = image * G + gram
    r = ~is_hyp
    rkey = img_of_ref[g.cap[r] - I] * G + g.gram[r]
    order = np.lexsort((g.count[r], rkey))
    rkey_s, rcnt_s = rkey[order], g.count[r][order]
    last = np.ones(len(rkey_s), dtype=bool)
    last[:-1] = rkey_s[1:] != rkey_s[:-1]                     # last of each key holds the max count
    maxkey, maxcnt = rkey_s[last], rcnt_s[last]
    hkey = g.cap[is_hyp] * G + g.gram[is_hyp]
    refmax, _ = _lookup(maxkey, maxcnt, hkey)
    clipped = np.minimum(g.count[is_hyp], refmax)
    correct = np.zeros((I, N))
    np.add.at(correct, (g.cap[is_hyp], g.order[is_hyp]), clipped)     # (I, N)
    testlen = g.lens[:I].astype(np.float64)                             # (I,)
    guess = np.maximum(0.0, testlen[:, None] - np.arange(N)[None, :])  # (I, N)
    # closest reference length, ties to the shorter one
    rlen = g.lens[I:]
    reflen = np.zeros(I)
    dist = np.abs(rlen - g.lens[:I][img_of_ref]).astype(np.float64)
    o = np.lexsort((rlen, dist, img_of_ref))                            # by image, distance, length
    first = np.ones(len(o), dtype=bool)
    first[1:] = img_of_ref[o][1:] != img_of_ref[o][:-1]
    reflen[img_of_ref[o][first]] = rlen[o][first]
    per = _bleu_from_counts(correct, guess, testlen, reflen)                     # (I, N)
    overall = _bleu_from_counts(correct.sum(0, keepdims=True), guess.sum(0, keepdims=True),
                                testlen.sum(keepdims=True), reflen.sum(keepdims=True))[0]
    return [float(x) for x in overall], per


def _bleu_from_counts(correct, guess, testlen, reflen):
    """(B, N) clipped matches and guesses, (B,) lengths -> (B, N) BLEU-n with coco-caption's smoothing."""
    ratio_terms = (correct + _TINY) / (guess + _SMALL)                 # (B, N)
    logcum = np.cumprod(ratio_terms, axis=1)
    scores = logcum ** (1.0 / np.arange(1, N + 1))[None, :]
    ratio = (testlen + _TINY) / (reflen + _SMALL)                       # (B,)
    bp = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
    return scores * bp[:, None]


def cider_d(refs: dict[str, list[str]], res: dict[str, str], prepared=None, sigma: float = SIGMA):
    """CIDEr-D -> (overall: float, per_image: (I,) array), ids in refs order; df over the whole set."""
    ids, n_refs, img_of_ref, g = prepared or _prepare(refs, res)
    I, R = len(ids), len(img_of_ref)
    G = np.int64(g.n_grams)
    is_hyp = g.cap < I
    r = ~is_hyp
    # document frequency: number of images whose references contain the n-gram
    img_gram = _sorted_unique(img_of_ref[g.cap[r] - I] * G + g.gram[r])
    df = np.bincount(img_gram % G, minlength=int(G)).astype(np.float64)          # (G,)
    ref_len = math.log(float(I))
    weight = ref_len - np.log(np.maximum(1.0, df))                               # (G,)
    vec = g.count * weight[g.gram]                                               # (E,) tf-idf
    norm = np.zeros((I + R, N))
    np.add.at(norm, (g.cap, g.order), vec ** 2)
    norm = np.sqrt(norm)                                                         # (C, N)
    # join each reference entry with the hypothesis entry of its image for the same n-gram
    hkey = g.cap[is_hyp] * G + g.gram[is_hyp]
    o = np.argsort(hkey)
    hkey_s, hvec_s = hkey[o], vec[is_hyp][o]
    ref_caps = g.cap[r]
    rvec = vec[r]
    hv, found = _lookup(hkey_s, hvec_s, img_of_ref[ref_caps - I] * G + g.gram[r])
    contrib = np.where(found, np.minimum(hv, rvec) * rvec, 0.0)
    val = np.zeros((R, N))
    np.add.at(val, (ref_caps - I, g.order[r]), contrib)                          # (R, N)
    nh = norm[:I][img_of_ref]                                                    # (R, N)
    nr = norm[I:]
    denom = nh * nr
    val = np.where(denom != 0, val / np.where(denom != 0, denom, 1.0), val)
    bigrams = np.maximum(g.lens - 1, 0).astype(np.float64)    # coco-caption's "length" = bigram count
    delta = bigrams[:I][img_of_ref] - bigrams[I:]                               # (R,)
    val *= np.exp(-(delta ** 2) / (2 * sigma ** 2))[:, None]
    per_ref = val.mean(axis=1)                                                   # (R,)
    per_img = np.bincount(img_of_ref, weights=per_ref, minlength=I) / n_refs * 10.0
    return float(np.mean(per_img)), per_img


def bleu_cider(refs: dict[str, list[str]], res: dict[str, str]):
    """Both metrics from one n-gram pass -> ({name: overall}, {name: (I,) per image}, ids)."""
    prepared = _prepare(refs, res)
    b, bper = bleu(refs, res, prepared)
    c, cper = cider_d(refs, res, prepared)
    scores = {f"Bleu_{k + 1}": b[k] for k in range(N)}
    scores["CIDEr"] = c
    per = {f"Bleu_{k + 1}": bper[:, k] for k in range(N)}
    per["CIDEr"] = cper
    return scores, per, prepared[0]


ROUGE_BETA = 1.2   # coco-caption's Rouge: recall weighted 1.2 ** 2 times precision


def _lcs_length(masks: dict, full: int, m: int, ref: list[str]) -> int:
    """LCS length of the hypothesis (given as per-word position bit masks) and ``ref``.

    Bit-parallel LCS (Allison & Dix 1986, Hyyro 2004): one add, and, or and subtract per reference word.
    """
    v = full
    for w in ref:
        u = v & masks.get(w, 0)
        v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


def rouge_l(refs: dict[str, list[str]], res: dict[str, str]):
    """ROUGE-L -> (overall, per_image (I,) array), ids in refs order; equal to pycocoevalcap's Rouge.

    As coco-caption: tokens are ``split(" ")`` (so empty strings count), per reference precision and
    recall from the LCS, the max of each over references, F with beta = 1.2, mean over images.
    """
    ids = list(refs)
    if set(ids) != set(res):
        raise ValueError("refs and res must have the same image ids")
    beta2 = ROUGE_BETA ** 2
    per = np.zeros(len(ids))
    for n, i in enumerate(ids):
        hyp = res[i].split(" ")
        m = len(hyp)
        masks: dict[str, int] = {}
        for k, w in enumerate(hyp):
            masks[w] = masks.get(w, 0) | (1 << k)
        full = (1 << m) - 1
        prec_max = rec_max = 0.0
        for r in refs[i]:
            ref = r.split(" ")
            lcs = _lcs_length(masks, full, m, ref)
            prec_max = max(prec_max, lcs / float(m))
            rec_max = max(rec_max, lcs / float(len(ref)))
        if prec_max != 0 and rec_max != 0:
            per[n] = ((1 + beta2) * prec_max * rec_max) / float(rec_max + beta2 * prec_max)
    return float(np.mean(per)), per


def rouge_l_scorer(gts: dict[str, list[str]], res: dict[str, list[str]]):
    """``rouge_l`` with pycocoevalcap's calling convention: res {id: [hyp]} -> (overall, per_image)."""
    return rouge_l(gts, {k: v[0] for k, v in res.items()})
