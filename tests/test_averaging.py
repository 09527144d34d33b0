"""train.ema: the moving average of the weights (captionkit/averaging.py) and its place in training."""
import json

import pytest
import torch
from torch import nn

from captionkit import checkpoint
from captionkit.averaging import WeightAverage
from captionkit.errors import UserError
from captionkit.tasks import load_task
from captionkit.train import fit

from conftest import tiny_caption_recipe


def test_average_follows_the_warmup_recurrence():
    """avg_n = d_n avg_{n-1} + (1 - d_n) w_n with d_n = min(decay, (1 + n) / (10 + n)), in plain floats."""
    layer = nn.Linear(1, 1, bias=False)
    frozen = nn.Linear(1, 1, bias=False).requires_grad_(False)
    model = nn.Sequential(layer, frozen)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema = WeightAverage(model, decay=0.5)
    assert ema.names == ["0.weight"]  # trainable parameters only
    expected = 1.0
    for n, w in enumerate([3.0, -2.0, 5.0, 0.5, 7.0, 1.0, 4.0, -1.0, 2.0, 6.0, 3.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(w)
        ema.update()
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * w
        assert ema.shadow[0].item() == pytest.approx(expected, rel=1e-6)
    assert ema.updates == 11 and ema.rate() == 0.5
    state = ema.state_dict(model)
    assert state["0.weight"].item() == pytest.approx(expected, rel=1e-6)
    assert state["1.weight"] is not None and layer.weight.item() == 3.0  # the model keeps its weights


def test_applied_swaps_the_average_in_and_the_trained_weights_back():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    ema = WeightAverage(model, decay=0.9)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()
    after_step = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.applied():
        torch.testing.assert_close(model.weight, ema.shadow[0])
        assert not torch.equal(model.weight, after_step["weight"])
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, after_step[k])
    assert not torch.equal(after_step["weight"], trained["weight"])


def test_bad_decay_is_a_clear_error():
    with pytest.raises(UserError, match=r"train\.ema must be in \[0, 1\)"):
        load_task(data=tiny_caption_recipe("unused", train={"ema": 1.0}))


def _recipe(out_dir, **train):
    return tiny_caption_recipe(out_dir, data={"synth_train": 24}, model={"dropout": 0.3},
                               train={"epochs": 3, "batch_size": 8, "ema": 0.9, **train})


def test_validation_and_best_checkpoint_use_the_average(tmp_path):
    fit(load_task(data=_recipe(tmp_path / "run")))
    last = checkpoint.load(tmp_path / "run" / "last.pt")
    assert last["ema_updates"] == 45  # 3 epochs x 15 steps (24 images x 5 captions, batches of 8)
    assert any(not torch.equal(last["model"][k], last["train_model"][k]) for k in last["model"])
    # the logged last-epoch scores are those of the averaged weights ("model"), not the trained ones
    task = load_task(data=_recipe(tmp_path / "other"))
    task.setup()
    model = task.build_model()
    model.load_state_dict(last["model"])
    model.eval()
    with torch.no_grad():
        again = task.validate(model, "cpu")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = [r["val"] for r in log if r["event"] == "epoch"][-1]
    assert again == pytest.approx(logged)


def test_resumed_average_equals_the_uninterrupted_one(tmp_path):
    fit(load_task(data=_recipe(tmp_path / "full")))
    fit(load_task(data=_recipe(tmp_path / "cut", epochs=2)))
    fit(load_task(data=_recipe(tmp_path / "cut")), resume=True)
    a = checkpoint.load(tmp_path / "full" / "last.pt")
    b = checkpoint.load(tmp_path / "cut" / "last.pt")
    assert a["ema_updates"] == b["ema_updates"] == 45
    for key in ("model", "train_model"):
        for k in a[key]:
            torch.testing.assert_close(a[key][k], b[key][k], rtol=1e-5, atol=1e-6)


def test_a_second_stage_averages_from_the_loaded_weights(tmp_path):
    """With train.init_from the average restarts at the loaded weights, not at the random ones."""
    fit(load_task(data=_recipe(tmp_path / "first", ema=0.0)))
    init = checkpoint.load(tmp_path / "first" / "best.pt")["model"]
    fit(load_task(data=_recipe(tmp_path / "second", epochs=1, max_steps_per_epoch=1, ema=0.999,
                               init_from=str(tmp_path / "first" / "best.pt"))))
    last = checkpoint.load(tmp_path / "second" / "last.pt")
    task = load_task(data=_recipe(tmp_path / "x"))
    task.setup()
    params = [n for n, _ in task.build_model().named_parameters()]
    weight = 1 - 2 / 11  # the first update's rate: 1 - min(0.999, (1 + 1) / (10 + 1))
    moved = 0
    for k in params:
        trained = last["train_model"][k]
        moved += not torch.equal(trained, init[k])
        torch.testing.assert_close(last["model"][k], init[k] + weight * (trained - init[k]), rtol=1e-5, atol=1e-6)
    assert moved > 0


def test_a_run_saved_before_the_setting_existed_resumes_with_it_off(tmp_path):
    """A last.pt whose config has no train.ema (an older captionkit) resumes while ema keeps its default;
    asking for an average it was not trained with is refused with the key named."""
    recipe = _recipe(tmp_path / "run", epochs=1, ema=0.0)
    fit(load_task(data=recipe))
    last = tmp_path / "run" / "last.pt"
    state = checkpoint.load(last)
    del state["config"]["train"]["ema"]
    checkpoint.save_atomic(state, last)
    fit(load_task(data=_recipe(tmp_path / "run", epochs=2, ema=0.0)), resume=True)
    assert checkpoint.load(last)["epoch"] == 2
    state = checkpoint.load(last)
    del state["config"]["train"]["ema"]
    checkpoint.save_atomic(state, last)
    with pytest.raises(UserError, match=r"train\.ema: '<unset>' -> 0\.9"):
        fit(load_task(data=_recipe(tmp_path / "run", epochs=3)), resume=True)
