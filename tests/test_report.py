"""captionkit.report: HTML reports of captions, training runs, activity and video-description results.

Every input here is a small hand-made file in the formats the other commands write; the browser
behaviour (sorting, filtering, no script execution) is tested in test_report_browser.py.
"""
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from captionkit.cli import main
from captionkit.errors import UserError
from captionkit.metrics import score_captions
from captionkit.report.captions import write_caption_report
from captionkit.report.inputs import read_captions, source_kind
from captionkit.report.run import read_log, wall_seconds, write_run_report
from captionkit.report.thumbs import find_images, link_uri
from captionkit.report.video import write_activity_report, write_describe_report

XSS = "<script>alert(1)</script> a dog"
REFS = {
    "1001.jpg": ["a dog runs on the grass", "a brown dog running", "the dog is running on grass"],
    "1002.jpg": ["a man rides a bike", "a person on a bicycle", "a man cycling down the road"],
    "1003.jpg": ["two children play in the snow", "kids playing in snow", "two kids in the snow"],
    "1004.jpg": ["a woman holds an umbrella", "a lady with an umbrella in the rain", "a woman in the rain"],
}
CAPTIONS = [  # 1003's caption is a training caption (modulo case and punctuation); 1004 has no image
    {"image_id": "1001.jpg", "captions": [{"caption": "a dog runs on the grass", "logp": -2.5},
                                          {"caption": "a dog on grass", "logp": -3.75}]},
    {"image_id": "1002.jpg", "caption": XSS},
    {"image_id": "1003.jpg", "caption": "Two children play in the snow."},
    {"image_id": "1004.jpg", "caption": "a woman with an umbrella"},
]
TRAIN = ["two children play in the snow", "a cat sleeps"]


def make_caption_files(root):
    """Images (three of four), a Flickr8k-style token file + split lists, a captions file."""
    images = root / "images"
    images.mkdir(parents=True)
    for k, name in enumerate(sorted(REFS)[:3]):
        Image.new("RGB", (224, 224), (60 * k, 120, 200 - 50 * k)).save(images / name, quality=90)
    tokens = root / "tokens.txt"
    lines = [f"{i}#{n}\t{c}" for i, caps in REFS.items() for n, c in enumerate(caps)]
    lines += [f"train{n}.jpg#0\t{c}" for n, c in enumerate(TRAIN)]
    tokens.write_text("\n".join(lines) + "\n")
    (root / "dev.txt").write_text("\n".join(REFS) + "\n")
    (root / "train.txt").write_text("\n".join(f"train{n}.jpg" for n in range(len(TRAIN))) + "\n")
    caps = root / "captions_val_beam3.json"
    caps.write_text(json.dumps(CAPTIONS))
    return {"captions": caps, "tokens": tokens, "dev": root / "dev.txt", "train": root / "train.txt",
            "images": images}


def report_args(f, *extra):
    return ["report", str(f["captions"]), "--references", str(f["tokens"]), "--split-list", str(f["dev"]),
            "--train-split-list", str(f["train"]), "--images", str(f["images"]), *extra]


@pytest.fixture(scope="module")
def caption_page(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("captions")
    f = make_caption_files(tmp_path)
    assert main(report_args(f)) == 0
    page = tmp_path / "report_val_beam3.html"
    return f, page.read_text()


def test_one_card_per_image_with_escaped_captions_and_missing_image(caption_page):
    _, text = caption_page
    assert text.count('<div class="card" ') == len(CAPTIONS)
    assert "<script>alert(1)" not in text                          # never raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a dog" in text    # shown as text
    assert text.count('class="missing"') == 1                      # 1004.jpg has no file
    assert re.search(r"<td>missing images</td><td class=\"num\">1</td>", text)
    assert "http://" not in text and "https://" not in text        # offline: nothing fetched


def test_per_image_scores_equal_the_scorer_and_feed_the_sort(caption_page):
    _, text = caption_page
    res = {c["image_id"]: c.get("caption") or c["captions"][0]["caption"] for c in CAPTIONS}
    ref = score_captions(REFS, res, metrics=("bleu", "cider"), official=False, per_image=True).per_image
    shown = dict(re.findall(r'data-cider="([0-9.]+)">.*?<div class="id">([^<]+)</div>', text, flags=re.S))
    got = {i: float(v) for v, i in shown.items()}
    assert set(got) == set(REFS)
    for i in REFS:
        assert got[i] == pytest.approx(ref[i]["CIDEr"], abs=1e-6)


def test_nbest_logp_and_training_mark(caption_page):
    _, text = caption_page
    assert "(log p -2.50)" in text and "a dog on grass" in text and "(log p -3.75)" in text
    blocks = text.split('<div class="card" ')[1:]
    marked = [b for b in blocks if 'class="badge"' in b]
    assert len(marked) == 1 and "1003.jpg" in marked[0]
    assert re.search(r"<td>captions copied from the training set</td><td class=\"num\">1</td>", text)
    assert "Caption statistics (LRCN Sec. 5.2)" in text and "<td>in_training</td>" in text


def test_thumbnails_are_small_jpegs(caption_page):
    _, text = caption_page
    blob = re.search(r'<script type="application/json" id="thumbs">(.*?)</script>', text, flags=re.S).group(1)
    uris = json.loads(blob)                               # one per card, by card index; None: missing
    assert [u is None for u in uris] == [False, False, False, True]
    assert re.findall(r'<img class="thumb" data-k="(\d)"', text) == ["0", "1", "2"]
    for u in uris[:3]:
        assert u.startswith("data:image/jpeg;base64,")
        raw = base64.b64decode(u.split(",")[1])
        assert len(raw) < 15_000
        img = Image.open(io.BytesIO(raw))
        assert img.format == "JPEG" and max(img.size) == 192


def test_link_images_links_the_originals(tmp_path):
    f = make_caption_files(tmp_path)
    out = tmp_path / "pages" / "r.html"
    assert main(report_args(f, "--link-images", "--out", str(out))) == 0
    text = out.read_text()
    assert "data:image/jpeg" not in text
    assert text.count('src="../images/100') == 3
    assert link_uri(tmp_path / "images" / "a b.jpg", tmp_path / "pages") == "../images/a%20b.jpg"


def test_plots_are_embedded_pngs(caption_page):
    _, text = caption_page
    for title in ("CIDEr-D histogram", "length", "words"):
        m = re.search(rf'<img src="data:image/png;base64,([^"]+)" alt="{title}"', text)
        assert m, title
        assert Image.open(io.BytesIO(base64.b64decode(m.group(1)))).format == "PNG"


def test_find_images_by_name_stem_and_coco_number(tmp_path):
    for name in ("a.jpg", "b.png", "COCO_val2014_000000000042.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = find_images(tmp_path, ["a.jpg", "b", "42", "notes", "zzz"])
    assert found["a.jpg"].name == "a.jpg" and found["b"].name == "b.png"
    assert found["42"].name == "COCO_val2014_000000000042.jpg"
    assert found["notes"] is None and found["zzz"] is None
    assert find_images(tmp_path / "absent", ["a.jpg"]) == {"a.jpg": None}


@pytest.mark.parametrize("content, message", [
    ("[{", "not valid JSON"),
    ('{"x": 1}', "JSON list"),
    ('[{"caption": "a"}]', "image_id"),
    ('[{"image_id": 1, "caption": "a"}, {"image_id": "1", "caption": "b"}]', "appears twice"),
    ('[{"image_id": 1, "captions": [{"caption": "a", "logp": "x"}]}]', "logp"),
    ('[{"image_id": 1, "caption": "a dog", "attention": [[1, 0, 0]]}]', "square"),
    ('[{"image_id": 1, "caption": "a dog", "attention": [[1, 0, 0, 0]]}]', "1 maps for a caption of 2"),
])
def test_bad_captions_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        read_captions(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    f = make_caption_files(tmp_path)
    f["captions"].write_bytes(b"\xff\xfe not json")
    assert main(report_args(f)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "captions_val_beam3.json" in err
    assert main(["report", str(tmp_path / "nothing.json")]) == 2
    f = make_caption_files(tmp_path / "again")
    assert main(report_args(f, "--images", str(tmp_path / "no-such-folder"))) == 2
    assert "no such folder" in capsys.readouterr().err


def test_attention_maps_become_one_tile_per_word(tmp_path):
    f = make_caption_files(tmp_path)
    maps = np.zeros((5, 3, 3))                       # "a dog runs on the" -> 5 words
    for t in range(5):
        maps[t].flat[t] = 1.0
    caps = tmp_path / "att.json"
    caps.write_text(json.dumps([{"image_id": "1001.jpg", "caption": "a dog runs on the",
                                 "attention": maps.reshape(5, 9).tolist()},
                                {"image_id": "1004.jpg", "caption": "a woman", "attention": maps[:3].tolist()}]))
    out = tmp_path / "att.html"
    assert main(["report", str(caps), "--images", str(f["images"]), "--out", str(out)]) == 0
    text = out.read_text()
    tiles = re.findall(r'<img src="(data:image/jpeg[^"]+)" alt="attention for ([^"]+)">', text)
    assert [w for _, w in tiles] == ["a", "dog", "runs", "on", "the", "a", "woman", "&lt;end&gt;"]
    # a tile's brightest red is where its map puts the weight (grid cell t of a 3 x 3 grid)
    for t in range(5):
        px = np.asarray(Image.open(io.BytesIO(base64.b64decode(tiles[t][0].split(",")[1]))), np.float32)
        red = px[..., 0] - px[..., 1]                              # (68, 68)
        r, c = np.unravel_index(red.argmax(), red.shape)
        assert (r * 3 // 68, c * 3 // 68) == divmod(t, 3)


def test_library_call_takes_images_in_memory_and_given_scores(tmp_path):
    images = {"x": Image.new("RGB", (50, 80), "red")}
    path = write_caption_report(tmp_path / "r.html", {"x": [("a red box", None)], "y": [("a box", -1.0)]},
                                {}, image_of=images.get, per_image={"x": {"CIDEr": 1.5, "METEOR": 0.25}},
                                summary={"scores": {"CIDEr": 0.75}}, command="captionkit evaluate ...",
                                progress=False)
    text = path.read_text()
    assert 'data-cider="1.500000"' in text and "METEOR 0.2500" in text
    assert text.count('class="missing"') == 1 and "captionkit evaluate ..." in text
    assert "<td>CIDEr</td>" in text


# ----------------------------------------------------------------------------- training runs

def write_log(path, records):
    path.mkdir(parents=True, exist_ok=True)
    (path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_run_report_from_a_resumed_log(tmp_path):
    run = tmp_path / "runs" / "r1"
    write_log(run, [
        {"event": "train", "epoch": 1, "step": 5, "loss": 4.0, "lr": 1e-3, "time": 1e9},
        {"event": "epoch", "epoch": 1, "train_loss": 4.0, "val": {"CIDEr": 0.2, "loss": 3.0}, "time": 100.0},
        {"event": "epoch", "epoch": 2, "train_loss": 3.0, "val": {"CIDEr": 0.4, "loss": 2.5}, "time": 200.0},
        {"event": "epoch", "epoch": 3, "train_loss": 2.5, "val": {"CIDEr": 0.3, "loss": 2.4}, "time": 90.0},
    ])                                                   # epoch 3 ran in a resumed process
    epochs, steps = read_log(run / "log.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and len(steps) == 1
    assert wall_seconds(epochs) == 290.0
    page = write_run_report(run)
    text = page.read_text()
    assert page == run / "report.html"
    assert "best epoch" in text and "2 (CIDEr = 0.4000)" in text   # no checkpoint: first val metric
    assert "0 h 04 min 50 s (290 s)" in text
    assert len(re.findall(r'<img src="data:image/png;base64,[^"]+" alt="(loss|val CIDEr|val loss)"', text)) == 3


@pytest.mark.parametrize("line, message", [("{oops", "not valid JSON"), ('{"event": "epoch"}', "integer 'epoch'"),
                                           ('{"event": "epoch", "epoch": 1}', "train_loss")])
def test_bad_run_logs_are_one_line_errors(tmp_path, line, message):
    (tmp_path / "log.jsonl").write_text(line + "\n")
    with pytest.raises(UserError, match=message):
        read_log(tmp_path / "log.jsonl")
    with pytest.raises(UserError, match="no log.jsonl"):
        read_log(tmp_path / "empty" / "log.jsonl")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny captioner trained for 2 epochs on synthetic images (seconds)."""
    from conftest import tiny_caption_recipe
    from captionkit.tasks import load_task
    from captionkit.train import fit

    tmp = tmp_path_factory.mktemp("trained")
    return tmp / "run", fit(load_task(data=tiny_caption_recipe(tmp / "run", train={"epochs": 2})))


def test_run_report_of_a_real_training_run(trained):
    run, summary = trained
    assert main(["report", str(run)]) == 0
    text = (run / "report.html").read_text()
    best_epoch = 1 + [r["val"]["CIDEr"] for r in summary["history"]].index(summary["best"])
    assert "<td>task</td><td>caption</td>" in text and "CIDEr (higher is better)" in text
    assert f"<td>best epoch</td><td>{best_epoch} (CIDEr" in text
    assert "[train]" in text and "epochs = 2" in text            # the config, from best.pt


def test_evaluate_writes_the_report_next_to_its_files(trained, tmp_path):
    run, _ = trained
    args = ["evaluate", "--checkpoint", str(run / "best.pt"), "--split", "test", "--fast", "--limit", "5"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    text = (tmp_path / "a" / "report_test_greedy.html").read_text()
    captions = json.loads((tmp_path / "a" / "captions_test_greedy.json").read_text())
    scores = json.loads((tmp_path / "a" / "scores_test_greedy.json").read_text())
    assert text.count('<div class="card" ') == len(captions) == 5
    assert text.count('class="missing"') == 0 and text.count('<img class="thumb" data-k=') == 5  # rendered images
    assert f"<td>checkpoint</td><td>{run / 'best.pt'}</td>" in text and "<td>command</td>" in text
    assert f"<td>CIDEr</td><td class=\"num\">{scores['scores']['CIDEr']:.4f}</td>" in text
    assert main(args + ["--out", str(tmp_path / "b"), "--no-report"]) == 0
    assert not list((tmp_path / "b").glob("*.html"))
    assert sorted(p.name for p in (tmp_path / "b").glob("*.json")) == [
        "captions_test_greedy.json", "per_image_test_greedy.json", "scores_test_greedy.json"]
    per_image = json.loads((tmp_path / "b" / "per_image_test_greedy.json").read_text())
    assert len(per_image) == 5 and all(set(v) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr"}
                                       for v in per_image.values())


# ----------------------------------------------------------------------------- video tasks

def test_activity_report_confusion_per_class_and_attention_strips(tmp_path):
    frame = tmp_path / "f0.jpg"
    Image.new("RGB", (64, 64), "gray").save(frame)
    scores = {"checkpoint": "runs/a/best.pt", "split": "test", "videos": 5, "accuracy": 0.6,
              "mean_class_accuracy": 0.5, "per_class_accuracy": {"jump": 1.0, "<b>run</b>": 0.0},
              "classes": ["jump", "<b>run</b>"], "confusion": [[3, 0], [2, 0]],
              "attention": {"v1": {"weights": np.full((4, 2, 2), 0.25).tolist(), "label": "jump",
                                   "pred": "jump", "frames": ["f0.jpg"]}}}
    path = tmp_path / "test_rgb_scores.json"
    path.write_text(json.dumps(scores))
    assert source_kind(path) == "activity"
    assert main(["report", str(path)]) == 0
    text = (tmp_path / "test_rgb_scores.html").read_text()
    assert "<b>run</b>" not in text and "&lt;b&gt;run&lt;/b&gt;" in text
    assert re.search(r"<td>&lt;b&gt;run&lt;/b&gt;</td><td class=\"num\">0.0000</td><td class=\"num\">2</td>", text)
    assert 'alt="confusion"' in text and 'alt="per-class accuracy"' in text
    assert len(re.findall(r"<figcaption>t=\d</figcaption>", text)) == 4
    path.write_text(json.dumps(scores | {"confusion": [[1, 2, 3]]}))
    with pytest.raises(UserError, match="expected 2 x 2"):
        write_activity_report(path)


def test_describe_report_segments_tuples_sentences(tmp_path):
    tuples = {"format": "captionkit-tuples/1", "slots": ["activity", "object"],
              "labels": {"activity": ["<none>", "<other>", "cut", "wash"], "object": ["<none>", "<other>", "cucumber"]},
              "segments": [{"id": "s1/1", "video": "s1", "start": 1.0, "end": 4.5,
                            "tuple": {"activity": "cut", "object": "cucumber"},
                            "probs": {"activity": {"cut": 0.8, "wash": 0.2}},
                            "sentences": ["He cut the cucumber", "The person cuts a cucumber"]},
                           {"id": "s1/2", "tuple": {"activity": "wash", "object": "cucumber"},
                            "sentences": ["He washed the cucumber"]}]}
    tp = tmp_path / "test.json"
    tp.write_text(json.dumps(tuples))
    sent = tmp_path / "sentences_test_greedy.json"
    sent.write_text(json.dumps({"s1/1": "he cut the cucumber", "s1/2": "he washed <i>it</i>"}))
    (tmp_path / "scores.json").write_text(json.dumps({"tuples": str(tp), "split": "test", "scores": {"Bleu_4": 0.5}}))
    assert source_kind(sent) == "describe"
    assert main(["report", str(sent), "--scores", str(tmp_path / "scores.json")]) == 0
    text = (tmp_path / "report_test_greedy.html").read_text()
    assert text.count('<div class="card" ') == 2 and 'class="thumb"' not in text
    assert "s1 1.0–4.5 s" in text and "<td>activity</td><td>cut (0.80)</td>" in text
    assert "he washed &lt;i&gt;it&lt;/i&gt;" in text and "The person cuts a cucumber" in text
    with pytest.raises(UserError, match="not in"):
        write_describe_report(tmp_path / "x.html", {"nope": [("a", None)]}, tp)
    assert main(["report", str(sent)]) == 2                        # no tuple file named anywhere
