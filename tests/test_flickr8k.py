"""Flickr8k on real data: the recipes load, both annotation formats agree, and a 50-image
train -> evaluate round trip runs through the CLI (``captionkit train`` / ``captionkit evaluate``).

The data tests need ``../shared/data`` (or ``$CAPTIONKIT_SHARED_DATA``) and skip with the reason
when it is absent; run them with ``pytest -m data tests/test_flickr8k.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

RECIPES = {"flickr8k_lrcn1u": ("1u", "lstm"), "flickr8k_lrcn2u": ("2u", "lstm"),
           "flickr8k_lrcn2f": ("2f", "lstm"), "flickr8k_rnn2f": ("2f", "rnn"),
           "flickr8k_lrcn2f_finetune": ("2f", "lstm"), "flickr8k_lrcn2f_ensemble": ("2f", "lstm")}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_loads(name):
    from captionkit.tasks import load_task

    task = load_task(REPO / "recipes" / f"{name}.toml")
    cfg = task.cfg
    assert (cfg.model.variant, cfg.model.unit) == RECIPES[name]
    assert cfg.data.source == "flickr8k" and cfg.data.root == "../shared/data"
    assert cfg.encoder.name == "mobilenet_v2" and cfg.encoder.finetune == name.endswith("finetune")
    assert cfg.train.out_dir == (f"runs/{name}" if name != "flickr8k_lrcn2f_ensemble"
                                 else "runs/flickr8k_lrcn2f_ensemble/px288_seed0")  # eval/flickr8k_ensemble.py


def _data_cfg(root, source: str, **extra):
    from captionkit.tasks.caption_data import CaptionDataConfig

    if source == "flickr8k":
        files = {"annotations": "flickr8k/Flickr8k.token.txt", "train_split": "flickr8k/Flickr_8k.trainImages.txt",
                 "val_split": "flickr8k/Flickr_8k.devImages.txt"}
    else:  # Karpathy's dataset_flickr8k.json: its train / val equal the official train / dev
        files = {"annotations": "flickr8k/dataset_flickr8k.json", "train_split": "train", "val_split": "val"}
    return CaptionDataConfig(source=source, root=str(root), images="flickr8k/images", **files, **extra)


@pytest.mark.data
@pytest.mark.parametrize("split,count", [("train", 6000), ("val", 1000)])
def test_token_file_and_karpathy_json_agree(shared_data, split, count):
    from captionkit.tasks.caption_data import load_split

    token = load_split(_data_cfg(shared_data, "flickr8k"), split)
    karpathy = load_split(_data_cfg(shared_data, "karpathy"), split)
    assert len(token.items) == len(karpathy.items) == count
    assert token.ids() == karpathy.ids()
    for a, b in zip(token.items, karpathy.items):
        assert a.captions == b.captions and len(a.captions) == 5
        assert a.file == b.file
    assert token.items[0].file.is_file()
    assert token.image(0).size == (224, 224)


def _write_list(path, names):
    path.write_text("\n".join(names) + "\n")
    return str(path)


@pytest.mark.data
def test_fifty_image_train_evaluate_round_trip(shared_data, tmp_path):
    from captionkit.data.captions import read_split_list

    flickr = shared_data / "flickr8k"
    train = _write_list(tmp_path / "train.txt", read_split_list(flickr / "Flickr_8k.trainImages.txt")[:60])
    dev = _write_list(tmp_path / "dev.txt", read_split_list(flickr / "Flickr_8k.devImages.txt")[:20])
    run = tmp_path / "run"
    sets = [f"data.root={shared_data}", f"data.train_split={train}", f"data.val_split={dev}",
            "data.train_limit=50", "data.val_limit=20", "data.min_count=2",
            f"encoder.cache_dir={tmp_path / 'features'}", "model.hidden=32", "model.embed=32",
            "model.visual_proj=32", "train.epochs=2", "train.batch_size=25", f"train.out_dir={run}"]
    cmd = [sys.executable, "-m", "captionkit", "train", str(REPO / "recipes" / "flickr8k_lrcn2f.toml")]
    proc = subprocess.run(cmd + [x for s in sets for x in ("--set", s)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "encoder mobilenet_v2: loaded" in proc.stdout
    assert (run / "best.pt").is_file() and "epoch 2/2" in proc.stdout
    feats = list((tmp_path / "features").glob("*/shard_*.pt"))
    assert feats, "frozen MobileNetV2 features were not cached"

    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "captionkit", "evaluate", "--checkpoint", str(run / "best.pt"), "--split", "val",
           "--beam", "2", "--limit", "20", "--out", str(out), "--tag", "rt", "--metrics", "bleu,rouge,cider",
           "--json"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["images"] == 20 and summary["decode"]["beam_size"] == 2
    for key in ("Bleu_4", "ROUGE_L", "CIDEr"):
        assert 0.0 <= summary["scores"][key] <= 10.0
    assert 0.0 <= summary["stats"]["in_training"] <= 1.0 and summary["stats"]["vocab_generated"] >= 1
    captions = json.loads((out / "captions_rt.json").read_text())
    assert len(captions) == 20 and all(isinstance(c["caption"], str) for c in captions)
    assert json.loads((out / "scores_rt.json").read_text())["scores"] == summary["scores"]

