"""Activity recognition: models (single frame, LRCN; frozen / end to end), the task's loss and
validation, late fusion, recipes, evaluation output, RNN-FV video pooling, and LRCN against the
single-frame baseline on a tiny order-dependent synthetic set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from captionkit.data.synth_video import order_pairs
from captionkit.metrics.classification import direction_accuracy
from captionkit.encoders import EncoderConfig, build_image_encoder
from captionkit.errors import UserError
from captionkit.models.activity import ActivityModelConfig, ActivityRecognizer, clip_probabilities, late_fusion
from captionkit.tasks import config_from_dict, load_task
from captionkit.tasks.activity import ActivityConfig, ActivityTask
from captionkit.train import fit

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*activity*.toml")) + \
    sorted((Path(__file__).resolve().parents[1] / "recipes").glob("ucf101_*.toml"))


def tiny_model(kind: str, finetune: bool = True, K: int = 5) -> ActivityRecognizer:
    enc = build_image_encoder(EncoderConfig(name="tiny", image_size=16, finetune=finetune))
    return ActivityRecognizer(ActivityModelConfig(kind=kind, dropout=0.9), enc, K, hidden=12)


@pytest.mark.parametrize("kind", ["lrcn", "single"])
@pytest.mark.parametrize("finetune", [True, False])
def test_model_forward_backward(kind, finetune):
    torch.manual_seed(0)
    model = tiny_model(kind, finetune)
    clips = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    logits = model(clips)
    assert logits.shape == (2, 4, 5)
    logits.sum().backward()
    cnn_grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in cnn_grads) == finetune
    assert all(g is None for g in cnn_grads) == (not finetune)
    assert model.classifier.weight.grad is not None
    model.eval()
    p = clip_probabilities(model, clips)
    assert p.shape == (5,) and abs(p.sum().item() - 1) < 1e-5


def test_single_frame_ignores_order_lrcn_does_not():
    torch.manual_seed(0)
    clips = torch.randint(0, 256, (1, 6, 3, 16, 16), dtype=torch.uint8)
    for kind, order_free in (("single", True), ("lrcn", False)):
        model = tiny_model(kind).eval()
        p, q = clip_probabilities(model, clips), clip_probabilities(model, clips.flip(1))
        assert torch.allclose(p, q, atol=1e-6) == order_free, kind


def test_late_fusion_weights():
    p_rgb, p_flow = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    assert late_fusion(p_rgb, p_flow).tolist() == [0.5, 0.0, 0.5]
    third = late_fusion(p_rgb, p_flow, 1 / 3)
    assert torch.allclose(third, torch.tensor([1 / 3, 0.0, 2 / 3]))
    with pytest.raises(ValueError):
        late_fusion(p_rgb, p_flow, 1.5)


def test_default_hidden_sizes_follow_the_paper():
    from captionkit.models.activity import default_hidden
    assert default_hidden("rgb") == 256 and default_hidden("flow") == 1024


def test_config_errors_are_user_errors():
    with pytest.raises(UserError, match="modality"):
        config_from_dict({"task": "activity", "data": {"modality": "depth"}})
    with pytest.raises(UserError, match="frame_size"):
        config_from_dict({"task": "activity", "data": {"frame_size": [32, 32]}, "encoder": {"image_size": 64}})
    with pytest.raises(UserError, match="unknown key"):
        config_from_dict({"task": "activity", "model": {"layers": 2}})
    with pytest.raises(UserError, match="data.root"):
        load_task(data={"task": "activity"}).setup()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(recipe):
    task = load_task(recipe)
    assert isinstance(task, ActivityTask) and isinstance(task.cfg, ActivityConfig)


def test_ucf101_recipes_cover_table1():
    names = {p.name for p in RECIPES}
    for row in ("ucf101_single_rgb.toml", "ucf101_single_flow.toml", "ucf101_lrcn_rgb.toml", "ucf101_lrcn_flow.toml"):
        assert row in names
    flow = load_task(Path(RECIPES[0]).parent / "ucf101_lrcn_flow.toml").cfg
    assert flow.data.modality == "flow" and flow.model.kind == "lrcn"


def test_direction_accuracy_and_pairs():
    classes = ["MoveRight", "MoveLeft", "Grow", "Shrink", "Other"]
    pairs = order_pairs(classes)
    assert pairs == [(0, 1), (2, 3)]
    probs = torch.tensor([[0.6, 0.4, 0, 0, 0], [0.6, 0.4, 0, 0, 0], [0, 0, 0.1, 0.2, 0.7], [0, 0, 0, 0, 1.0]])
    assert direction_accuracy(probs, torch.tensor([0, 1, 2, 4]), pairs) == pytest.approx(1 / 3)


# ----------------------------------------------------------------------------- training on synthetic videos

TINY = {"synth": {"pairs": 2, "train_per_class": 24, "test_per_class": 8, "frames": 12, "size": 20},
        "frame_size": [20, 20], "clip_len": 8, "stride": 4, "mirror": False, "progress": False}


def tiny_task(tmp: Path, kind: str, epochs: int, **train) -> ActivityTask:
    data = {**TINY, "synthetic": True, "root": str(tmp / "videos"), "cache_dir": str(tmp / "cache")}
    return load_task(data={"task": "activity", "data": data,
                           "encoder": {"name": "tiny", "image_size": 20, "finetune": True},
                           "model": {"kind": kind, "hidden": 64, "dropout": 0.2},
                           "train": {"out_dir": str(tmp / kind), "epochs": epochs, "batch_size": 8, "lr": 2e-3,
                                     "progress": False, "device": "cpu", **train}})


def eval_ckpt(ckpt_path: str, out: Path, capsys) -> dict:
    from captionkit.cli import main

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt_path), "--split", "test", "--out", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # --json: stdout is one JSON object and nothing else


def test_smoke_train_evaluate_resume(tmp_path, capsys):
    torch.manual_seed(0)
    summary = fit(tiny_task(tmp_path, "lrcn", 1, max_steps_per_epoch=2))
    scores = eval_ckpt(summary["best_checkpoint"], tmp_path / "eval", capsys)
    assert scores["videos"] == 32 and len(scores["confusion"]) == 4
    assert Path(scores["confusion_png"]).is_file() and Path(scores["confusion_png"]).stat().st_size > 200
    assert 0.0 <= scores["direction_accuracy"] <= 1.0
    task = tiny_task(tmp_path, "lrcn", 2, max_steps_per_epoch=2)
    assert fit(task, resume=True)["epochs"] == 2


@pytest.mark.slow
def test_lrcn_reads_order_single_frame_cannot(tmp_path, capsys):
    """Tiny synthetic set (2 time-reversed pairs): LRCN >= 0.9 video accuracy; single frame at chance
    inside the pairs (it still finds the pair)."""
    results = {}
    for kind in ("lrcn", "single"):
        torch.manual_seed(0)
        summary = fit(tiny_task(tmp_path, kind, 12))
        results[kind] = eval_ckpt(summary["best_checkpoint"], tmp_path / f"eval_{kind}", capsys)
    print({k: (v["accuracy"], v["direction_accuracy"]) for k, v in results.items()})
    assert results["lrcn"]["accuracy"] >= 0.9 and results["lrcn"]["direction_accuracy"] >= 0.9
    assert 0.25 <= results["single"]["direction_accuracy"] <= 0.75
    pair_acc = sum(results["single"]["confusion"][i][j] for i in range(4) for j in range(4) if i // 2 == j // 2) / 32
    assert pair_acc >= 0.9


# ----------------------------------------------------------------------------- RNN-FV video pooling

def ramp_sequences(n: int, seed: int):
    """Order-only classes: class 1 is class 0 played backwards (a ramp along a fixed direction)."""
    g = torch.Generator().manual_seed(seed)
    seqs, labels = [], []
    for i in range(n):
        T = int(torch.randint(10, 16, (1,), generator=g))
        base = torch.randn(8, generator=g) * 0.3
        s = torch.linspace(-1, 1, T)[:, None] * torch.tensor([1.0, -1, 0.5, 0, 0, 0, 0, 0]) + base
        s = s + 0.1 * torch.randn(T, 8, generator=g)
        seqs.append(s.flip(0) if i % 2 else s)
        labels.append(i % 2)
    return seqs, torch.tensor(labels)


def test_rnn_fv_pooling_sees_order_mean_pooling_does_not():
    from captionkit.fisher.video import VideoFisherConfig, compare_pooling

    torch.manual_seed(0)
    train, ytr = ramp_sequences(60, 0)
    test, yte = ramp_sequences(40, 1)
    cfg = VideoFisherConfig(hidden=16, lm_epochs=10, pca_dim=0, clf_epochs=100)
    acc = compare_pooling(train, ytr, test, yte, 2, cfg, log=lambda *a: None)
    assert acc["mean"] <= 0.65  # order-free pooling: chance on time-reversed classes
    assert acc["rnn_fv"] >= acc["mean"] + 0.15


def test_video_fisher_script_compares_poolings_on_a_checkpoint(tmp_path, capsys):
    """eval/video_fisher.py: a trained activity checkpoint's frame features, mean vs RNN-FV pooling;
    a captioner checkpoint is the one-line wrong-task error."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("video_fisher", Path(__file__).parents[1] / "eval" / "video_fisher.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    torch.manual_seed(0)
    summary = fit(tiny_task(tmp_path, "single", 1, max_steps_per_epoch=2))
    out = tmp_path / "vf.json"
    assert script.main(["--checkpoint", summary["best_checkpoint"], "--hidden", "8", "--lm-epochs", "2",
                        "--pca", "0", "--clf-epochs", "20", "--out", str(out)]) == 0
    acc = json.loads(out.read_text())["accuracy"]
    assert set(acc) == {"mean", "rnn_fv"} and all(0.0 <= v <= 1.0 for v in acc.values())
    from captionkit import checkpoint
    ckpt = checkpoint.load(summary["best_checkpoint"])
    ckpt["task"] = "caption"
    checkpoint.save_atomic(ckpt, tmp_path / "wrong.pt")
    capsys.readouterr()
    assert script.main(["--checkpoint", str(tmp_path / "wrong.pt")]) == 2
    assert "'caption' checkpoint; expected an activity recogniser" in capsys.readouterr().err
