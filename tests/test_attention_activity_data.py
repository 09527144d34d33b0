"""Data for soft-attention action recognition (Sharma et al.): the recipes load, the UCF-11 / HMDB-51 /
Hollywood2 readers on hand-made folders and split files, the where-matters synthetic set and its boxes,
and the numbers that summarise attention maps (box share vs chance, movement over time)."""
import math
from pathlib import Path

import numpy as np
import pytest

from captionkit.attention_maps import best_fixed_cell, box_share, map_summary, motion_stats, pixel_map
from captionkit.data.action_sets import read_hmdb51, read_hollywood2, read_ucf11
from captionkit.data.synth_attention import CLASSES, SynthAttentionSpec, read_boxes, render_video, write_synth_attention
from captionkit.errors import UserError
from captionkit.tasks import load_task


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


def test_best_fixed_cell_is_the_best_one_hot_map_and_no_map_beats_it():
    # 2 x 2 grid over 10 x 10 frames. Video A: in cell 0, then across cells 0 and 1, then absent;
    # video B: in cell 1 twice. Cell 0: (1 + 1) / 2 for A, 0 for B; cell 1: 0.5 for A, 1 for B.
    boxes = [[[1, 1, 3, 3], [3, 1, 7, 3], []], [[6, 1, 8, 3], [6, 1, 8, 3]]]
    cell, share = best_fixed_cell(boxes, (10, 10), K=2)
    assert (cell, share) == (1, pytest.approx(0.75))
    rng = np.random.default_rng(0)
    for _ in range(20):  # any fixed map, the same in every frame, does no better
        w = rng.dirichlet(np.ones(4))
        got = np.mean([box_share(np.tile(w, (len(v), 1)), v, (10, 10))["cell_share"] for v in boxes])
        assert got <= share + 1e-9


def test_map_summary_is_box_share_zone_share_and_motion_stats():
    frames = [np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0]]), np.full((2, 4), 0.25)]  # two videos, (T=2, P=4)
    boxes = [[[1, 1, 3, 3], [1, 1, 3, 3]], [[], [6, 6, 8, 8]]]
    windows = [f[None] for f in frames]  # one window per video
    got = map_summary(frames, windows, boxes, [0, 0, 5, 5], (10, 10))  # zone = cell 0
    assert got["cell_share"] == pytest.approx((0.75 + 0.25) / 2)
    assert got["zone_share"] == pytest.approx((0.75 + 0.25) / 2) and got["zone_chance"] == pytest.approx(0.25)
    assert got["total_variation"] == pytest.approx(motion_stats(np.stack(frames))["total_variation"])
