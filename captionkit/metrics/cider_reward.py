"""CIDEr-D against a fixed reference corpus: the reward of self-critical training (Rennie et al. 2017).

coco-caption's CIDEr-D takes its document frequencies from the references of the *scored set*, so the
score of one caption depends on which other images are scored with it. A reward must not: ``CiderD``
fixes the document frequencies once, over a whole corpus (e.g. every training image), and then scores
any number of (image, caption) pairs independently and quickly. With the corpus equal to the scored set
it equals coco-caption's per-image CIDEr-D (a test checks it against ``fast.cider_d``): tf-idf n-gram
vectors (n = 1..4), clipped hypothesis weights, a Gaussian length penalty with sigma 6 on the
difference of bigram counts, mean over n and over references, times 10.

Captions are lists of tokens (already tokenized and lower-cased the same way for both sides).
"""
from __future__ import annotations

import math
from collections import Counter

N = 4
SIGMA = 6.0

Vector = tuple[list[dict[tuple[str, ...], float]], list[float], int]  # per-n weights, per-n norms, bigrams


def ngrams(tokens: list[str]) -> Counter:
    """All n-grams (n = 1..4) of a caption with their counts."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, N + 1) for i in range(len(tokens) - n + 1))


class CiderD:
    """CIDEr-D with document frequencies over ``corpus`` (one list of reference captions per image)."""

    def __init__(self, corpus: list[list[list[str]]], sigma: float = SIGMA):
        if not corpus or any(len(refs) == 0 for refs in corpus):
            raise ValueError("CiderD needs at least one image, and every image at least one reference")
        self.sigma = sigma
        counts = [[ngrams(r) for r in refs] for refs in corpus]
        self.df: Counter = Counter(g for refs in counts for g in set().union(*refs))
        self.log_n = math.log(float(len(corpus)))
        self.refs: list[list[Vector]] = [[self._vector(c) for c in refs] for refs in counts]

    def _vector(self, counts: Counter) -> Vector:
        vec: list[dict] = [{} for _ in range(N)]
        norm = [0.0] * N
        bigrams = 0
        for g, tf in counts.items():
            n = len(g) - 1
            w = tf * (self.log_n - math.log(max(1.0, self.df.get(g, 0.0))))
            vec[n][g] = w
            norm[n] += w * w
            if n == 1:
                bigrams += tf
        return vec, [math.sqrt(x) for x in norm], bigrams

    def score(self, image: int, tokens: list[str]) -> float:
        """CIDEr-D of one caption of corpus image ``image``."""
        hv, hn, hl = self._vector(ngrams(tokens))
        total = 0.0
        refs = self.refs[image]
        for rv, rn, rl in refs:
            penalty = math.exp(-((hl - rl) ** 2) / (2 * self.sigma ** 2))
            for n in range(N):
                ref = rv[n]
                val = sum(min(w, ref[g]) * ref[g] for g, w in hv[n].items() if g in ref)
                if hn[n] != 0 and rn[n] != 0:
                    val /= hn[n] * rn[n]
                total += val * penalty
        return total / N / len(refs) * 10.0

    def scores(self, images: list[int], captions: list[list[str]]) -> list[float]:
        """CIDEr-D of each (corpus image index, caption) pair."""
        return [self.score(i, c) for i, c in zip(images, captions)]
