"""LRCN caption statistics and sacrebleu corpus BLEU on hand-made cases."""
import pytest

from captionkit.metrics import caption_stats, corpus_bleu


def test_caption_stats_hand_made():
    gen = {"1": "A dog runs.", "2": "a cat sits", "3": "a dog runs", "4": "a bird"}
    train = ["a dog runs", "A cat sleeps."]
    refs = {"1": ["a dog runs fast"], "2": ["a cat sits"], "3": ["the dog"], "4": ["one bird flies"]}
    s = caption_stats(gen, train, refs)
    assert s["in_training"] == pytest.approx(2 / 4)          # "A dog runs." twice
    assert s["unique_captions"] == pytest.approx(3 / 4)
    # reference vocab: a dog runs fast cat sits the one bird flies (10); generated: a dog runs cat sits bird
    assert s["vocab_reference"] == 10 and s["vocab_generated"] == 6
    assert s["vocab_coverage"] == pytest.approx(6 / 10)
    assert s["avg_length"] == pytest.approx((3 + 3 + 3 + 2) / 4)
    # unigrams: 11 tokens, distinct {a, dog, runs, cat, sits, bird} = 6
    assert s["distinct_1"] == pytest.approx(6 / 11)
    # bigrams: a dog, dog runs, a cat, cat sits, a dog, dog runs, a bird -> 5 distinct of 7
    assert s["distinct_2"] == pytest.approx(5 / 7)
    assert s["distinct_4"] == 0.0


def test_corpus_bleu_perfect_and_variable_refs():
    out = corpus_bleu(["a man is cutting a cucumber today", "he washed the big cucumber"],
                      [["A man is cutting a cucumber today."], ["he washed the big cucumber", "x y"]])
    assert out["tokenize"] == "13a" and "tok:13a" in out["signature"]
    assert out["bleu"] == pytest.approx(100.0, abs=1e-6) or out["bleu"] > 90
    with pytest.raises(ValueError):
        corpus_bleu(["a"], [])
