"""Fast BLEU / CIDEr-D == pycocoevalcap's, overall and per image, to 1e-6."""
import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from captionkit.metrics import fast, fast_scores
from captionkit.metrics.tokenize import ptb_tokenize

from _metrics_helpers import REFS, RES, coco_refs, perturb


def _official(gts, res):
    b, bs = Bleu(4).compute_score(gts, {k: [v] for k, v in res.items()}, verbose=0)
    c, cs = Cider().compute_score(gts, {k: [v] for k, v in res.items()})
    return b, bs, c, cs


def _assert_equal(gts, res):
    scores, per, ids = fast.bleu_cider(gts, res)
    b, bs, c, cs = _official(gts, res)
    assert ids == list(gts)
    for k in range(4):
        assert abs(scores[f"Bleu_{k + 1}"] - b[k]) < 1e-6
        np.testing.assert_allclose(per[f"Bleu_{k + 1}"], bs[k], rtol=0, atol=1e-6)
    assert abs(scores["CIDEr"] - c) < 1e-6
    np.testing.assert_allclose(per["CIDEr"], cs, rtol=0, atol=1e-6)


def test_builtin_set_equals_pycocoevalcap():
    gts = ptb_tokenize(REFS)
    _assert_equal(gts, {k: v[0] for k, v in ptb_tokenize({k: [v] for k, v in RES.items()}).items()})


@pytest.mark.parametrize("hyp", ["", "wave", "a a a a a a a", "man riding", "the the the bus bus"])
def test_edge_hypotheses(hyp):
    gts = ptb_tokenize(REFS)
    res = {k: hyp for k in gts}
    res["2"] = "two dogs playing with a frisbee in the grass"     # an exact match among them
    _assert_equal(gts, res)


def test_single_image_single_reference():
    _assert_equal({"a": ["a cat on a mat"]}, {"a": "a cat on the mat"})


def test_fast_scores_api_matches_and_needs_no_java(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))                    # no java anywhere
    s = fast_scores(REFS, RES)
    assert set(s) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr"}
    gts = ptb_tokenize(REFS)
    res = {k: v[0] for k, v in ptb_tokenize({k: [v] for k, v in RES.items()}).items()}
    b, _, c, _ = _official(gts, res)
    assert abs(s["Bleu_4"] - b[3]) < 1e-6 and abs(s["CIDEr"] - c) < 1e-6


def test_cider_df_is_over_the_whole_set():
    gts = ptb_tokenize(REFS)
    res = {k: v[0] for k, v in ptb_tokenize({k: [v] for k, v in RES.items()}).items()}
    whole = fast.cider_d(gts, res)[1]
    half = fast.cider_d({k: gts[k] for k in ("1", "2")}, {k: res[k] for k in ("1", "2")})[1]
    assert not np.allclose(whole[:2], half)      # batches give other numbers: score whole splits


@pytest.mark.data
def test_coco_val2017_perturbed_equals_pycocoevalcap():
    refs = coco_refs()
    res = perturb(refs, seed=1)
    gts = ptb_tokenize(refs)
    hyp = {k: v[0] for k, v in ptb_tokenize({k: [v] for k, v in res.items()}).items()}
    _assert_equal(gts, hyp)
