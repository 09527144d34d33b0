"""Caption annotation loaders (COCO, Karpathy, Flickr8k) and the synthetic scenes."""
import json

import numpy as np
import pytest

from captionkit.data.captions import load_coco, load_flickr8k, load_karpathy
from captionkit.data.synth import captions, make_scene, synth_items, write_coco
from captionkit.errors import UserError


def test_coco(tmp_path):
    ann = {"images": [{"id": 7, "file_name": "a.jpg"}, {"id": 9, "file_name": "b.jpg"}],
           "annotations": [{"image_id": 7, "caption": "x y"}, {"image_id": 9, "caption": "z"},
                           {"image_id": 7, "caption": "w"}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(ann))
    items = load_coco(path, tmp_path)
    assert [(i.image_id, i.file.name, i.captions) for i in items] == [("7", "a.jpg", ["x y", "w"]),
                                                                      ("9", "b.jpg", ["z"])]


def test_karpathy_split_and_restval(tmp_path):
    data = {"images": [{"filename": f"{i}.jpg", "split": s, "sentences": [{"raw": f"cap {i}"}]}
                       for i, s in enumerate(["train", "restval", "val", "test"])]}
    path = tmp_path / "dataset_x.json"
    path.write_text(json.dumps(data))
    assert [i.image_id for i in load_karpathy(path, "train")] == ["0.jpg", "1.jpg"]
    assert [i.image_id for i in load_karpathy(path, "train", restval_in_train=False)] == ["0.jpg"]
    assert load_karpathy(path, "val")[0].captions == ["cap 2"]
    with pytest.raises(UserError, match="split must be one of"):
        load_karpathy(path, "dev")


def test_flickr8k(tmp_path):
    tok = tmp_path / "tok.txt"
    tok.write_text("a.jpg#0\tA dog .\na.jpg#1\tA cat\nb.jpg#0\tBird\nghost.jpg.1#0\tnothing\n")
    split = tmp_path / "split.txt"
    split.write_text("b.jpg\na.jpg\n")
    items = load_flickr8k(tok, split, tmp_path)
    assert [(i.image_id, i.captions) for i in items] == [("b.jpg", ["Bird"]), ("a.jpg", ["A dog .", "A cat"])]
    split.write_text("c.jpg\n")
    with pytest.raises(UserError, match="c.jpg.*has no caption"):
        load_flickr8k(tok, split)
    tok.write_text("garbage line without a tab\n")
    with pytest.raises(UserError, match=r"tok.txt:1: expected"):
        load_flickr8k(tok, split)


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"), ('{"images": []}', "not a COCO")])
def test_bad_json_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        load_coco(path)
    assert "bad.json" in str(e.value) and "\n" not in str(e.value)


def test_synthetic_scenes_are_deterministic_and_captions_match_positions():
    a, b = synth_items("train", 50, seed=3), synth_items("train", 50, seed=3)
    assert [x.captions for x in a] == [x.captions for x in b]
    assert a[5].image().tobytes() == b[5].image().tobytes()
    assert {x.image_id for x in synth_items("val", 50, seed=3)}.isdisjoint(x.image_id for x in a)
    for i in range(200):
        scene = make_scene(np.random.default_rng(i))
        caps = captions(scene)
        assert len(caps) == 5
        if len(scene.shapes) == 2:
            s0, s1 = scene.shapes
            if "to the left of" in caps[0]:
                assert s0.cx < s1.cx
            if "above" in caps[0]:
                assert s0.cy < s1.cy


def test_synthetic_scenes_are_identical_across_processes():
    import subprocess
    import sys
    code = "from captionkit.data.synth import synth_items; print([i.captions for i in synth_items('train', 30)])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(outs) == 1


def test_write_coco_round_trips_through_the_loader(tmp_path):
    path = write_coco(tmp_path, "val", 4, seed=1, size=32)
    items = load_coco(path, tmp_path / "val")
    assert len(items) == 4 and all(i.file.is_file() and len(i.captions) == 5 for i in items)
