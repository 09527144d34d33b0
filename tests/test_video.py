"""Video input: UCF101 lists, PyAV decoding and its cache, flow images, clips, synthetic videos,
and (data-marked) the real UCF101 clips end to end through ``captionkit classify``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from captionkit.data import flow as flow_io
from captionkit.data import video as video_io
from captionkit.data.synth_video import SynthVideoSpec, render_video, write_synth_videos
from captionkit.errors import UserError

UCF = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video"
CLIPS = UCF / "ucf101_clips"
FRAME_COUNTS = {"v_ApplyEyeMakeup_g01_c01.avi": 164, "v_BaseballPitch_g01_c01.avi": 107}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    spec = SynthVideoSpec(pairs=2, train_per_class=2, test_per_class=1, frames=10, size=20)
    return write_synth_videos(tmp_path_factory.mktemp("synth"), spec), spec


def test_synth_videos_layout_and_decoding(synth_root):
    root, spec = synth_root
    classes = video_io.read_class_index(root / "classInd.txt")
    assert classes == ["MoveRight", "MoveLeft", "Grow", "Shrink"]
    train = video_io.read_split(root / "trainlist01.txt", root, classes)
    test = video_io.read_split(root / "testlist01.txt", root, classes)  # labels from the class folder
    assert len(train) == 8 and len(test) == 4
    assert [v.label for v in test] == [0, 1, 2, 3]
    frames = video_io.decode_video(train[0].path)
    assert frames.shape == (10, 20, 20, 3) and frames.dtype == np.uint8
    expected = render_video(0, False, spec, np.random.default_rng([spec.seed, 0, 0]))
    assert np.abs(frames.astype(int) - expected).max() <= 3  # FFV1 is lossless up to colour conversion
    assert write_synth_videos(root, spec) == root  # same spec: nothing rewritten


def test_reversed_class_is_time_reversal():
    spec = SynthVideoSpec(frames=8, size=16)
    fwd = render_video(1, False, spec, np.random.default_rng(5))
    rev = render_video(1, True, spec, np.random.default_rng(5))
    assert np.array_equal(rev, fwd[::-1])


def test_flat_layout_and_testlist_label_from_name(tmp_path, synth_root):
    root, _ = synth_root
    src = root / "Grow" / "v_Grow_g01_c01.avi"
    (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / "testlist01.txt").write_text("Grow/v_Grow_g01_c01.avi\n")
    videos = video_io.read_split(tmp_path / "testlist01.txt", tmp_path, ["MoveRight", "Grow"])
    assert videos == [video_io.Video(tmp_path / src.name, 1)]
    assert video_io.class_of_name("v_ApplyEyeMakeup_g01_c01.avi") == "ApplyEyeMakeup"


def test_frame_cache_keyed_and_reused(tmp_path, synth_root):
    root, _ = synth_root
    path = root / "MoveLeft" / "v_MoveLeft_g01_c01.avi"
    a = video_io.load_frames(path, (16, 18), tmp_path)
    cached = list((tmp_path / "frames").glob("*.npy"))
    assert len(cached) == 1 and a.shape == (10, 16, 18, 3)
    b = video_io.load_frames(path, (16, 18), tmp_path)
    assert isinstance(b, np.memmap) and np.array_equal(a, b)
    video_io.load_frames(path, (12, 12), tmp_path)  # another size: another entry
    assert len(list((tmp_path / "frames").glob("*.npy"))) == 2


def test_bad_video_is_one_line_user_error(tmp_path):
    bad = tmp_path / "v_Bad_g01_c01.avi"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(UserError) as e:
        video_io.decode_video(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError):
        video_io.load_frames(tmp_path / "missing.avi", None, tmp_path)


def test_flow_image_round_trip():
    rng = np.random.default_rng(0)
    flow = rng.uniform(-6, 6, size=(3, 5, 7, 2)).astype(np.float32)
    img = flow_io.encode_flow(flow, scale=16.0)
    assert img.dtype == np.uint8 and img.shape == (3, 5, 7, 3)
    back = flow_io.decode_flow(img, scale=16.0)
    assert np.abs(back - flow).max() <= 0.5 / 16 + 1e-6  # quantised to 1/scale pixel
    mag = np.sqrt(((flow * 16) ** 2).sum(-1))
    assert np.abs(img[..., 2] - np.clip(mag, 0, 255)).max() <= 1
    big = flow_io.encode_flow(np.array([[100.0, -100.0]]), scale=16.0)  # clipped to [-128, 128]
    assert big.tolist() == [[255, 0, 181]]  # magnitude of (128, -128)
    assert flow_io.encode_flow(np.zeros((1, 2)), 16.0).tolist() == [[128, 128, 0]]


def test_flow_sees_motion_and_is_cached(tmp_path, synth_root):
    root, _ = synth_root
    path = root / "MoveRight" / "v_MoveRight_g01_c01.avi"
    images = flow_io.load_flow(path, None, tmp_path, method="auto")
    assert images.shape == (9, 20, 20, 3)
    assert len(list((tmp_path / "flow").glob("*.npy"))) == 1
    u = flow_io.decode_flow(np.asarray(images))[..., 0]
    moving = images[..., 2] > 8  # where the magnitude is clearly non-zero
    assert moving.any() and u[moving].mean() > 0  # the shape moves right: positive x flow


def test_clips_train_and_test():
    frames = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(6, 1).repeat(8, 2).repeat(3, 3)
    assert video_io.clip_starts(20, 16, 8) == [0, 4]
    assert video_io.clip_starts(40, 16, 8) == [0, 8, 16, 24]
    assert video_io.clip_starts(10, 16, 8) == [0]
    clips = video_io.test_clips(frames, 16, 8, 4)
    assert clips.shape == (2, 16, 3, 4, 4) and clips[1, 0, 0, 0, 0] == 4
    short = video_io.take_clip(frames[:5], 0, 8)
    assert short[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]  # the last frame repeats
    ds = video_io.ClipDataset([video_io.Video(Path("x"), 3)], lambda p: frames, 16, 4)
    clip, label = ds[0]
    assert clip.shape == (16, 3, 4, 4) and clip.dtype == torch.uint8 and label == 3
    assert (clip[1:, 0, 0, 0] - clip[:-1, 0, 0, 0] == 1).all()  # consecutive frames, in order


def test_mirrored_flow_negates_x():
    img = np.full((4, 6, 6, 3), 128, np.uint8)
    img[..., 0] = 140  # u = +12/scale everywhere
    ds = video_io.ClipDataset([video_io.Video(Path("x"), 0)], lambda p: img, 4, 6, mirror=True, mirror_flow=True)
    torch.manual_seed(0)
    seen = {int(ds[0][0][0, 0, 0, 0]) for _ in range(12)}
    assert seen == {140, 116}


# ----------------------------------------------------------------------------- real UCF101 clips

def _need_ucf():
    if not CLIPS.is_dir():
        pytest.skip(f"the real UCF101 clips are not here: {CLIPS} (../shared/data is absent)")


@pytest.mark.data
def test_ucf101_clips_decode_to_right_frame_counts():
    _need_ucf()
    for name, count in FRAME_COUNTS.items():
        frames = video_io.decode_video(CLIPS / name)
        assert frames.shape == (count, 240, 320, 3), name


@pytest.mark.data
def test_ucf101_official_split_lists_parse():
    _need_ucf()
    splits = UCF / "ucf101_splits"
    classes = video_io.read_class_index(splits / "classInd.txt")
    assert len(classes) == 101
    lines = (splits / "trainlist01.txt").read_text().split()
    assert len(lines) == 2 * 9537  # "path label" per line


def _ucf_layout(tmp: Path) -> Path:
    """The two real clips in UCF101 layout with a 2-class index and lists (train = test)."""
    for name in FRAME_COUNTS:
        cls = video_io.class_of_name(name)
        (tmp / cls).mkdir(parents=True, exist_ok=True)
        (tmp / cls / name).symlink_to(CLIPS / name)
    (tmp / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 BaseballPitch\n")
    rels = [f"{video_io.class_of_name(n)}/{n}" for n in FRAME_COUNTS]
    (tmp / "trainlist01.txt").write_text(f"{rels[0]} 1\n{rels[1]} 2\n")
    (tmp / "testlist01.txt").write_text(f"{rels[0]}\n{rels[1]}\n")
    return tmp


@pytest.mark.data
def test_ucf101_flow_train_classify_end_to_end(tmp_path, capsys):
    _need_ucf()
    from captionkit.cli import classify
    from captionkit.tasks import load_task
    from captionkit.train import fit

    root = _ucf_layout(tmp_path / "ucf")
    cache = tmp_path / "cache"
    images = flow_io.load_flow(root / "BaseballPitch" / "v_BaseballPitch_g01_c01.avi", (60, 80), cache)
    assert images.shape == (106, 60, 80, 3) and len(list((cache / "flow").glob("*.npy"))) == 1
    ckpts = {}
    for modality in ("rgb", "flow"):
        task = load_task(data={"task": "activity", "data": {
            "root": str(root), "modality": modality, "frame_size": [60, 80], "cache_dir": str(cache),
            "progress": False}, "encoder": {"name": "tiny", "image_size": 48, "finetune": True},
            "model": {"hidden": 32}, "train": {"out_dir": str(tmp_path / modality), "epochs": 1,
                                               "batch_size": 2, "progress": False, "device": "cpu"}})
        ckpts[modality] = fit(task)["best_checkpoint"]
    videos = [str(root / video_io.class_of_name(n) / n) for n in FRAME_COUNTS]
    capsys.readouterr()  # drop fit's epoch lines
    parser = argparse.ArgumentParser()
    classify.add_parser(parser.add_subparsers())
    args = parser.parse_args(["classify", "--checkpoint", ckpts["rgb"], *videos, "--topk", "2", "--json",
                              "--fuse-with", ckpts["flow"], "--rgb-weight", "0.3333"])
    assert classify.run(args) == 0
    rows = json.loads(capsys.readouterr().out)["videos"]  # --json: one object on stdout
    assert len(rows) == 2 and all(len(r["top"]) == 2 for r in rows)
    assert all(abs(sum(t["prob"] for t in r["top"]) - 1) < 1e-3 for r in rows)
    assert {t["class"] for t in rows[0]["top"]} == {"ApplyEyeMakeup", "BaseballPitch"}
