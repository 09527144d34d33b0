"""Video description from CRF tuples (LRCN section 6): extractor, CRF noise model, tuple files,
the three architectures (overfit through fit() and the shared decoders) and the recipes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from captionkit.data import tacos, tacos_rules
from captionkit.data.tuples import NONE, OTHER, SLOTS, Segment, TupleSet, load_tacos_multilevel, load_tuples, \
    save_tuples
from captionkit.decoding import DecodeConfig
from captionkit.errors import UserError
from captionkit.models.describer import DescriberConfig, build_describer

ROOT = Path(__file__).resolve().parents[1]
TACOS = ROOT.parent / "shared" / "data" / "tacos"


# ----------------------------------------------------------------------------- extractor

@pytest.mark.parametrize("sentence, expected", [
    ("He took out cutting board", {"activity": "take out", "object": "cutting board"}),
    ("The person takes out a knife from the drawer.",
     {"activity": "take out", "object": "knife", "source": "drawer"}),
    ("The person takes a knife out of the drawer.",
     {"activity": "take out", "object": "knife", "source": "drawer"}),
    ("She peels the potato with a peeler.", {"activity": "peel", "object": "potato", "tool": "peeler"}),
    ("He put cucumbers on plate", {"activity": "put", "object": "cucumber", "target": "plate"}),
    ("The person throws the peels into the wastebin.",
     {"activity": "throw", "object": "peel", "target": "wastebin"}),
    ("Cut off ends of cucumbers", {"activity": "cut off", "object": "cucumber"}),
    ("The person cuts the lime in half.", {"activity": "cut", "object": "lime"}),
    ("He turned on stove", {"activity": "turn on", "object": "stove"}),
    ("The person begins to slice the bread.", {"activity": "slice", "object": "bread"}),
    ("Cauliflower is removed from the cabinet.",
     {"activity": "remove", "object": "cauliflower", "source": "cabinet"}),
    ("Using the knife, slice the vegetables thinly into the bowl.",
     {"activity": "slice", "tool": "knife", "object": "vegetable", "target": "bowl"}),
    ("The woman peels and slices the second plum.", {"activity": "peel", "object": "plum"}),
    ("He washed hands", {"activity": "wash", "object": "hand"}),
    ("She chopped the knives' leaves", {"activity": "chop", "object": "leaf"}),
])
def test_extractor(sentence, expected):
    got = tacos_rules.extract_tuple(sentence)
    assert got == {s: expected.get(s, NONE) for s in SLOTS}


def test_lemmatisers():
    assert [tacos_rules.verb_lemma(w) for w in ("took", "chopped", "slices", "placed", "cutting", "carries")] == \
        ["take", "chop", "slice", "place", "cut", None]
    assert [tacos_rules.noun_lemma(w) for w in ("potatoes", "knives", "berries", "dishes", "glass", "cucumbers")] == \
        ["potato", "knife", "berry", "dish", "glass", "cucumber"]


# ----------------------------------------------------------------------------- noise model

def test_noise_model_calibrated_and_plausible():
    labels = [NONE, OTHER, "cucumber", "zucchini", "knife", "peeler", "plate", "bowl", "onion", "egg"]
    prior = np.array([30, 2, 10, 3, 10, 4, 8, 6, 5, 5], dtype=float)
    rng = np.random.default_rng(0)
    gold = rng.choice(len(labels), size=20000, p=prior / prior.sum())
    p = tacos.CRFNoise(labels, prior, noise=1.0)(gold, rng)              # (N, K)
    assert np.allclose(p.sum(1), 1.0, atol=1e-6)
    pred = p.argmax(1)
    acc, conf = (pred == gold).mean(), p.max(1).mean()
    assert 0.4 < acc < 0.95
    assert abs(acc - conf) < 0.02                                          # calibrated overall
    for lo, hi in ((0.0, 0.5), (0.5, 0.8), (0.8, 1.01)):                    # and per confidence bin
        m = (p.max(1) >= lo) & (p.max(1) < hi)
        assert abs((pred[m] == gold[m]).mean() - p.max(1)[m].mean()) < 0.04
    wrong = pred[(gold == labels.index("cucumber")) & (pred != gold)]
    assert np.bincount(wrong, minlength=len(labels)).argmax() == labels.index("zucchini")
    # more noise, lower accuracy
    p2 = tacos.CRFNoise(labels, prior, noise=2.0)(gold, np.random.default_rng(1))
    assert (p2.argmax(1) == gold).mean() < acc


def test_confusion_groups_match_multiword_labels():
    groups = tacos._confusion_groups(["take out", "get", "cutting board", "plate", "x"])
    assert ["take out", "get"] in groups and ["cutting board", "plate"] in groups


def test_group_segments_merges_overlapping_annotators():
    rows = [("v1", 0.0, 10.0, "He took out knife"), ("v1", 1.0, 10.0, "The person gets a knife."),
            ("v1", 20.0, 30.0, "He washed cucumber"), ("v2", 0.0, 10.0, "He took out knife")]
    segs = tacos.group_segments(rows)
    assert sorted(len(s.sentences) for s in segs) == [1, 1, 2]
    merged = next(s for s in segs if len(s.sentences) == 2)
    assert merged.gold["object"] == "knife" and merged.gold["activity"] == "take out"


# ----------------------------------------------------------------------------- tuple files

def _tiny_set(with_probs: bool = True) -> TupleSet:
    labels = {"activity": [NONE, OTHER, "take out", "cut", "wash", "put"],
              "tool": [NONE, OTHER, "knife"],
              "object": [NONE, OTHER, "knife", "cucumber", "hand", "plate"],
              "source": [NONE, OTHER, "drawer"],
              "target": [NONE, OTHER, "counter"]}
    rows = [(("take out", NONE, "knife", "drawer", NONE), "he takes out a knife from the drawer"),
            (("cut", "knife", "cucumber", NONE, NONE), "she cuts the cucumber with a knife"),
            (("wash", NONE, "hand", NONE, NONE), "he washes his hands"),
            (("put", NONE, "plate", NONE, "counter"), "the person puts the plate on the counter")]
    segs = []
    for n, (tup, sent) in enumerate(rows):
        t = dict(zip(SLOTS, tup))
        probs = {}
        if with_probs:
            for s in SLOTS:
                p = np.full(len(labels[s]), 0.2 / (len(labels[s]) - 1), dtype=np.float32)
                p[labels[s].index(t[s])] = 0.8
                probs[s] = p
        segs.append(Segment(id=f"v/{n}", tuple=t, sentences=[sent], probs=probs, gold=dict(t)))
    return TupleSet(SLOTS, labels, segs)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_tuple_file_round_trip(tmp_path, suffix):
    ts = _tiny_set()
    save_tuples(ts, tmp_path / f"t{suffix}")
    back = load_tuples(tmp_path / f"t{suffix}")
    assert back.labels == ts.labels and len(back.segments) == 4
    for a, b in zip(ts.segments, back.segments):
        assert a.tuple == b.tuple and a.sentences == b.sentences and a.gold == b.gold
        for s in SLOTS:
            assert np.allclose(a.probs[s], b.probs[s], atol=2e-3)
    assert back.prob_vector(back.segments[0]).shape == (sum(back.sizes()),)


def _write(tmp_path, obj, name="t.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


HEADER = {"format": "captionkit-tuples/1", "slots": ["activity", "object"],
          "labels": {"activity": [NONE, "cut"], "object": [NONE, "lime", "lemon"]}}


@pytest.mark.parametrize("segment, message", [
    ({"sentences": []}, "no field 'tuple'"),
    ({"tuple": {"activity": "chop"}}, "segments[0]: field 'tuple.activity': label 'chop' is not in labels.activity"),
    ({"tuple": {"object": 3}}, "field 'tuple.object' must be a string"),
    ({"tuple": {}, "probs": {"object": [0.5, 0.5]}}, "field 'probs.object' must hold 3 numbers"),
    ({"tuple": {}, "probs": {"object": [0.5, 0.4, 0.4]}}, "field 'probs.object' sums to 1.3000, not 1"),
    ({"tuple": {}, "probs": {"object": {"lime": 0.7, "mango": 0.1}}}, "label 'mango' is not in labels.object"),
    ({"tuple": {}, "probs": {"color": [1.0]}}, "field 'probs.color': unknown slot"),
    ({"tuple": {}, "sentences": "a lime"}, "field 'sentences' must be a list of strings"),
])
def test_tuple_file_errors(tmp_path, segment, message):
    path = _write(tmp_path, HEADER | {"segments": [segment]})
    with pytest.raises(UserError, match="t.json") as e:
        load_tuples(path)
    assert message in str(e.value)


def test_tuple_file_header_and_jsonl_line_errors(tmp_path):
    with pytest.raises(UserError, match="field 'format'"):
        load_tuples(_write(tmp_path, HEADER | {"format": "x", "segments": []}))
    with pytest.raises(UserError, match="must contain '<none>'"):
        load_tuples(_write(tmp_path, HEADER | {"labels": {"activity": ["cut"], "object": [NONE]}, "segments": []}))
    lines = [json.dumps(HEADER), json.dumps({"tuple": {"activity": "cut"}}), "{not json"]
    with pytest.raises(UserError, match=r"t\.jsonl:3: not valid JSON"):
        load_tuples(_write(tmp_path, "\n".join(lines), "t.jsonl"))
    lines[2] = json.dumps({"tuple": {"activity": "peel"}})
    with pytest.raises(UserError, match=r"t\.jsonl:3: field 'tuple.activity'"):
        load_tuples(_write(tmp_path, "\n".join(lines), "t.jsonl"))
    with pytest.raises(UserError, match="tuple file not found"):
        load_tuples(tmp_path / "missing.json")


def test_sparse_probs_spread_the_rest(tmp_path):
    seg = {"tuple": {"object": "lime"}, "probs": {"object": {"lime": 0.6, "lemon": 0.3}}}
    ts = load_tuples(_write(tmp_path, HEADER | {"segments": [seg]}))
    assert np.allclose(ts.segments[0].probs["object"], [0.1, 0.6, 0.3])
    assert np.allclose(ts.prob_vector(ts.segments[0]), [1, 0, 0.1, 0.6, 0.3])  # activity: one-hot of <none>


def test_tacos_multilevel_layout(tmp_path):
    rows = ["video\tstart\tend\tactivity\ttool\tobject\tsource\ttarget\tsentence",
            "s1\t10\t50\tcut\tknife\tcucumber\t\t\tHe cuts the cucumber.",
            "s1\t10\t50\tcut\tknife\tcucumber\t\t\tThe person slices a cucumber.",
            "s1\t60\t90\twash\t\thand\t\t\tHe washes his hands."]
    (tmp_path / "test.tsv").write_text("\n".join(rows) + "\n")
    probs = {"video": "s1", "start": 10, "end": 50, "probs": {"object": {"cucumber": 0.9}}}
    (tmp_path / "test.probs.jsonl").write_text(json.dumps(probs) + "\n")
    ts = load_tacos_multilevel(tmp_path, "test")
    assert [len(s.sentences) for s in ts.segments] == [2, 1]
    assert ts.segments[0].tuple["tool"] == "knife" and ts.segments[1].tuple["tool"] == NONE
    assert ts.segments[0].probs["object"][ts.labels["object"].index("cucumber")] == pytest.approx(0.9)
    (tmp_path / "bad.tsv").write_text(rows[0] + "\ns1\t1\t2\tcut\n")
    with pytest.raises(UserError, match=r"bad.tsv:2: expected 9 columns"):
        load_tacos_multilevel(tmp_path, "bad")


# ----------------------------------------------------------------------------- architectures

@pytest.mark.parametrize("arch, proj, init", [("a", 0, False), ("b", 0, False), ("c", 0, False),
                                               ("b", 12, False), ("c", 12, False), ("b", 12, True), ("c", 12, True)])
@pytest.mark.parametrize("unit", ["lstm", "rnn"])
def test_step_agrees_with_forward(arch, unit, proj, init):
    torch.manual_seed(0)
    sizes = [6, 3, 6, 3, 3]
    cfg = DescriberConfig(arch=arch, unit=unit, hidden=16, embed=8, dropout=0.0, tuple_proj=proj, tuple_init=init)
    model = build_describer(cfg, sizes, 11).eval()
    labels = torch.tensor([[2, 0, 3, 1, 0], [4, 2, 5, 0, 2]])
    probs = torch.softmax(torch.randn(2, sum(sizes)), -1)
    tokens = torch.randint(1, 11, (2, 5))
    full = torch.log_softmax(model(tokens, labels, probs), -1)  # (B, T, V)
    state = model.init_state(labels, probs)
    for t in range(tokens.size(1)):
        logp, state = model.step(tokens[:, t], state)
        assert torch.allclose(logp, full[:, t], atol=1e-5)


def test_tuple_projection_config():
    sizes = [6, 3, 6, 3, 3]
    model = build_describer(DescriberConfig(arch="b", hidden=16, embed=8, tuple_proj=12, tuple_init=True), sizes, 11)
    assert model.core.visual_dim == 12 and model.proj.in_features == sum(sizes)
    assert model.init_proj.out_features == 2 * 2 * 16          # (h, c) for each of the two layers
    assert build_describer(DescriberConfig(arch="c", hidden=16, embed=8), sizes, 11).core.visual_dim == sum(sizes)
    with pytest.raises(ValueError, match="tuple_init needs"):
        DescriberConfig(arch="b", tuple_init=True)
    with pytest.raises(ValueError, match="tuple_proj"):
        DescriberConfig(arch="b", tuple_proj=-1)
    # the projected tuple changes the very first word's distribution (the state starts from the tuple)
    model.eval()
    labels = torch.tensor([[2, 0, 3, 1, 0], [4, 2, 5, 0, 2]])
    logp, _ = model.step(torch.ones(2, dtype=torch.long), model.init_state(labels, None))
    assert not torch.allclose(logp[0], logp[1])


@pytest.mark.parametrize("arch, proj", [("a", {}), ("b", {}), ("c", {}),
                                        ("b", {"tuple_proj": 32, "tuple_init": True}),
                                        ("c", {"tuple_proj": 32, "tuple_init": True})])
def test_architecture_overfits_tiny_tuples(tmp_path, capsys, arch, proj):
    """fit() on four tuples, then greedy and beam decoding reproduce every sentence exactly."""
    from captionkit.checkpoint import load
    from captionkit.tasks import load_task
    from captionkit.tasks.loading import load_trained
    from captionkit.tasks.describe import describe_segments, encode_tuples
    from captionkit.train import fit

    ts = _tiny_set()
    save_tuples(ts, tmp_path / "tiny.json")
    data = str(tmp_path / "tiny.json")
    for seg in ts.segments:   # 8 copies of each pair: 8 steps per epoch, so few (fsynced) checkpoints
        seg.sentences = seg.sentences * 8
    save_tuples(ts, tmp_path / "train.json")
    task = load_task(data={
        "task": "describe", "data": {"train": str(tmp_path / "train.json"), "val": data, "min_count": 1},
        "model": {"arch": arch, "hidden": 48, "embed": 24, "dropout": 0.0, **proj},
        "train": {"out_dir": str(tmp_path / "run"), "epochs": 20 if proj else 15, "batch_size": 4, "lr": 1e-2,
                  "val_every": 20 if proj else 5, "progress": False, "seed": 0}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny matrices: one thread is fastest, and the CPU is shared
    try:
        summary = fit(task)
    finally:
        torch.set_num_threads(threads)
    assert summary["best"] == pytest.approx(100.0)
    trained, model = load_trained(load(summary["best_checkpoint"]))
    labels, probs = encode_tuples(load_tuples(data), trained.slots, trained.labels)
    for cfg in (DecodeConfig(), DecodeConfig(method="beam", beam_size=3)):
        hyps = describe_segments(model, labels, probs, trained.vocab, cfg)
        assert [h[0][0] for h in hyps] == [s.sentences[0] for s in load_tuples(data).segments]
    if arch == "c" and not proj:   # the command line: one "id<TAB>sentence" line per segment
        from captionkit.cli import main

        assert main(["describe", "--checkpoint", summary["best_checkpoint"], "--tuples", data, "--beam", "2"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()[-4:]
        assert lines == [f"{s.id}\t{s.sentences[0]}" for s in load_tuples(data).segments]
        assert main(["describe", "--checkpoint", summary["best_checkpoint"], "--tuples", str(tmp_path / "x.json")]) == 2
        assert main(["evaluate", "--checkpoint", summary["best_checkpoint"], "--split", "val", "--fast",
                     "--out", str(tmp_path / "eval")]) == 0
        scores = json.loads((tmp_path / "eval" / "scores_val_greedy.json").read_text())["scores"]
        assert scores["BLEU4_sacrebleu"] == pytest.approx(100.0) and scores["Bleu_4"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- recipes

@pytest.mark.parametrize("name", ["tacos_a", "tacos_b", "tacos_c"])
def test_recipe_loads(name):
    from captionkit.tasks import load_task

    task = load_task(ROOT / "recipes" / f"{name}.toml")
    assert task.name == "describe" and task.cfg.model.arch == name[-1]
    assert task.cfg.model.variant == "2u" and task.cfg.model.unit == "lstm"


# ----------------------------------------------------------------------------- the real benchmark

@pytest.mark.data
def test_tacos_benchmark_build():
    if not (TACOS / "train.json").is_file():
        pytest.skip(f"TACoS sentences not found at {TACOS}")
    sets = tacos.build_benchmark(TACOS, noise=1.0, seed=0)
    videos = {k: {s.video for s in v.segments} for k, v in sets.items()}
    assert not (videos["train"] & videos["test"]) and not (videos["train"] & videos["val"])
    assert sum(len(s.sentences) for s in sets["train"].segments) == 9790
    for split in ("train", "test"):
        for slot, st in tacos.slot_accuracy(sets[split]).items():
            assert abs(st["accuracy"] - st["confidence"]) < 0.03, (split, slot, st)
