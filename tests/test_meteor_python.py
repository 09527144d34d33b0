"""METEOR 1.5 in Python (captionkit.metrics.meteor) and the exact fast ROUGE-L.

Default tests need neither Java nor the paraphrase table (they pass small tables in); the ones that
compare with ``meteor-1.5.jar`` are slow (the JVM loads a 5 M-entry table) and skip without Java.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from captionkit.metrics import fast
from captionkit.metrics.meteor import Meteor, Stats, meteor_score, score
from captionkit.metrics.meteor.aligner import align, count_chunks
from captionkit.metrics.meteor.matchers import EXACT, PARAPHRASE, STEM, SYNONYM, Matchers, java_hash
from captionkit.metrics.meteor.normalise import normalize
from captionkit.metrics.meteor.scorer import ALPHA, BETA, DELTA, GAMMA
from captionkit.metrics.tokenize import find_java

needs_java = pytest.mark.skipif(find_java() is None, reason="Java not found on PATH: the jar cannot run")
COCO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco" / "captions_val2017.json"

# hand-made pairs, one per matching module: (hypothesis, reference, module that must be used)
MODULE_CASES = {
    "exact": ("a cat sits on a mat", "a cat sits on the mat", EXACT),
    "stem": ("a woman peeling apples", "a woman peels apples", STEM),
    "synonym": ("the slowly moving train", "the slow moving train", SYNONYM),
    "paraphrase": ("a dog in front of the house", "a dog before the house", PARAPHRASE),
}
SMALL_TABLE = {("in", "front", "of"): [("before",)], ("before",): [("in", "front", "of")]}


def _hand_score(tl, tf, rl, rf, m1c, m2c, chunks, m1f=0, m2f=0, w=1.0):
    """Lavie & Agarwal's formula with METEOR 1.5's English parameters, written out by hand."""
    p = w * (DELTA * m1c + (1 - DELTA) * m1f) / (DELTA * (tl - tf) + (1 - DELTA) * tf)
    r = w * (DELTA * m2c + (1 - DELTA) * m2f) / (DELTA * (rl - rf) + (1 - DELTA) * rf)
    fmean = p * r / (ALPHA * p + (1 - ALPHA) * r)
    frag = chunks / ((m1c + m1f + m2c + m2f) / 2)
    return fmean * (1 - GAMMA * frag ** BETA)


def _stats_of(hyp: str, ref: str, table=None) -> Stats:
    h, r = tuple(normalize(hyp).split()), tuple(normalize(ref).split())
    return Meteor([h, r], table or {}).stats(h, r)


def test_java_hash_is_string_hashcode():
    assert java_hash("hello") == 99162322
    assert java_hash("Aa") == java_hash("BB") == 2112          # a known Java collision
    assert java_hash("") == 0
    assert java_hash("\u00e9t\u00e9") == (0xE9 * 31 * 31 + ord("t") * 31 + 0xE9)


def test_normalise_matches_jar_outputs():
    # outputs of the jar's own Normalizer (java -cp meteor-1.5.jar edu.cmu.meteor.util.Normalizer en true)
    assert normalize("a t-shirt and a man's hat") == "a t shirt and a man 's hat"
    assert normalize("the dog is n't on 2,000 st. no. 5 mr. smith a.m. u.s. e.g. pm.") == \
        "the dog is n 't on 2,000 st. no . 5 mr. smith am us eg pm ."
    assert normalize("A   Plain  Caption 42 ") == "a plain caption 42"


def test_hand_computed_score_exact_only():
    # "a" and "the" are function words; dog and runs match exactly in one chunk
    s = _stats_of("a dog runs", "the dog runs fast")
    assert (s.test_len, s.test_func, s.ref_len, s.ref_func) == (3, 1, 4, 1)
    assert s.content1[EXACT] == s.content2[EXACT] == 2 and s.chunks == 1
    assert score(s) == pytest.approx(_hand_score(3, 1, 4, 1, 2, 2, 1), abs=1e-12)


def test_hand_computed_score_with_function_words_and_chunks():
    # "the" and "on" are function words; reference order the|cat|on mat -> 3 chunks
    s = _stats_of("cat the on mat", "the cat on mat")
    assert s.chunks == 3
    assert (s.content1[EXACT], s.func1[EXACT], s.test_func) == (2, 2, 2)
    assert score(s) == pytest.approx(_hand_score(4, 2, 4, 2, 2, 2, 3, 2, 2), abs=1e-12)


def test_perfect_match_scores_fmean_without_penalty():
    s = _stats_of("a man rides a horse", "a man rides a horse")
    assert s.perfect() and score(s) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["stem", "synonym"])
def test_each_module_is_used(name):
    hyp, ref, module = MODULE_CASES[name]
    s = _stats_of(hyp, ref)
    assert s.content1[module] >= 1
    assert sum(s.content1[k] for k in range(4) if k not in (EXACT, module)) == 0
    assert score(s) > _stats_of_exact_only(hyp, ref)


def _stats_of_exact_only(hyp, ref):
    h, r = tuple(normalize(hyp).split()), tuple(normalize(ref).split())
    m = Meteor([h, r], {})
    return score(_score_with(m, h, r, exact_only=True))


def _score_with(m, h, r, exact_only):
    st = m.matchers.stage(h, r, exact_only=exact_only)
    chosen = align(st)
    s = Stats(len(h), len(r), sum(w in m.function for w in h), sum(w in m.function for w in r))
    for a, ln, b, ml, mod, _, _ in chosen:
        for k in range(ml):
            (s.func1 if h[b + k] in m.function else s.content1)[mod] += 1
        for k in range(ln):
            (s.func2 if r[a + k] in m.function else s.content2)[mod] += 1
    s.chunks = count_chunks(chosen)
    return s


def test_paraphrase_match_spans_several_words():
    hyp, ref, _ = MODULE_CASES["paraphrase"]
    s = _stats_of(hyp, ref, SMALL_TABLE)
    # "in front of" (3 hypothesis words) <-> "before" (1 reference word)
    assert s.content1[PARAPHRASE] + s.func1[PARAPHRASE] == 3
    assert s.content2[PARAPHRASE] + s.func2[PARAPHRASE] == 1
    # every word is matched in one chunk: no fragmentation penalty, but paraphrases weigh 0.6
    assert s.chunks == 1 and s.perfect() and 0.5 < score(s) < 1.0


def test_search_tie_break_takes_first_candidate():
    # two exact candidates for the reference's "a": equal rank, the first (hypothesis word 0) wins
    m = Meteor([("a", "a"), ("a",)], {})
    chosen = align(m.matchers.stage(("a", "a"), ("a",)))
    assert [(c[0], c[2]) for c in chosen] == [(0, 0)]


def test_stemmer_uses_2010_rules():
    m = Matchers({})
    assert m.stem_key("running") == m.stem_key("run") == java_hash("run")
    assert m.stem_key("added") == java_hash("ad")          # Snowball 3 gives "add"; the jar "ad"


def test_corpus_score_aggregates_statistics_not_scores():
    gts = {"1": ["a dog runs in the park"], "2": ["a cat sleeps"], "3": ["two men play chess"]}
    res = {"1": ["a dog runs"], "2": ["a cat sleeps"], "3": ["men play"]}
    overall, per = meteor_score(gts, res, paraphrases={})
    assert overall != pytest.approx(float(np.mean(per)))
    m = Meteor([], {})
    total = Stats()
    for k in gts:
        s, v = m.best(tuple(res[k][0].split()), [tuple(r.split()) for r in gts[k]])
        assert v == pytest.approx(per[list(gts).index(k)])
        total.add(s)
    assert total.chunks == 2                       # the perfect one-chunk image adds no chunk
    assert overall == pytest.approx(score(total))


def test_best_reference_wins_and_is_order_free():
    gts = {"1": ["a cat", "a dog runs fast", "the dog runs"]}
    a, per_a = meteor_score(gts, {"1": ["the dog runs"]}, paraphrases={})
    b, per_b = meteor_score({"1": gts["1"][::-1]}, {"1": ["the dog runs"]}, paraphrases={})
    assert per_a == per_b and a == pytest.approx(1.0)


def test_best_reference_pruning_equals_scoring_every_reference():
    rng = random.Random(5)
    words = "a the man dog runs running on in front of before red car automobile two".split()
    m = Meteor([], SMALL_TABLE)
    for _ in range(150):
        hyp = tuple(rng.choice(words) for _ in range(rng.randint(1, 8)))
        refs = [tuple(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(4)]
        scores = []
        for r in refs:                                 # every reference aligned, in order
            st = m._stage(hyp, r)
            scores.append(score(m.stats(hyp, r, st)))
            assert m.upper_bound(hyp, r, st) >= scores[-1]
        s, v = m.best(hyp, refs)
        assert v == max(scores)
        assert s == m.stats(hyp, refs[scores.index(v)])   # the first of the best, as the jar


def test_parallel_workers_give_the_same_scores():
    rng = random.Random(3)
    words = "a the man dog runs running on in front of before red car automobile".split()
    gts = {str(i): [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(3)]
           for i in range(240)}
    res = {i: [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))] for i in gts}
    one = meteor_score(gts, res, paraphrases=SMALL_TABLE, workers=1)
    two = meteor_score(gts, res, paraphrases=SMALL_TABLE, workers=2)
    assert one == two


def test_rouge_l_fast_equals_pycocoevalcap():
    from pycocoevalcap.rouge.rouge import Rouge
    rng = random.Random(0)
    words = "a the man dog on in with red two sits".split()
    gts, res = {}, {}
    for i in range(300):
        gts[str(i)] = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
                       for _ in range(rng.randint(1, 5))]
        res[str(i)] = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))]
    gts["x"], res["x"] = ["a  b", ""], ["a b "]                # empty tokens count, as in coco-caption
    ref, ref_per = Rouge().compute_score(gts, res)
    got, per = fast.rouge_l(gts, {k: v[0] for k, v in res.items()})
    assert got == pytest.approx(ref, abs=1e-12)
    np.testing.assert_allclose(per, ref_per, atol=1e-12)


def _score_files(tmp_path, refs, res):
    anns = [{"image_id": int(i), "id": n, "caption": c} for n, (i, c) in
            enumerate((i, c) for i, caps in refs.items() for c in caps)]
    ref_file, res_file = tmp_path / "captions.json", tmp_path / "results.json"
    ref_file.write_text(json.dumps({"images": [{"id": int(i)} for i in refs], "annotations": anns}))
    res_file.write_text(json.dumps([{"image_id": int(i), "caption": c} for i, c in res.items()]))
    return ["score", "--results", str(res_file), "--references", str(ref_file)]


CLI_REFS = {"1": ["A man rides a horse on the beach.", "A person riding a horse."],
            "2": ["Two dogs play in the snow.", "Dogs playing outside in winter."]}
CLI_RES = {"1": "a man riding a horse", "2": "two dogs are playing in snow"}


def test_score_without_java_prints_all_four_and_skips_spice(monkeypatch, tmp_path, capsys):
    from captionkit.cli import main
    monkeypatch.setattr("captionkit.metrics.api.find_java", lambda: None)     # Java hidden
    monkeypatch.setattr("captionkit.metrics.meteor.scorer.paraphrases_for", lambda s: SMALL_TABLE)
    argv = _score_files(tmp_path, CLI_REFS, CLI_RES) + ["--metrics", "bleu,meteor,rouge,cider,spice"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for key in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert f"\n{key}" in "\n" + out, key
    assert "skipped spice: Java not found" in out
    assert "meteor: captionkit METEOR 1.5 (Python" in out
    assert main(argv + ["--meteor", "java"]) == 0                      # asked for the jar: skipped
    assert "skipped meteor: Java not found" in capsys.readouterr().out


@pytest.mark.slow
@needs_java
def test_score_meteor_python_equals_java_through_the_cli(tmp_path, capsys):
    from captionkit.cli import main
    argv = _score_files(tmp_path, CLI_REFS, CLI_RES) + ["--metrics", "meteor", "--json"]
    scores = {}
    for which in ("python", "java"):
        assert main(argv + ["--meteor", which]) == 0
        out = json.loads(capsys.readouterr().out)
        assert which.capitalize() in out["settings"]["meteor"]
        scores[which] = out["METEOR"]
    assert scores["python"] == pytest.approx(scores["java"], abs=1e-9)


# ------------------------------------------------------------------ against the jar (Java needed)

@pytest.mark.slow
@needs_java
def test_each_module_against_the_jar():
    from captionkit.metrics import official
    gts = {k: [ref] for k, (hyp, ref, _) in MODULE_CASES.items()}
    res = {k: [hyp] for k, (hyp, ref, _) in MODULE_CASES.items()}
    jar, jar_per = official.meteor(gts, res)
    ours, per = meteor_score(gts, res)
    assert ours == pytest.approx(jar, abs=1e-9)
    np.testing.assert_allclose(per, jar_per, atol=1e-9)
    for k, (hyp, ref, module) in MODULE_CASES.items():      # and the module that made the match
        m = Meteor([tuple(hyp.split()), tuple(ref.split())])
        s = m.stats(tuple(hyp.split()), tuple(ref.split()))
        assert s.content1[module] + s.func1[module] >= 1, k


@pytest.mark.slow
@pytest.mark.data
@needs_java
def test_coco_subset_equals_the_jar():
    if not COCO.is_file():
        pytest.skip(f"COCO captions not found at {COCO}")
    from captionkit.metrics import official
    from captionkit.metrics.tokenize import ptb_tokenize
    refs: dict[str, list[str]] = {}
    for a in json.loads(COCO.read_text())["annotations"]:
        refs.setdefault(str(a["image_id"]), []).append(a["caption"])
    ids = list(refs)[:150]
    rng = random.Random(1)
    res = {i: " ".join(w for w in rng.choice(refs[rng.choice(ids)]).split() if rng.random() > 0.2)
           for i in ids}
    gts = ptb_tokenize({i: refs[i] for i in ids}, "python")
    hyp = ptb_tokenize({i: [res[i]] for i in ids}, "python")
    jar, jar_per = official.meteor(gts, hyp)
    ours, per = meteor_score(gts, hyp)
    assert ours == pytest.approx(jar, abs=1e-6)
    np.testing.assert_allclose(per, jar_per, atol=1e-6)
