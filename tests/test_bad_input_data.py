"""Issue 15 (part A): nothing silent, nothing lost in data, caching and training.

Each test fails on the code before issue 15: features reused from another dataset's files, a NaN
model saved as best, run folders overwritten, truncated videos classified from two frames, recipes
without [data] training on synthetic scenes, 16-bit / float images turned white or black, and
decompression bombs as tracebacks.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from captionkit import checkpoint as ckpt_io
from captionkit.cli import main
from captionkit.data.synth_video import write_avi
from captionkit.data.video import Video, cache_all, decode_video, load_frames
from captionkit.encoders import EncoderConfig, build_image_encoder
from captionkit.errors import UserError
from captionkit.features import FeatureCache, extract_features, file_stamp, load_image
from captionkit.tasks import load_task
from captionkit.tasks.caption_data import CaptionDataConfig, load_split
from captionkit.train import fit
from conftest import tiny_caption_recipe
from test_train import write_recipe


def _encoder():
    torch.manual_seed(0)
    return build_image_encoder(EncoderConfig(name="tiny", image_size=32)).eval()


def _write(folder, colours):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, colour in enumerate(colours):
        paths[f"im{i}.png"] = folder / f"im{i}.png"
        Image.new("RGB", (32, 32), colour).save(paths[f"im{i}.png"])
    return paths


def _extract(enc, paths, cache):
    feats, _ = extract_features(enc, list(paths), lambda i: load_image(paths[i]), cache, batch_size=2,
                                stamp=lambda i: file_stamp(paths[i]))
    return feats


def _direct(enc, path):
    with torch.inference_mode():
        return enc(enc.preprocess(load_image(path)).unsqueeze(0))[0]


# ----------------------------------------------------------------------------- 1. feature cache

def test_feature_cache_is_keyed_by_the_file_not_its_name(tmp_path):
    """A second dataset with the same file names, and an image fixed in place, are encoded again."""
    enc, cache = _encoder(), tmp_path / "cache"
    first = _write(tmp_path / "a", [(250, 0, 0), (0, 250, 0)])
    second = _write(tmp_path / "b", [(0, 0, 250), (250, 250, 250)])  # same names, other pictures
    _extract(enc, first, cache)
    feats = _extract(enc, second, cache)
    for name, path in second.items():
        torch.testing.assert_close(feats[name], _direct(enc, path), atol=1e-5, rtol=1e-4)
    Image.new("RGB", (32, 32), (10, 200, 90)).save(first["im0.png"])  # fixed in place
    os.utime(first["im0.png"], ns=(1, 1))                             # even with an old mtime
    feats = _extract(enc, first, cache)
    torch.testing.assert_close(feats["im0.png"], _direct(enc, first["im0.png"]), atol=1e-5, rtol=1e-4)
    assert len(list((cache).rglob("shard_*.pt"))) == 3  # a, b, then only the changed image


def test_image_source_stamps_feed_the_cache(tmp_path):
    """The caption task's sources give stamps: a copy of a dataset under another root is not reused."""
    ann = tmp_path / "a" / "captions.json"
    _write(tmp_path / "a" / "img", [(200, 10, 10), (10, 200, 10)])
    ann.write_text(json.dumps({"images": [{"id": i, "file_name": f"im{i}.png"} for i in range(2)],
                               "annotations": [{"id": i, "image_id": i, "caption": "a dot"} for i in range(2)]}))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _write(tmp_path / "b" / "img", [(10, 10, 200), (90, 90, 90)])
    enc, cache = _encoder(), tmp_path / "cache"
    for root in ("a", "b"):
        src = load_split(CaptionDataConfig(source="coco", root=str(tmp_path / root), annotations="captions.json",
                                           images="img"), "train")
        feats, _ = extract_features(enc, src.ids(), src.image_by_id, cache, stamp=src.stamp)
        for item in src.items:
            torch.testing.assert_close(feats[item.image_id], _direct(enc, item.file), atol=1e-5, rtol=1e-4)
    synth = load_split(CaptionDataConfig(synth_train=1), "train")
    assert synth.stamp(synth.ids()[0]) == "synthetic"  # a synthetic scene is a function of its id


def test_grid_features_keep_their_stamps(tmp_path):
    cache = FeatureCache(tmp_path, "enc:grid")
    cache.add(["x"], torch.randn(1, 4, 8), ["path|1|2"])  # (N, K*K, C) grids, as the attention model caches
    again = FeatureCache(tmp_path, "enc:grid")
    assert again.feats["x"].shape == (4, 8) and again.feats["x"].dtype == torch.float16
    assert set(again.valid({"x": "path|1|2"})) == {"x"} and again.valid({"x": "path|1|3"}) == {}


def test_corrupt_cache_shard_is_rebuilt_with_a_one_line_warning(tmp_path, capsys):
    enc, cache = _encoder(), tmp_path / "cache"
    paths = _write(tmp_path / "a", [(250, 0, 0), (0, 250, 0)])
    _extract(enc, paths, cache)
    shard = next(cache.rglob("shard_*.pt"))
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    capsys.readouterr()
    feats = _extract(enc, paths, cache)
    err = [line for line in capsys.readouterr().err.splitlines() if "features:" not in line and line.strip()]
    assert len(err) == 1 and err[0].startswith("warning: feature cache") and str(shard) in err[0]
    assert not shard.exists() and len(list(cache.rglob("shard_*.pt"))) == 1
    torch.testing.assert_close(feats["im1.png"], _direct(enc, paths["im1.png"]), atol=1e-5, rtol=1e-4)


def test_an_unwritable_feature_cache_is_a_one_line_error(tmp_path):
    paths = _write(tmp_path / "a", [(250, 0, 0)])
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.raises(UserError, match="feature cache .*cache.*: cannot write it"):
        _extract(_encoder(), paths, tmp_path / "cache")


# ----------------------------------------------------------------------------- 2. numbers

@pytest.mark.parametrize("override, key", [
    ("train.lr=inf", "train.lr"), ("train.lr=nan", "train.lr"), ("train.lr=0", "train.lr"),
    ("train.batch_size=-3", "train.batch_size"), ("train.epochs=0", "train.epochs"),
    ("data.val_limit=-5", "data.val_limit"), ("data.train_limit=-1", "data.train_limit"),
    ("data.max_len=0", "data.max_len"), ("encoder.image_size=0", "encoder.image_size"),
    ("encoder.batch_size=0", "encoder.batch_size"), ("train.label_smoothing=1.5", "train.label_smoothing"),
    ("model.dropout=-0.1", "model.dropout"), ("decode.beam_size=-2", "decode.beam_size"),
    ("train.weight_decay=-inf", "train.weight_decay"),
])
def test_numbers_are_validated_at_load(override, key):
    with pytest.raises(UserError) as e:
        load_task(data=tiny_caption_recipe("runs/x"), overrides=[override])
    assert key in str(e.value) and "\n" not in str(e.value)


def test_activity_numbers_are_validated_at_load():
    with pytest.raises(UserError, match="data.min_decoded"):
        load_task(data={"task": "activity", "data": {"min_decoded": 2.0}})
    with pytest.raises(UserError, match="data.min_decoded must be a finite number"):
        load_task(data={"task": "activity"}, overrides=["data.min_decoded=nan"])


def _nan_after(task, step):
    """Make the task's loss NaN from training step ``step`` (1-based) on."""
    loss, calls = task.loss, [0]

    def poisoned(model, batch, device):
        calls[0] += 1
        total, count = loss(model, batch, device)
        return (total * float("nan") if calls[0] >= step else total), count
    task.loss = poisoned


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    task = load_task(data=tiny_caption_recipe(tmp_path / "run", train={"epochs": 3},
                                              data={"captions_per_image": 1}))  # 16 items: 2 steps per epoch
    _nan_after(task, 4)
    with pytest.raises(UserError, match=r"loss nan at step 4 \(epoch 2, step 2\)"):
        fit(task)
    last = ckpt_io.load(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values()
                                      if v.is_floating_point())


def test_non_finite_weights_are_never_written(tmp_path):
    task = load_task(data=tiny_caption_recipe(tmp_path / "run", train={"save_every_steps": 1}))
    task.cfg.train.lr = float("inf")  # past the load-time check: the update itself makes the weights NaN
    with pytest.raises(UserError, match="non-finite weights .* after step 1"):
        fit(task)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_nan_validation_metric_is_never_best(tmp_path, capsys):
    task = load_task(data=tiny_caption_recipe(tmp_path / "run", train={"epochs": 2}))
    validate, epochs = task.validate, [0]

    def nan_first(model, device):
        epochs[0] += 1
        metrics = validate(model, device)
        return metrics | ({task.selection_metric: float("nan")} if epochs[0] == 1 else {})
    task.validate = nan_first
    summary = fit(task)
    assert np.isfinite(summary["best"]) and ckpt_io.load(tmp_path / "run" / "best.pt")["epoch"] == 2
    assert "never a best checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 3. run folders

@pytest.mark.parametrize("leftover", ["best.pt", "log.jsonl", "last.pt"])
def test_a_folder_holding_run_output_is_refused(tmp_path, leftover):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / leftover).write_text("old")
    with pytest.raises(UserError, match=f"already holds a run \\({leftover}\\).*--overwrite"):
        fit(load_task(data=tiny_caption_recipe(tmp_path / "run")))
    assert (tmp_path / "run" / leftover).read_text() == "old"


def test_an_out_dir_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(UserError, match="train.out_dir=.*run: cannot make the folder"):
        fit(load_task(data=tiny_caption_recipe(tmp_path / "run")))


def test_overwrite_moves_the_old_outputs_aside(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_text("old best")
    (out / "log.jsonl").write_text('{"old": 1}\n')
    write_recipe(recipe, tiny_caption_recipe(out))
    assert main(["train", str(recipe), "--overwrite"]) == 0
    aside = next(out.glob("replaced-*"))
    assert (aside / "best.pt").read_text() == "old best" and (aside / "log.jsonl").read_text() == '{"old": 1}\n'
    assert '"old"' not in (out / "log.jsonl").read_text() and ckpt_io.load(out / "best.pt")["epoch"] == 1
    assert main(["train", str(recipe), "--overwrite"]) == 0  # again, within the same second too
    assert len(list(out.glob("replaced-*"))) == 2 and (out / "last.pt").is_file()


def test_resume_with_nothing_to_resume_is_an_error(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        fit(load_task(data=tiny_caption_recipe(tmp_path / "run")), resume=True)


def test_resume_names_what_differs(tmp_path):
    fit(load_task(data=tiny_caption_recipe(tmp_path / "run")))
    changed = tiny_caption_recipe(tmp_path / "run", train={"lr": 1e-2, "epochs": 2})  # epochs may change
    with pytest.raises(UserError, match=r"differs from the run in .*: train\.lr: 0\.003 -> 0\.01;"):
        fit(load_task(data=changed), resume=True)
    other = tmp_path / "other"
    ckpt_io.save_atomic({"format": ckpt_io.FORMAT, "task": "activity", "config": {}}, other / "last.pt")
    with pytest.raises(UserError, match="last.pt: a 'activity' checkpoint; expected a captioner"):
        fit(load_task(data=tiny_caption_recipe(other)), resume=True)
    summary = fit(load_task(data=tiny_caption_recipe(tmp_path / "run", train={"epochs": 2})), resume=True)
    assert summary["epochs"] == 2


def test_a_malformed_last_checkpoint_is_a_one_line_error(tmp_path):
    fit(load_task(data=tiny_caption_recipe(tmp_path / "run")))
    state = ckpt_io.load(tmp_path / "run" / "last.pt")
    del state["optimizer"]
    ckpt_io.save_atomic(state, tmp_path / "run" / "last.pt")
    with pytest.raises(UserError, match="cannot resume from it"):
        fit(load_task(data=tiny_caption_recipe(tmp_path / "run", train={"epochs": 2})), resume=True)


def test_init_from_a_checkpoint_without_weights_is_a_one_line_error(tmp_path):
    recipe = tiny_caption_recipe(tmp_path / "run", train={"init_from": str(tmp_path / "w.pt")})
    ckpt_io.save_atomic({"format": ckpt_io.FORMAT, "task": "caption", "config": {}}, tmp_path / "w.pt")
    with pytest.raises(UserError, match="w.pt: a malformed captionkit checkpoint"):  # no vocabulary
        fit(load_task(data=recipe))
    fit(load_task(data=tiny_caption_recipe(tmp_path / "first")))
    state = ckpt_io.load(tmp_path / "first" / "best.pt")
    del state["model"]
    ckpt_io.save_atomic(state, tmp_path / "w.pt")
    with pytest.raises(UserError, match="train.init_from=.*w.pt: its weights do not fit"):
        fit(load_task(data=recipe))


def test_a_vocabulary_of_no_words_is_an_error(tmp_path):
    with pytest.raises(UserError, match="data.min_count=100000: no word"):
        fit(load_task(data=tiny_caption_recipe(tmp_path / "run", data={"min_count": 100000})))


# ----------------------------------------------------------------------------- 4. videos

def _truncated_video(tmp_path, frames=40, keep=0.3):
    rng = np.random.default_rng(0)
    path = tmp_path / "v_Clip_g01_c01.avi"
    write_avi(path, rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def test_truncated_video_is_an_error_naming_decoded_and_expected_frames(tmp_path, capsys):
    path = _truncated_video(tmp_path)
    with pytest.raises(UserError) as e:
        decode_video(path)
    message = str(e.value)
    assert str(path) in message and "of 40 frames decoded" in message and "min_decoded" in message
    got = int(message.split(": ")[1].split(" of ")[0])
    assert 0 < got < 20
    assert len(load_frames(path, None, None, min_decoded=0.0)) == got  # a lower threshold lets it through,
    assert f"{got} of 40 frames decoded" in capsys.readouterr().err  # and says so
    good = tmp_path / "good"
    good.mkdir()
    write_avi(good / "v_Good_g01_c01.avi", np.zeros((10, 32, 32, 3), np.uint8))
    videos = [Video(path, 0), Video(good / "v_Good_g01_c01.avi", 1)]
    with pytest.raises(UserError, match="of 40 frames"):
        cache_all(videos, lambda p: load_frames(p, None, None), "decoding", progress=False)
    kept = cache_all(videos, lambda p: load_frames(p, None, None), "decoding", progress=False, skip_bad=True)
    assert kept == videos[1:] and "skipped 1 of 2 videos" in capsys.readouterr().err


def test_an_unwritable_frame_cache_is_a_one_line_error(tmp_path):
    write_avi(tmp_path / "v.avi", np.zeros((4, 16, 16, 3), np.uint8))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "frames").write_text("a file where the frame folder should be")
    with pytest.raises(UserError, match="frame cache .*frames: cannot write it"):
        load_frames(tmp_path / "v.avi", None, tmp_path / "cache")


@pytest.mark.data
def test_truncated_real_clip_is_refused(tmp_path, shared_data):
    src = shared_data / "video" / "ucf101_clips" / "v_ApplyEyeMakeup_g01_c01.avi"
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[:len(src.read_bytes()) // 10])
    with pytest.raises(UserError, match=r"2 of 164 frames decoded"):
        decode_video(cut)
    assert len(decode_video(src)) == 164


# ----------------------------------------------------------------------------- 5. data source

def test_real_data_keys_without_a_source_are_an_error():
    recipe = tiny_caption_recipe("runs/x", data={"annotations": "Flickr8k.token.txt", "images": "images"})
    del recipe["data"]["source"]
    with pytest.raises(UserError, match="data.annotations is set but data.source is 'synth'"):
        load_task(data=recipe)


def test_training_prints_its_data_source_and_sizes(tmp_path, capsys):
    recipe = tiny_caption_recipe(tmp_path / "run")
    del recipe["data"]  # no [data]: the built-in synthetic scenes, and the run says so
    recipe["encoder"]["image_size"] = 64
    recipe["train"]["max_steps_per_epoch"] = 1
    task = load_task(data=recipe)
    task.cfg.data.synth_train, task.cfg.data.synth_val = 16, 4
    fit(task)
    out = capsys.readouterr().out
    assert "data: built-in synthetic data (no files)\n" in out
    assert "split sizes: train images 16, train items 80, val images 4\n" in out


# ----------------------------------------------------------------------------- 6. images

def test_16_bit_png_and_float_tiff_keep_their_brightness(tmp_path):
    Image.fromarray(np.full((8, 8), 30000, np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "half.tif")
    ramp = np.linspace(-10, 1000, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "ramp.tif")
    assert np.asarray(load_image(tmp_path / "g16.png"))[0, 0].tolist() == [117, 117, 117]  # 30000 / 257
    assert np.asarray(load_image(tmp_path / "half.tif"))[0, 0].tolist() == [128, 128, 128]
    ramp8 = np.asarray(load_image(tmp_path / "ramp.tif"))[..., 0]
    assert ramp8.min() == 0 and ramp8.max() == 255 and (np.diff(ramp8.ravel().astype(int)) >= 0).all()
    bad = np.full((8, 8), 0.5, np.float32)
    bad[0, 0] = np.nan
    Image.fromarray(bad).save(tmp_path / "nan.tif")
    with pytest.raises(UserError, match="nan.tif: .*NaN"):
        load_image(tmp_path / "nan.tif")


@pytest.mark.parametrize("limit", [1000, 3000])  # 64x64 = 4096 pixels: over 2x the limit (PIL's error),
def test_decompression_bombs_are_one_line_errors_and_skippable(tmp_path, monkeypatch, limit):  # or over it
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "bomb.png")
    Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(UserError, match="bomb.png: refused as a possible decompression bomb"):
        load_image(tmp_path / "bomb.png")
    paths = {"bomb": tmp_path / "bomb.png", "ok": tmp_path / "ok.png"}
    feats, skipped = extract_features(_encoder(), list(paths), lambda i: load_image(paths[i]), None,
                                      skip_bad=True)
    assert skipped == ["bomb"] and set(feats) == {"ok"}
