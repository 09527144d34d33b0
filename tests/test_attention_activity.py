"""Soft-attention action recognition (Sharma et al.): forward == step by step for every model, Eq. 7's
penalty through the task's loss on hand-made weights, the baselines' defining properties, window
voting, the dataset readers on hand-made folders, the where-matters synthetic set, the map numbers,
and a tiny train / evaluate / classify --attention round trip through the CLI."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from captionkit.attention_maps import box_share, motion_stats, pixel_map
from captionkit.data.action_sets import read_hmdb51, read_hollywood2, read_ucf11
from captionkit.data.synth_attention import CLASSES, SynthAttentionSpec, read_boxes, render_video, write_synth_attention
from captionkit.errors import UserError
from captionkit.models.attention_activity import AttentionActivity, AttentionActivityConfig, window_scores
from captionkit.tasks import load_task
from captionkit.tasks.attention_activity import average_precision, label_target, predict_grid

VARIANTS = [("attention", "location"), ("attention", "content"), ("avg_lstm", "location"),
            ("max_lstm", "location"), ("softmax", "location")]


def tiny_model(kind="attention", attention="location", layers=2, P=9, D=6, C=3, **kw):
    torch.manual_seed(0)
    cfg = AttentionActivityConfig(kind=kind, attention=attention, hidden=8, layers=layers, att_dim=5, **kw)
    return AttentionActivity(cfg, feature_dim=D, positions=P, num_classes=C).eval()


# ----------------------------------------------------------------------------- the models

@pytest.mark.parametrize("kind,attention", VARIANTS)
def test_forward_equals_step_by_step(kind, attention):
    model = tiny_model(kind, attention, layers=3)
    grids = torch.randn(4, 5, 9, 6)  # (B, T, P, D)
    with torch.no_grad():
        logits, weights = model(grids)
        state = model.init_state(grids) if kind != "softmax" else None
        steps, step_w = [], []
        for t in range(5):
            lt, state, wt = model.step(grids[:, t], state)
            steps.append(lt)
            step_w.append(wt)
    assert logits.shape == (4, 5, 3)
    assert torch.allclose(logits, torch.stack(steps, 1), atol=1e-5)
    if kind == "attention":
        assert weights.shape == (4, 5, 9) and torch.allclose(weights, torch.stack(step_w, 1), atol=1e-6)
        assert torch.allclose(weights.sum(-1), torch.ones(4, 5))
    else:
        assert weights is None and step_w[0] is None


@pytest.mark.parametrize("kind,attention", VARIANTS)
def test_every_variant_trains(kind, attention):
    model = tiny_model(kind, attention).train()
    logits, _ = model(torch.randn(2, 4, 9, 6))
    logits.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad), kind


def test_location_attention_first_step_depends_only_on_the_clip_mean():
    # Eq. 4 + Eq. 6: l_1 comes from h_0 = f_init(mean of X over frames and positions)
    model = tiny_model("attention", "location")
    grids = torch.randn(1, 5, 9, 6)
    with torch.no_grad():
        w1 = model(grids)[1][:, 0]
        w2 = model(grids.flip(1))[1][:, 0]  # same frames in reverse order: same mean
        w3 = model(grids + 1.0)[1][:, 0]
    assert torch.allclose(w1, w2, atol=1e-6) and not torch.allclose(w1, w3, atol=1e-4)


def test_baselines_on_tiny_inputs():
    grids = torch.randn(2, 4, 9, 6)
    perm = torch.randperm(9)
    avg, mx, soft = tiny_model("avg_lstm"), tiny_model("max_lstm"), tiny_model("softmax")
    with torch.no_grad():
        # pooled LSTMs do not see where things are: shuffling the positions changes nothing
        for m in (avg, mx):
            assert torch.allclose(m(grids)[0], m(grids[:, :, perm])[0], atol=1e-5)
        # the softmax regression sees the whole cube (positions matter) and each frame alone
        assert not torch.allclose(soft(grids)[0], soft(grids[:, :, perm])[0], atol=1e-4)
        other = grids.clone()
        other[:, 3] = 0.0
        assert torch.allclose(soft(grids)[0][:, :3], soft(other)[0][:, :3]) and not torch.allclose(
            soft(grids)[0][:, 3], soft(other)[0][:, 3])
        # with every slice equal, the average and the maximum of the slices coincide
        mx.load_state_dict(avg.state_dict())
        flat = grids[:, :, :1].expand(-1, -1, 9, -1)
        assert torch.allclose(avg(flat)[0], mx(flat)[0], atol=1e-6)
        # the softmax regression is one linear map of the flattened cube
        x = grids[0, 0].flatten()
        assert torch.allclose(soft(grids)[0][0, 0], soft.classifier.weight @ x + soft.classifier.bias, atol=1e-5)


class FixedModel(nn.Module):
    """Returns hand-made per-step logits and attention weights whatever the input."""

    def __init__(self, logits, weights):
        super().__init__()
        self.logits, self.weights = logits, weights

    def forward(self, grids):
        return self.logits, self.weights


def synth_task(tmp_path, **model):
    return load_task(data={"task": "attention_activity", "data": {"synthetic": True, "root": str(tmp_path)},
                           "encoder": {"name": "mobilenet_v2", "pool": "grid", "image_size": 32},
                           "model": model})


@pytest.mark.parametrize("penalty", [0.0, 1.0, 10.0])
def test_loss_is_cross_entropy_plus_lambda_times_the_penalty(tmp_path, penalty):
    task = synth_task(tmp_path, penalty=penalty)
    # two windows, two steps, three positions; window 1: column sums (1, 0.5, 0.5) -> penalty 0.5;
    # window 2 attends to position 0 twice: (2, 0, 0) -> 1 + 1 + 1 = 3
    w = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 3.0]]])  # (B=2, T=2, C=2)
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ce = -(logits.log_softmax(-1) * target.unsqueeze(1)).sum()
    loss, count = task.loss(FixedModel(logits, w), (torch.zeros(2, 2, 3, 4), target), torch.device("cpu"))
    assert count.item() == 4
    assert math.isclose(loss.item(), ce.item() + penalty * 3.5, rel_tol=1e-6)
    # a model without attention pays no penalty
    loss, _ = task.loss(FixedModel(logits, None), (torch.zeros(2, 2, 3, 4), target), torch.device("cpu"))
    assert math.isclose(loss.item(), ce.item(), rel_tol=1e-6)


def test_window_scores_mean_and_majority():
    # three windows of two steps; per-window mean probabilities favour classes 0, 0, 1
    logits = torch.log(torch.tensor([[[0.6, 0.4], [0.6, 0.4]], [[0.55, 0.45], [0.55, 0.45]],
                                     [[0.01, 0.99], [0.01, 0.99]]]))
    model = FixedModel(logits, None)
    mean, per_window, att = window_scores(model, torch.zeros(3, 2, 1, 1), "mean", batch=8)
    assert att is None and torch.allclose(per_window, logits.exp()[:, 0], atol=1e-6)
    assert torch.allclose(mean, torch.tensor([(0.6 + 0.55 + 0.01) / 3, (0.4 + 0.45 + 0.99) / 3]), atol=1e-6)
    assert mean.argmax() == 1  # the mean is swayed by one confident window ...
    vote, _, _ = window_scores(model, torch.zeros(3, 2, 1, 1), "majority", batch=8)
    assert torch.allclose(vote, torch.tensor([2 / 3, 1 / 3]))  # ... the vote is not


def test_predict_grid_averages_attention_over_the_windows_covering_each_frame(tmp_path):
    task = synth_task(tmp_path)
    task.cfg.data.window, task.cfg.data.stride = 3, 2
    model = tiny_model("attention", P=4, D=5)
    grid = np.random.default_rng(0).normal(size=(6, 4, 5)).astype(np.float16)  # (T, P, D)
    pred = predict_grid(model, grid, task.cfg.data, torch.device("cpu"))
    # windows start at 0, 2, 3 (the last one ends at the last frame)
    assert pred.window_probs.shape == (3, 3) and pred.frame_weights.shape == (6, 4)
    with torch.no_grad():
        _, w = model(torch.from_numpy(grid[[3, 4, 5]].astype(np.float32))[None])
        _, w2 = model(torch.from_numpy(grid[[2, 3, 4]].astype(np.float32))[None])
    assert torch.allclose(pred.frame_weights[5], w[0, 2], atol=1e-5)  # only the last window covers frame 5
    assert torch.allclose(pred.frame_weights[4], (w[0, 1] + w2[0, 2]) / 2, atol=1e-5)


def test_label_target_and_average_precision():
    assert torch.equal(label_target((1,), 3), torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(label_target((0, 2), 3), torch.tensor([0.5, 0.0, 0.5]))
    # ranking: pos, neg, pos -> precision 1 at rank 1, 2/3 at rank 3 -> AP 5/6
    assert math.isclose(average_precision(torch.tensor([0.9, 0.8, 0.1]), torch.tensor([True, False, True])), 5 / 6, rel_tol=1e-6)
    assert math.isnan(average_precision(torch.tensor([0.5]), torch.tensor([False])))


# ----------------------------------------------------------------------------- recipes and readers

RECIPES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "recipes").glob("*.toml")
                 if p.name.startswith(("synth_attention_", "ucf11_", "hmdb51_", "hollywood2_")))


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_load(name):
    task = load_task(Path(__file__).resolve().parents[1] / "recipes" / name)
    assert task.name == "attention_activity" and task.cfg.encoder.pool == "grid"
    assert task.selection_metric == ("mAP" if name.startswith("hollywood2") else "accuracy")


def test_recipe_rows_cover_table_1():
    assert len(RECIPES) >= 9  # six synthetic rows and the three real datasets
    kinds = {load_task(Path(__file__).resolve().parents[1] / "recipes" / n).cfg.model.kind for n in RECIPES}
    assert kinds == {"attention", "avg_lstm", "max_lstm", "softmax"}

def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_ucf11_folders_split_by_group(tmp_path):
    for action, name in (("basketball", "shooting"), ("biking", "biking")):
        for g in (1, 2, 17):
            for c in (1, 2):
                touch(tmp_path / action / f"v_{name}_{g:02d}" / f"v_{name}_{g:02d}_{c:02d}.mpg")
    touch(tmp_path / "basketball" / "Annotation" / "notes.txt")  # not a video: ignored
    classes, train, test = read_ucf11(tmp_path, test_groups=[17])
    assert classes == ["basketball", "biking"]
    assert len(train) == 8 and len(test) == 4
    assert all("_17" in v.path.parent.name for v in test) and all("_17" not in v.path.name for v in train)
    assert {v.labels for v in test} == {(0,), (1,)}
    with pytest.raises(UserError, match="empty side"):
        read_ucf11(tmp_path, test_groups=[99])


def test_hmdb51_official_split_files(tmp_path):
    root, splits = tmp_path / "videos", tmp_path / "splits"
    for cls, rows in (("clap", {"a.avi": 1, "b.avi": 2, "c.avi": 0}), ("drink", {"d.avi": 2, "e.avi": 1})):
        for name in rows:
            touch(root / cls / name)
        splits.mkdir(exist_ok=True)
        (splits / f"{cls}_test_split1.txt").write_text("".join(f"{n} {s} \n" for n, s in rows.items()))
        (splits / f"{cls}_test_split2.txt").write_text("".join(f"{n} 1\n" for n in rows))
    classes, train, test = read_hmdb51(root, splits, 1)
    assert classes == ["clap", "drink"]
    assert sorted((v.path.name, v.labels) for v in train) == [("a.avi", (0,)), ("e.avi", (1,))]
    assert sorted((v.path.name, v.labels) for v in test) == [("b.avi", (0,)), ("d.avi", (1,))]
    (splits / "clap_test_split3.txt").write_text("a.avi 7\n")
    with pytest.raises(UserError, match=r"clap_test_split3.txt:1"):
        read_hmdb51(root, splits, 3)


def test_hollywood2_multi_label_clip_sets(tmp_path):
    sets = tmp_path / "ClipSets"
    for clip in ("actioncliptrain00001", "actioncliptrain00002", "actioncliptest00001"):
        touch(tmp_path / "AVIClips" / f"{clip}.avi")
    sets.mkdir()
    (sets / "Kiss_train.txt").write_text("actioncliptrain00001  1\nactioncliptrain00002  -1\n")
    (sets / "Run_train.txt").write_text("actioncliptrain00001  1\nactioncliptrain00002  1\n")
    (sets / "Kiss_test.txt").write_text("actioncliptest00001  -1\n")
    (sets / "Run_test.txt").write_text("actioncliptest00001  1\n")
    (sets / "actions_train.txt").write_text("actioncliptrain00001  1\n")  # the summary file: not a class
    classes, train, test = read_hollywood2(tmp_path)
    assert classes == ["Kiss", "Run"]
    assert [(v.path.name, v.labels) for v in train] == [("actioncliptrain00001.avi", (0, 1)),
                                                        ("actioncliptrain00002.avi", (1,))]
    assert [v.labels for v in test] == [(1,)]


# ----------------------------------------------------------------------------- the synthetic set

SMALL = SynthAttentionSpec(train_per_class=1, test_per_class=1, frames=6, size=48)


def test_synthetic_videos_are_reproducible_and_the_box_holds_the_deciding_object():
    for label in range(len(CLASSES)):
        a, boxes = render_video(label, SMALL, np.random.default_rng([0, label, 0]))
        b, _ = render_video(label, SMALL, np.random.default_rng([0, label, 0]))
        assert a.shape == (6, 48, 48, 3) and np.array_equal(a, b) and len(boxes) == 6
        zone = np.array(SMALL.zone) * 48
        for t, box in enumerate(boxes):
            if not box:
                assert label == CLASSES.index("Blink")  # only a blinking object is ever absent
                continue
            x0, y0, x1, y1 = box
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            assert zone[0] - 4 <= cx <= zone[2] + 4 and zone[1] <= cy <= zone[3]
            inside = a[t, y0:y1, x0:x1].astype(float)
            # the object differs from the background colour (its box is not empty background)
            assert np.abs(inside - np.median(a[t].reshape(-1, 3), 0)).max() > 60


def test_synthetic_set_on_disk_has_lists_and_boxes(tmp_path):
    root = write_synth_attention(tmp_path, SMALL)
    assert (root / "classInd.txt").read_text().split() == ["1", "Grow", "2", "Shrink", "3", "Blink", "4", "Slide"]
    assert len((root / "trainlist01.txt").read_text().splitlines()) == 4
    video = root / "Grow" / "v_Grow_g01_c01.avi"
    boxes = read_boxes(video)
    assert video.is_file() and boxes["frame_size"] == [48, 48] and len(boxes["boxes"]) == 6
    mtime = video.stat().st_mtime_ns
    write_synth_attention(tmp_path, SMALL)  # same spec: nothing rewritten
    assert video.stat().st_mtime_ns == mtime
    video.with_suffix(".json").write_text("{not json")
    with pytest.raises(UserError, match="not a box file"):
        read_boxes(video)


# ----------------------------------------------------------------------------- map numbers

def test_box_share_on_hand_made_maps():
    # 2 x 2 grid over a 10 x 10 frame: cells of 5 x 5 pixels
    on_cell0 = np.array([[1.0, 0.0, 0.0, 0.0]])
    inside = box_share(on_cell0, [[1, 1, 3, 3]], (10, 10))  # a 2 x 2 box inside cell 0
    assert inside == pytest.approx({"cell_share": 1.0, "cell_chance": 0.25, "pixel_share": 4 / 25,
                                    "pixel_chance": 4 / 100})
    across = box_share(on_cell0, [[4, 4, 6, 6]], (10, 10))  # touches all four cells
    assert across["cell_share"] == pytest.approx(1.0) and across["cell_chance"] == pytest.approx(1.0)
    assert across["pixel_share"] == pytest.approx(1 / 25)
    # uniform attention is at chance; frames without the object are skipped
    uniform = np.full((2, 4), 0.25)
    got = box_share(uniform, [[], [0, 0, 5, 10]], (10, 10))
    assert got["cell_share"] == pytest.approx(got["cell_chance"]) == pytest.approx(0.5)
    assert got["pixel_share"] == pytest.approx(got["pixel_chance"]) == pytest.approx(0.5)
    assert box_share(uniform, [[], []], (10, 10)) is None
    assert pixel_map(np.array([0.1, 0.2, 0.3, 0.4]), 10, 10).sum() == pytest.approx(1.0)


def test_motion_stats_on_hand_made_maps():
    fixed = np.tile(np.eye(4)[0], (1, 3, 1))      # (W=1, T=3, P=4) always position 0
    moving = np.eye(4)[None, :3]                  # positions 0, 1, 2
    uniform = np.full((1, 3, 4), 0.25)
    assert motion_stats(fixed) == pytest.approx({"total_variation": 0.0, "step_entropy": 0.0,
                                                 "coverage_entropy": 0.0})
    m = motion_stats(moving)
    assert m["total_variation"] == pytest.approx(1.0) and m["step_entropy"] == pytest.approx(0.0)
    assert m["coverage_entropy"] == pytest.approx(math.log(3) / math.log(4))
    u = motion_stats(uniform)
    assert u["total_variation"] == 0.0 and u["step_entropy"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the CLI round trip

TINY_RECIPE = """
task = "attention_activity"
[data]
synthetic = true
root = "{root}/videos"
cache_dir = "{root}/grids"
window = 4
stride = 2
progress = false
[data.synth]
train_per_class = 3
test_per_class = 2
frames = 6
size = 32
[encoder]
name = "mobilenet_v2"
image_size = 32
pool = "grid"
[grid]
blocks = 7
[model]
kind = "{kind}"
hidden = 8
layers = 2
[train]
out_dir = "{root}/run_{kind}"
epochs = 2
batch_size = 4
lr = 3e-3
progress = false
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny attention model trained through ``captionkit train`` (random 4 x 4 x 32 MobileNetV2 grids)."""
    from captionkit.cli import main

    root = tmp_path_factory.mktemp("attention_cli")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=root, kind="attention"))
    assert main(["train", str(recipe)]) == 0
    return root


def test_round_trip_train_evaluate_classify(trained, capsys):
    from captionkit.cli import main

    ckpt = trained / "run_attention" / "best.pt"
    log = [json.loads(line) for line in (trained / "run_attention" / "log.jsonl").read_text().splitlines()]
    best_val = max(r["val"]["accuracy"] for r in log if r.get("event") == "epoch" and "val" in r)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--split", "test", "--out", str(trained / "eval"),
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["videos"] == 8 and scores["accuracy"] == pytest.approx(best_val)  # evaluate == validation
    video = trained / "videos" / "Slide" / "v_Slide_g04_c01.avi"
    assert main(["classify", "--checkpoint", str(ckpt), str(video), "--topk", "2", "--json",
                 "--attention", str(trained / "maps")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["video"] == str(video) and len(record["top"]) == 2
    numbers = json.loads((trained / "maps" / "v_Slide_g04_c01_attention.json").read_text())
    weights = np.array(numbers["frame_weights"])
    assert weights.shape == (6, 16) and np.allclose(weights.sum(1), 1.0, atol=1e-3)
    assert numbers["grid"] == [4, 4] and numbers["top"] == record["top"]
    from PIL import Image
    with Image.open(trained / "maps" / "v_Slide_g04_c01_attention.gif") as gif:
        assert gif.n_frames == 6


def test_classify_a_corrupt_video_is_a_one_line_error(trained, tmp_path, capsys):
    from captionkit.cli import main

    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00not a video at all" * 10)
    capsys.readouterr()
    assert main(["classify", "--checkpoint", str(trained / "run_attention" / "best.pt"), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.avi" in err and "Traceback" not in err


@pytest.mark.data
def test_attention_maps_of_the_real_clips(trained, shared_data, tmp_path, capsys):
    from PIL import Image

    from captionkit.cli import main

    clips = {shared_data / "video" / "ucf101_clips" / "v_ApplyEyeMakeup_g01_c01.avi": (164, 240, 320),
             shared_data / "video" / "ucf101_clips" / "v_BaseballPitch_g01_c01.avi": (107, 240, 320),
             shared_data / "video" / "cricketshot_i3d" / "v_CricketShot_g04_c01_rgb.gif": (79, 224, 224)}
    out = tmp_path / "maps"
    assert main(["classify", "--checkpoint", str(trained / "run_attention" / "best.pt"), *map(str, clips),
                 "--attention", str(out)]) == 0
    for path, (T, H, W) in clips.items():
        width = round(W * 128 / H)  # frames drawn 128 px high, aspect ratio kept
        with Image.open(out / f"{path.stem}_attention.png") as png:
            assert png.size == (8 * (width + 4) + 4, 128 + 36)
        with Image.open(out / f"{path.stem}_attention.gif") as gif:
            assert gif.n_frames == T and gif.size == (width, 128)
        numbers = json.loads((out / f"{path.stem}_attention.json").read_text())
        assert numbers["frames"] == T and len(numbers["frame_weights"]) == T
        assert (out / f"{path.stem}_attention.gif").stat().st_size > 10_000
