"""CIDEr-D over a fixed corpus (the self-critical reward) == coco-caption's CIDEr-D per image."""
import random

import numpy as np
import pytest

from captionkit.metrics import fast
from captionkit.metrics.cider_reward import CiderD

WORDS = "a the man dog runs on grass red ball two people sit bench water boy jumps".split()


def random_set(images: int, seed: int):
    rng = random.Random(seed)

    def cap():
        return [rng.choice(WORDS) for _ in range(rng.randint(1, 12))]
    refs = [[cap() for _ in range(rng.randint(1, 5))] for _ in range(images)]
    hyps = [cap() for _ in range(images)]
    hyps[0] = list(refs[0][0])  # one exact match
    hyps[1] = ["zebra"]         # nothing in common
    return refs, hyps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_fast_cider_d_when_the_corpus_is_the_scored_set(seed):
    refs, hyps = random_set(30, seed)
    ids = [str(i) for i in range(30)]
    _, per = fast.cider_d({i: [" ".join(r) for r in rs] for i, rs in zip(ids, refs)},
                          {i: " ".join(h) for i, h in zip(ids, hyps)})
    scorer = CiderD(refs)
    np.testing.assert_allclose(scorer.scores(list(range(30)), hyps), per, rtol=0, atol=1e-9)


def test_a_score_does_not_depend_on_the_other_captions_scored():
    refs, hyps = random_set(12, 3)
    scorer = CiderD(refs)
    alone = scorer.score(5, hyps[5])
    assert scorer.scores([5, 5, 2], [hyps[5], hyps[0], hyps[2]])[0] == alone
    assert scorer.score(1, ["zebra"]) == 0.0
    assert scorer.score(0, refs[0][0]) > scorer.score(0, refs[0][0][:1] + ["zebra"])


def test_bad_corpus():
    with pytest.raises(ValueError, match="at least one"):
        CiderD([[["a"]], []])
