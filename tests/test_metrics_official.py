"""Official path == pycocoevalcap by hand; METEOR never hangs; no Java -> Java metrics skipped."""
import os
import shutil
import stat
import time

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from captionkit.metrics import official, score_captions
from captionkit.metrics.tokenize import find_java, ptb_tokenize

from _metrics_helpers import REFS, RES

needs_java = pytest.mark.skipif(find_java() is None, reason="java not installed")


def _fake_java(tmp_path, body: str) -> str:
    """A 'java' on PATH that runs a shell body instead (answers -version so detection passes)."""
    d = tmp_path / "fakebin"
    d.mkdir(exist_ok=True)
    p = d / "java"
    p.write_text("#!/bin/sh\nif [ \"$1\" = \"-version\" ]; then echo 'openjdk version \"fake\"' >&2; exit 0; fi\n"
                 + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


@needs_java
def test_official_path_equals_pycocoevalcap_by_hand():
    r = score_captions(REFS, RES, metrics=("bleu", "rouge", "cider"), per_image=True)
    gts = ptb_tokenize(REFS, "java")
    res = ptb_tokenize({k: [v] for k, v in RES.items()}, "java")
    b, bs = Bleu(4).compute_score(gts, res, verbose=0)
    ro, ros = Rouge().compute_score(gts, res)
    c, cs = Cider().compute_score(gts, res)
    assert [r.scores[f"Bleu_{k}"] for k in range(1, 5)] == b
    assert r.scores["ROUGE_L"] == ro and r.scores["CIDEr"] == c
    assert [r.per_image[i]["CIDEr"] for i in gts] == list(cs)
    assert "Stanford PTBTokenizer" in r.settings["tokenizer"]
    fast = score_captions(REFS, RES, metrics=("bleu", "cider"), official=False)
    for k in ("Bleu_1", "Bleu_4", "CIDEr"):
        assert abs(fast.scores[k] - r.scores[k]) < 1e-6
    assert "CIDEr" in r.table() and r.to_json()["settings"]["path"] == "official"


def test_java_missing_skips_java_metrics_and_computes_the_rest(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))            # an empty folder: no java
    # METEOR then runs in Python; an empty paraphrase table spares a cold machine the table's
    # one-off conversion (tests/test_meteor_python.py checks the real table against the jar)
    monkeypatch.setattr("captionkit.metrics.meteor.scorer.paraphrases_for", lambda sentences: {})
    t = time.monotonic()
    r = score_captions(REFS, RES, metrics=("bleu", "meteor", "rouge", "cider", "spice"))
    assert time.monotonic() - t < 20
    assert set(r.scores) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    assert "Python" in r.settings["meteor"] and "meteor: captionkit METEOR" in r.table()
    assert "Java not found" in r.settings["skipped"]["spice"]
    assert any("java not found" in n for n in r.settings["notes"])
    r = score_captions(REFS, RES, metrics=("bleu", "meteor"), meteor="java")
    assert "Java not found" in r.settings["skipped"]["meteor"]
    assert "skipped meteor: Java not found" in r.table()


def test_meteor_that_never_answers_times_out(tmp_path):
    java = _fake_java(tmp_path, f"exec {shutil.which('sleep')} 600")
    gts = {"1": ["a dog"]}
    t = time.monotonic()
    with pytest.raises(official.MetricError, match="no answer within 2 s"):
        official.meteor(gts, {"1": ["a dog"]}, java=java, timeout=2)
    assert time.monotonic() - t < 10


def test_meteor_that_crashes_is_reported(tmp_path):
    java = _fake_java(tmp_path, "echo 'Exception in thread main java.lang.RuntimeException: boom' >&2; exit 1")
    with pytest.raises(official.MetricError, match="exited.*boom"):
        official.meteor({"1": ["a dog"]}, {"1": ["a dog"]}, java=java, timeout=30)


def test_meteor_failure_inside_score_captions_is_skipped_not_fatal(monkeypatch, tmp_path):
    java = _fake_java(tmp_path, f"exec {shutil.which('sleep')} 600")
    monkeypatch.setenv("PATH", os.path.dirname(java))
    r = score_captions(REFS, RES, metrics=("bleu", "meteor"), official=False, meteor_timeout=2,
                       meteor="java")
    assert "no answer within 2 s" in r.settings["skipped"]["meteor"]
    assert "Bleu_4" in r.scores


@needs_java
def test_spice_without_corenlp_is_skipped_with_reason():
    why = official.spice_missing(find_java())
    if why is None:
        pytest.skip("SPICE's CoreNLP jars are installed here")
    r = score_captions(REFS, RES, metrics=("bleu", "spice"), official=False)
    assert "CoreNLP" in r.settings["skipped"]["spice"] and "SPICE" not in r.scores


@needs_java
@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_and_survives_a_bad_caption():
    from pycocoevalcap.meteor.meteor import Meteor
    gts = ptb_tokenize(REFS, "java")
    res = ptb_tokenize({k: [v] for k, v in RES.items()}, "java")
    ours = official.meteor(gts, res, timeout=300)
    theirs = Meteor().compute_score(gts, res)
    assert ours[0] == theirs[0] and np.allclose(ours[1], theirs[1], atol=0)
    bad = dict(res, **{"1": ["a man\nriding"]})        # a raw newline breaks the protocol
    t = time.monotonic()
    with pytest.raises(official.MetricError):
        official.meteor(gts, bad, timeout=60)
    assert time.monotonic() - t < 90
    # through the public API the newline is cleaned and METEOR is computed
    r = score_captions(REFS, dict(RES, **{"1": "a man\nriding a wave"}), metrics=("meteor",))
    assert "METEOR" in r.scores
