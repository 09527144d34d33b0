"""Training loop: overfitting, exact resume after a kill, DDP == single process, checkpoints."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from captionkit import checkpoint
from captionkit.errors import UserError
from captionkit.tasks import load_task
from captionkit.tasks.loading import load_trained
from captionkit.tasks.caption_data import load_split
from captionkit.tasks.caption_generate import caption_source
from captionkit.train import fit

from conftest import tiny_caption_recipe

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def write_recipe(path: Path, recipe: dict) -> Path:
    lines = []
    for section, values in recipe.items():
        if not isinstance(values, dict):
            lines.append(f"{section} = {json.dumps(values)}")
    for section, values in recipe.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_overfits_eight_images_exactly(tmp_path):
    recipe = tiny_caption_recipe(tmp_path / "run", data={"synth_train": 8, "captions_per_image": 1},
                                 model={"hidden": 64, "embed": 32},
                                 train={"epochs": 200, "batch_size": 8, "lr": 1e-2, "val_every": 200})
    fit(load_task(data=recipe))
    task, model = load_trained(checkpoint.load(tmp_path / "run" / "last.pt"))
    train = load_split(task.cfg.data, "train")
    hyps = caption_source(model, train, task.vocab, task.cfg.decode, "cpu")
    assert [h[0][0] for h in hyps] == [it.captions[0] for it in train.items]


def test_checkpoint_is_self_describing_and_weights_only(tmp_path):
    fit(load_task(data=tiny_caption_recipe(tmp_path / "run")))
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)  # nothing pickled
    assert ckpt["format"] == "captionkit/1" and ckpt["task"] == "caption" and "vocab" in ckpt["extra"]
    task, model = load_trained(ckpt)  # no recipe, no vocabulary file
    assert model.core.cfg.variant == "2f" and len(task.vocab) == model.core.vocab_size
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "epoch" and "CIDEr" in r["val"] for r in log)


def test_refuses_to_overwrite_a_run(tmp_path):
    recipe = tiny_caption_recipe(tmp_path / "run")
    fit(load_task(data=recipe))
    with pytest.raises(UserError, match="already holds a run"):
        fit(load_task(data=recipe))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pt: not a readable captionkit checkpoint"):
        checkpoint.load(bad)


def _epoch_losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["event"] == "epoch":
            out[r["epoch"]] = r["train_loss"]
    return out


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    """Kill a run mid-epoch 2 (SIGKILL), resume it: epoch 2 and 3 losses equal an uninterrupted run."""
    base = tiny_caption_recipe(tmp_path / "x", data={"synth_train": 48},
                               model={"dropout": 0.3},           # the RNG state must be restored too
                               train={"epochs": 3, "batch_size": 8, "save_every_steps": 1})
    full = dict(base, train=dict(base["train"], out_dir=str(tmp_path / "full")))
    fit(load_task(data=full))
    reference = _epoch_losses(tmp_path / "full")

    killed = dict(base, train=dict(base["train"], out_dir=str(tmp_path / "killed")))
    recipe = write_recipe(tmp_path / "killed.toml", killed)
    cmd = [sys.executable, "-m", "captionkit", "train", str(recipe)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last, deadline = tmp_path / "killed" / "last.pt", time.time() + 600  # generous on a loaded machine
    while time.time() < deadline:  # wait until the run is inside epoch 2 (epoch index 1, step >= 2)
        if last.exists():
            try:
                state = torch.load(last, weights_only=True)
                if state["epoch"] == 1 and state["step"] >= 2:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(last, weights_only=True)
    assert state["epoch"] >= 1 and state["epoch"] < 3, "the run was not killed mid-way"
    subprocess.run(cmd + ["--resume"], env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed = _epoch_losses(tmp_path / "killed")
    for epoch in (2, 3):
        assert resumed[epoch] == pytest.approx(reference[epoch], rel=1e-6, abs=1e-7)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(last, weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_ddp_two_cpu_processes_equal_one_process(tmp_path):
    """torchrun with 2 gloo processes, one step on a global batch == one process on that batch.

    Exact only without dropout or BatchNorm in training mode (each process would draw its own masks
    and batch statistics), so the recipe has dropout 0 and a frozen CNN; asserted, not assumed."""
    recipe = tiny_caption_recipe(tmp_path / "one", data={"synth_train": 32},
                                 encoder={"finetune": False, "cache_dir": str(tmp_path / "cache")},
                                 train={"epochs": 1, "batch_size": 16, "max_steps_per_epoch": 1})
    assert recipe["model"]["dropout"] == 0.0 and not recipe["encoder"]["finetune"]
    fit(load_task(data=recipe))
    two = dict(recipe, train=dict(recipe["train"], out_dir=str(tmp_path / "two")))
    path = write_recipe(tmp_path / "two.toml", two)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "captionkit", "train", str(path)], env=ENV, check=True, capture_output=True,
                   timeout=300)
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 1
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    assert b["history"][0]["train_loss"] == pytest.approx(a["history"][0]["train_loss"], rel=1e-5)


def test_grouped_captions_give_the_same_loss_as_pairs(tmp_path):
    """data.group_captions encodes each image once; the loss equals the one over (image, caption) pairs."""
    recipe = tiny_caption_recipe(tmp_path / "g", data={"synth_train": 4})
    pairs = load_task(data=recipe)
    pairs.setup()
    grouped = load_task(data=tiny_caption_recipe(tmp_path / "g", data={"synth_train": 4, "group_captions": True}))
    grouped.setup()
    model = pairs.build_model().eval()
    a = pairs.collate([pairs.train_dataset()[i] for i in range(len(pairs.train_dataset()))])
    b = grouped.collate([grouped.train_dataset()[i] for i in range(len(grouped.train_dataset()))])
    assert b["visual"].size(0) == 4 and a["visual"].size(0) == b["inp"].size(0) == 20
    (la, na), (lb, nb) = pairs.loss(model, a, "cpu"), grouped.loss(model, b, "cpu")
    assert int(na) == int(nb)
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-5)


def test_val_limit_extracts_only_the_validated_images(tmp_path):
    recipe = tiny_caption_recipe(tmp_path / "v", data={"synth_val": 8, "val_limit": 3},
                                 encoder={"finetune": False, "cache_dir": str(tmp_path / "cache")})
    task = load_task(data=recipe)
    task.setup()
    assert task.val_feats.size(0) == 3 and len(task.val_src.items) == 3
