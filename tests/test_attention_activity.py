"""Soft-attention action recognition (Sharma et al.): forward == step by step for every model, Eq. 7's
penalty through the task's loss on hand-made weights, the baselines' defining properties, window
voting, a tiny train / evaluate / classify --attention round trip through the CLI, the maps of the
real clips, and CUDA. Data readers, the synthetic set and map numbers: test_attention_activity_data.py."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

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


@pytest.mark.parametrize("attention", ["location", "content"])
def test_gate_and_uniform_start(attention):
    grids = torch.randn(3, 4, 9, 6)
    plain = tiny_model("attention", attention, layers=2)
    gated = tiny_model("attention", attention, layers=2, gate=True, uniform_init=True)
    with torch.no_grad():
        logits, weights = gated(grids)
        state, steps = gated.init_state(grids), []
        for t in range(4):
            lt, state, _ = gated.step(grids[:, t], state)
            steps.append(lt)
        assert torch.allclose(logits, torch.stack(steps, 1), atol=1e-5)  # forward == step by step
        assert torch.allclose(weights, torch.full_like(weights, 1 / 9))  # zero scores: uniform l_t
        assert not torch.allclose(plain(grids)[1], torch.full_like(weights, 1 / 9), atol=1e-3)
        reordered = grids.flip(1)  # other frames at each step, the same mean (the same initial state)
        assert not torch.allclose(gated(reordered)[0], logits, atol=1e-4)
        gated.gate.bias.fill_(-30.0)  # beta_t = 0: the LSTM sees no frame, only its initial state
        assert torch.allclose(gated(reordered)[0], gated(grids)[0], atol=1e-6)
    assert plain.gate is None and gated.gate is not None


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
    ap = average_precision(torch.tensor([0.9, 0.8, 0.1]), torch.tensor([True, False, True]))
    assert math.isclose(ap, 5 / 6, rel_tol=1e-6)
    assert math.isnan(average_precision(torch.tensor([0.5]), torch.tensor([False])))


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
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = printed["videos"][0]
    assert len(printed["videos"]) == 1 and record["video"] == str(video) and len(record["top"]) == 2
    numbers = json.loads((trained / "maps" / "v_Slide_g04_c01_attention.json").read_text())
    weights = np.array(numbers["frame_weights"])
    assert weights.shape == (6, 16) and np.allclose(weights.sum(1), 1.0, atol=1e-3)
    assert numbers["grid"] == [4, 4] and numbers["top"] == record["top"]
    from PIL import Image
    with Image.open(trained / "maps" / "v_Slide_g04_c01_attention.gif") as gif:
        assert gif.n_frames == 6
    # the CNN rebuilt from the checkpoint found the grids cached in training (one digest folder)
    assert len(list((trained / "grids").iterdir())) == 1


def test_classify_a_corrupt_video_is_a_one_line_error(trained, tmp_path, capsys):
    from captionkit.cli import main

    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00not a video at all" * 10)
    capsys.readouterr()
    assert main(["classify", "--checkpoint", str(trained / "run_attention" / "best.pt"), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.avi" in err and "Traceback" not in err


def test_attention_maps_of_a_baseline_are_a_user_error(tmp_path):
    from captionkit.tasks.attention_classify import classify_videos

    task = synth_task(tmp_path)
    with pytest.raises(UserError, match="'avg_lstm' baseline, which has no attention"):
        classify_videos(task, tiny_model("avg_lstm"), [], torch.device("cpu"), attention_out=tmp_path / "maps")


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


# ----------------------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("kind,attention", VARIANTS)
def test_cuda_agrees_with_cpu_and_trains_in_bf16(kind, attention):
    import copy

    from captionkit.attention import doubly_stochastic_penalty

    model = tiny_model(kind, attention, layers=3)
    grids = torch.randn(4, 5, 9, 6)
    gpu = copy.deepcopy(model).cuda()
    with torch.no_grad():
        cpu_logits, cpu_w = model(grids)
        gpu_logits, gpu_w = gpu(grids.cuda())
        state = gpu.init_state(grids.cuda()) if kind != "softmax" else None
        step0, _, _ = gpu.step(grids[:, 0].cuda(), state)
    assert torch.allclose(cpu_logits, gpu_logits.cpu(), atol=2e-3)  # cuDNN may use TF32
    assert torch.allclose(step0, gpu_logits[:, 0], atol=1e-5)
    if cpu_w is not None:
        assert torch.allclose(cpu_w, gpu_w.cpu(), atol=2e-3)
    gpu.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, w = gpu(grids.cuda())
    loss = logits.float().logsumexp(-1).mean()
    if w is not None:
        loss = loss + doubly_stochastic_penalty(w.float()).mean()
    loss.backward()
    grads = [p.grad for p in gpu.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
