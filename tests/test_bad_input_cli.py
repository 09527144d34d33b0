"""Issue 15 part B: bad input through the command line gives a one-line error (exit 2) or the right
output, never a traceback and nothing silent: COCO-results ids that ``captionkit score`` matches,
numeric arguments, --nbest, non-UTF-8 files, missing CUDA, a closed pipe, METEOR's crash message,
streamed image loading, --json stdout, and a status line before retrieval's CCA."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch
from PIL import Image

from captionkit.cli import main
from captionkit.tasks import load_task
from captionkit.train import fit

from conftest import tiny_caption_recipe

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LATIN1 = "caf\u00e9 a dog runs".encode("latin-1")  # b"caf\xe9 ...": not UTF-8


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("badcli")
    fit(load_task(data=tiny_caption_recipe(root / "run")))
    return root / "run" / "best.pt"


def images(folder: Path, names: list[str], size: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.new("RGB", (size, size), (40 * k % 256, 90, 160)).save(folder / name)
    return [folder / n for n in names]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """main(argv) in this process -> (exit status, stdout, stderr); argparse exits count too."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, argv, *needles) -> str:
    code, out, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- 1: COCO results ids

def test_coco_format_ids_score_against_coco_karpathy_and_flickr8k_references(ckpt, tmp_path, capsys):
    coco = images(tmp_path / "coco", ["COCO_val2014_000000000042.jpg", "000000000007.jpg"])
    ann = {"images": [{"id": 42, "file_name": coco[0].name}, {"id": 7, "file_name": coco[1].name}],
           "annotations": [{"id": 1, "image_id": 42, "caption": "a red square"},
                           {"id": 2, "image_id": 7, "caption": "a blue circle"}]}
    (tmp_path / "captions.json").write_text(json.dumps(ann))
    code, out, err = run_cli(capsys, "caption", "--checkpoint", ckpt, "--format", "coco", tmp_path / "coco")
    assert code == 0, err
    assert sorted(r["image_id"] for r in json.loads(out)) == [7, 42]  # COCO's integer ids
    (tmp_path / "coco.json").write_text(out)
    code, out, err = run_cli(capsys, "score", "--results", tmp_path / "coco.json", "--references",
                             tmp_path / "captions.json", "--fast", "--json")
    assert code == 0, err
    assert json.loads(out)["settings"]["images"] == 2

    names = ["1000268201_693b08cb0e.jpg", "1000092795.jpg"]  # Flickr8k and Flickr30k style names
    images(tmp_path / "flickr", names)
    (tmp_path / "tokens.txt").write_text("".join(f"{n}#0\ta dog runs\n{n}#1\ta cat sits\n" for n in names))
    (tmp_path / "split.txt").write_text("\n".join(names) + "\n")
    karpathy = {"images": [{"filename": n, "split": "test", "sentences": [{"raw": "a dog"}]} for n in names]}
    (tmp_path / "dataset_flickr8k.json").write_text(json.dumps(karpathy))
    code, out, err = run_cli(capsys, "caption", "--checkpoint", ckpt, "--format", "coco", tmp_path / "flickr")
    assert code == 0, err
    assert sorted(r["image_id"] for r in json.loads(out)) == sorted(names)  # file names, as references key them
    (tmp_path / "flickr.json").write_text(out)
    for refs in (["--references", tmp_path / "tokens.txt", "--split-list", tmp_path / "split.txt"],
                 ["--references", tmp_path / "dataset_flickr8k.json", "--split", "test"]):
        code, _, err = run_cli(capsys, "score", "--results", tmp_path / "flickr.json", *refs, "--fast")
        assert code == 0, err


def test_coco_format_refuses_two_files_with_one_id(ckpt, tmp_path, capsys):
    images(tmp_path / "a", ["x.png"])
    images(tmp_path / "b", ["x.png"])
    one_line_error(capsys, ["caption", "--checkpoint", ckpt, "--format", "coco", tmp_path / "a", tmp_path / "b"],
                   str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "same image_id")
    images(tmp_path / "c", ["COCO_val2014_000000000042.jpg", "000000000042.jpg"])
    one_line_error(capsys, ["caption", "--checkpoint", ckpt, "--format", "coco", tmp_path / "c"], "42")


# ----------------------------------------------------------------------------- 2: numbers and --nbest

BAD_NUMBERS = [
    (["caption", "--checkpoint", "x.pt", "img", "--batch-size", "0"], "--batch-size"),
    (["caption", "--checkpoint", "x.pt", "img", "--batch-size", "-3"], "--batch-size"),
    (["evaluate", "--checkpoint", "x.pt", "--limit", "-5"], "--limit"),
    (["evaluate", "--checkpoint", "x.pt", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "--checkpoint", "x.pt", "--rgb-weight", "1.5"], "--rgb-weight"),
    (["evaluate", "--checkpoint", "x.pt", "--rgb-weight", "nan"], "--rgb-weight"),
    (["classify", "--checkpoint", "x.pt", "v.avi", "--topk", "0"], "--topk"),
    (["classify", "--checkpoint", "x.pt", "v.avi", "--rgb-weight", "-0.1"], "--rgb-weight"),
    (["describe", "--checkpoint", "x.pt", "--tuples", "t.json", "--batch-size", "-1"], "--batch-size"),
    (["retrieve", "r.toml", "--subset", "-5"], "--subset"),
    (["retrieve", "r.toml", "--subset", "0"], "--subset"),
    (["score", "--results", "r.json", "--references", "c.json", "--max-chars", "0"], "--max-chars"),
    (["score", "--results", "r.json", "--references", "c.json", "--meteor-timeout", "-1"], "--meteor-timeout"),
    (["score", "--results", "r.json", "--references", "c.json", "--meteor-timeout", "inf"], "--meteor-timeout"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--epochs", "-2"], "--epochs"),
    (["caption", "--checkpoint", "x.pt", "img", "--beam", "-1"], "--beam"),
    (["caption", "--checkpoint", "x.pt", "img", "--sample", "3", "--seed", str(2**70)], "--seed"),
]


@pytest.mark.parametrize("argv,option", BAD_NUMBERS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_NUMBERS])
def test_bad_numeric_argument_is_a_one_line_error(argv, option, capsys):
    one_line_error(capsys, argv, option, repr(argv[-1]))


def test_bad_number_through_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "captionkit", "caption", "--checkpoint", "x.pt", "img",
                           "--batch-size", "-3"], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "captionkit caption: error: argument --batch-size: expected an integer >= 1, got '-3' "
        "(see 'captionkit caption --help')"]


@pytest.mark.parametrize("fmt", ["text", "coco"])
def test_nbest_with_a_one_caption_format_is_an_error(ckpt, tmp_path, capsys, fmt):
    (img,) = images(tmp_path, ["a.png"])
    one_line_error(capsys, ["caption", "--checkpoint", ckpt, img, "--format", fmt, "--beam", "3", "--nbest", "3"],
                   "--nbest 3", f"--format {fmt}", "--format json")
    code, out, err = run_cli(capsys, "caption", "--checkpoint", ckpt, img, "--format", "json", "--beam", "3",
                             "--nbest", "3")
    assert code == 0 and len(json.loads(out)[0]["captions"]) == 3, err  # honoured where it can be


def test_nbest_is_refused_by_describe_text_and_evaluate(ckpt, tmp_path, capsys):
    one_line_error(capsys, ["describe", "--checkpoint", tmp_path / "none.pt", "--tuples", tmp_path / "t.json",
                            "--beam", "2", "--nbest", "2"], "--nbest 2", "--format text")
    one_line_error(capsys, ["evaluate", "--checkpoint", ckpt, "--beam", "2", "--nbest", "2", "--fast"],
                   "--nbest 2", "best caption")


@pytest.mark.parametrize("argv,needle", [(["--metrics", "bleu,nonsense"], "nonsense"), (["--tag", "a/b"], "'a/b'")])
def test_evaluate_names_fail_before_decoding(ckpt, tmp_path, capsys, monkeypatch, argv, needle):
    import captionkit.tasks.caption_eval as caption_eval

    monkeypatch.setattr(caption_eval, "evaluate_captions", lambda *a, **k: pytest.fail("decoded the split"))
    one_line_error(capsys, ["evaluate", "--checkpoint", ckpt, "--fast", "--out", tmp_path, *argv], argv[0], needle)


# ----------------------------------------------------------------------------- 3: files, devices, pipes

def test_non_utf8_recipe_is_a_one_line_error(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_bytes(b'task = "caption"\n# ' + LATIN1 + b"\n")
    one_line_error(capsys, ["train", recipe], str(recipe), "not UTF-8")
    one_line_error(capsys, ["retrieve", recipe], str(recipe), "not UTF-8")


def test_non_utf8_reference_and_tuple_files_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": "a.jpg", "caption": "a dog"}]))
    tokens, split = tmp_path / "tokens.txt", tmp_path / "split.txt"
    tokens.write_bytes(b"a.jpg#0\t" + LATIN1 + b"\n")
    split.write_text("a.jpg\n")
    one_line_error(capsys, ["score", "--results", tmp_path / "res.json", "--references", tokens,
                            "--split-list", split, "--fast"], str(tokens), "not UTF-8")
    tokens.write_text("a.jpg#0\ta dog\n")
    split.write_bytes(LATIN1 + b".jpg\n")
    one_line_error(capsys, ["score", "--results", tmp_path / "res.json", "--references", tokens,
                            "--split-list", split, "--fast"], str(split), "not UTF-8")
    split.write_text("a.jpg\n")
    results = tmp_path / "res.tsv"
    results.write_bytes(b"a.jpg\t" + LATIN1 + b"\n")
    one_line_error(capsys, ["score", "--results", results, "--references", tokens, "--split-list", split,
                            "--fast"], str(results), "not UTF-8")

    from captionkit.data.tuples import load_tuples
    from captionkit.data.video import read_class_index
    from captionkit.errors import UserError
    for name, read in (("t.json", load_tuples), ("t.jsonl", load_tuples), ("classInd.txt", read_class_index)):
        (tmp_path / name).write_bytes(b'{"slots": ["' + LATIN1 + b'"]}\n')
        with pytest.raises(UserError, match="not UTF-8"):
            read(tmp_path / name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [["caption", "--checkpoint", "x.pt", "img"], ["evaluate", "--checkpoint", "x.pt"],
                                  ["classify", "--checkpoint", "x.pt", "v.avi"],
                                  ["describe", "--checkpoint", "x.pt", "--tuples", "t.json"]],
                         ids=lambda a: a[0])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_one_line_error(argv, device, capsys):
    one_line_error(capsys, argv + ["--device", device], "--device", "CUDA is not available", "--device cpu")


def test_an_unknown_device_is_a_one_line_error(capsys):
    one_line_error(capsys, ["caption", "--checkpoint", "x.pt", "img", "--device", "gpu"], "--device", "'gpu'")


@pytest.fixture(scope="module")
def describer(tmp_path_factory) -> tuple[Path, Path]:
    """A 'describe' checkpoint (one epoch on four tuples) and a tuple file with 40 segments."""
    from captionkit.data.tuples import NONE, OTHER, SLOTS, Segment, TupleSet, save_tuples

    root = tmp_path_factory.mktemp("describe")
    labels = {s: [NONE, OTHER, "x", "y"] for s in SLOTS}
    segs = [Segment(id=f"v/{n}", tuple={s: ("x", "y")[(n + k) % 2] for k, s in enumerate(SLOTS)},
                    sentences=[("he cuts", "she washes")[n % 2]]) for n in range(40)]
    save_tuples(TupleSet(SLOTS, labels, segs), root / "tuples.json")
    fit(load_task(data={"task": "describe", "data": {"train": str(root / "tuples.json"),
                                                     "val": str(root / "tuples.json"), "min_count": 1},
                        "model": {"hidden": 16, "embed": 8, "dropout": 0.0},
                        "train": {"out_dir": str(root / "run"), "epochs": 1, "batch_size": 20,
                                  "progress": False}}))
    return root / "run" / "best.pt", root / "tuples.json"


def closed_pipe_run(argv: list[str]) -> tuple[int, str]:
    """Run captionkit with stdout a pipe whose reader has already gone (``... | head -0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write to stdout gets EPIPE
    with open(write_end, "wb") as stdout:
        proc = subprocess.run([sys.executable, "-m", "captionkit", *map(str, argv)], stdout=stdout,
                              stderr=subprocess.PIPE, text=True, env=ENV, timeout=300)
    return proc.returncode, proc.stderr


def test_a_closed_pipe_ends_quietly(ckpt, describer, tmp_path):
    imgs = images(tmp_path / "imgs", ["a.png", "b.png"])
    for argv in (["caption", "--checkpoint", ckpt, *imgs],
                 ["describe", "--checkpoint", describer[0], "--tuples", describer[1]]):
        code, err = closed_pipe_run(argv)
        assert code == 141, err  # 128 + SIGPIPE, as a shell reports a filter ended by a closed pipe
        assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_head_in_a_shell_pipeline_sees_the_first_line(ckpt, tmp_path):
    imgs = images(tmp_path / "imgs", [f"{k}.png" for k in range(3)])
    cmd = f"{sys.executable} -m captionkit caption --checkpoint {ckpt} {' '.join(map(str, imgs))} | head -1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith(str(imgs[0])), proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- 4: METEOR's last words

def test_meteor_crash_message_is_read_even_when_stderr_comes_late(tmp_path):
    """Java closes stdout first and writes its exception a moment later: the error still quotes it."""
    from captionkit.metrics import official

    java = tmp_path / "java"
    java.write_text("#!/bin/sh\nexec 1>&-\nsleep 0.5\necho 'java.lang.RuntimeException: boom' >&2\nexit 1\n")
    java.chmod(0o755)
    t = time.monotonic()
    with pytest.raises(official.MetricError, match="exited.*boom"):
        official.meteor({"1": ["a dog"]}, {"1": ["a dog"]}, java=str(java), timeout=30)
    assert time.monotonic() - t < 10


# ----------------------------------------------------------------------------- 5: streamed images

def test_caption_loads_images_batch_by_batch(ckpt, tmp_path, capsys, monkeypatch):
    """Never more than one batch of images loaded ahead of the CNN, and no full-size image kept."""
    import captionkit.features
    import captionkit.tasks.caption_generate as gen
    from captionkit.encoders import ImageEncoder

    imgs = images(tmp_path / "imgs", [f"{k}.png" for k in range(7)], size=48)
    real_load, real_forward = captionkit.features.load_image, ImageEncoder.forward
    live: list[weakref.ref] = []
    loads, encoded, seen = [0], [0], []

    def load(path):
        img = real_load(path)
        loads[0] += 1
        live.append(weakref.ref(img))
        return img

    def forward(self, x):
        alive = sum(r() is not None for r in live)
        seen.append((loads[0] - encoded[0], alive))  # (images loaded but not encoded, PIL images alive)
        encoded[0] += x.size(0)
        return real_forward(self, x)

    monkeypatch.setattr(captionkit.features, "load_image", load)
    monkeypatch.setattr(gen, "load_image", load, raising=False)
    monkeypatch.setattr(ImageEncoder, "forward", forward)
    code, out, err = run_cli(capsys, "caption", "--checkpoint", ckpt, "--batch-size", "3", *imgs)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 7 and loads[0] == 7
    assert [pending for pending, _ in seen] == [3, 3, 1]  # each batch read just before it is encoded
    assert all(alive == 0 for _, alive in seen)  # the PIL images are gone once preprocessed
    assert "encoding" in err  # more than one batch: progress on stderr


def test_skip_bad_still_skips_while_streaming(ckpt, tmp_path, capsys):
    imgs = images(tmp_path, ["a.png", "c.png"])
    (tmp_path / "b.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "caption", "--checkpoint", ckpt, "--batch-size", "2", "--skip-bad", tmp_path)
    assert code == 0 and [line.split("\t")[0] for line in out.strip().splitlines()] == list(map(str, imgs))
    assert "b.png" in err and "1 unreadable image(s) skipped" in err
    one_line_error(capsys, ["caption", "--checkpoint", ckpt, tmp_path], "b.png")


# ----------------------------------------------------------------------------- 6: --json stdout

def test_score_json_stdout_is_one_object(tmp_path, capsys):
    (tmp_path / "res.tsv").write_text("a.jpg\ta dog runs\n")
    (tmp_path / "tok.txt").write_text("a.jpg#0\ta dog runs fast\n")
    (tmp_path / "split.txt").write_text("a.jpg\n")
    code, out, err = run_cli(capsys, "score", "--results", tmp_path / "res.tsv", "--references", tmp_path / "tok.txt",
                             "--split-list", tmp_path / "split.txt", "--fast", "--json")
    assert code == 0, err
    assert set(json.loads(out)) >= {"Bleu_4", "CIDEr", "settings"}


def test_evaluate_json_stdout_is_one_object(ckpt, tmp_path, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", ckpt, "--split", "test", "--fast", "--out",
                             tmp_path, "--json")
    assert code == 0, err
    assert json.loads(out)["images"] == 8 and "Bleu_4" in err  # the table went to stderr


def test_demo_json_stdout_is_one_object(tmp_path, capsys, monkeypatch):
    import captionkit.cli.demo as demo
    import captionkit.metrics

    fast = captionkit.metrics.score_captions  # the fast exact path: no Java, same stdout routing
    monkeypatch.setattr(captionkit.metrics, "score_captions", lambda refs, res: fast(refs, res, official=False))
    tiny = tiny_caption_recipe(tmp_path, data={"group_captions": True})
    monkeypatch.setattr(demo, "DEMO", {k: v for k, v in tiny.items() if k != "decode"} | {"decode": {"max_len": 8}})
    code, out, err = run_cli(capsys, "demo", "--out", tmp_path / "demo", "--json")
    assert code == 0, err
    assert "CIDEr" in json.loads(out) and "epoch 1/1" in err and "examples" in err


def test_classify_json_stdout_is_one_object(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    import captionkit.tasks.activity_eval as activity_eval
    import captionkit.tasks.loading as loading

    videos = [tmp_path / "a.avi", tmp_path / "b.avi"]
    for v in videos:
        v.write_bytes(b"")
    task = SimpleNamespace(classes=["jump", "run", "swim"])
    monkeypatch.setattr(loading, "load_checkpoint", lambda *a, **k: (task, None))
    monkeypatch.setattr(activity_eval, "video_probabilities",
                        lambda *a, **k: torch.tensor([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]))
    code, out, err = run_cli(capsys, "classify", "--checkpoint", "x.pt", *videos, "--topk", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [v["video"] for v in result["videos"]] == list(map(str, videos))
    assert [[t["class"] for t in v["top"]] for v in result["videos"]] == [["run", "jump"], ["jump", "run"]]


def test_retrieve_json_stdout_is_one_object(tmp_path, capsys, monkeypatch):
    import captionkit.cli.retrieve as retrieve

    def experiment(cfg, log=print):
        log("Flickr8k: 10 train images")  # the experiment's progress lines
        return {"method": cfg.method, "images": 2, "seconds": 1.0, "metrics": {
            d: {"R@1": 50.0, "R@5": 100.0, "R@10": 100.0, "medr": 1.0} for d in ("annotation", "search")}}

    monkeypatch.setattr(retrieve, "run_experiment", experiment)
    (tmp_path / "r.toml").write_text('method = "mean"\n')
    code, out, err = run_cli(capsys, "retrieve", tmp_path / "r.toml", "--out", tmp_path / "r.json", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["search"]["R@1"] == 50.0
    assert "Flickr8k: 10 train images" in err and "| mean |" in err
    assert json.loads((tmp_path / "r.json").read_text())["method"] == "mean"


def test_retrieve_output_that_cannot_be_written_fails_before_the_experiment(tmp_path, capsys, monkeypatch):
    import captionkit.cli.retrieve as retrieve

    monkeypatch.setattr(retrieve, "run_experiment", lambda *a, **k: pytest.fail("ran the experiment"))
    (tmp_path / "r.toml").write_text('method = "mean"\n')
    one_line_error(capsys, ["retrieve", tmp_path / "r.toml", "--out", tmp_path], str(tmp_path), "a folder")
    (tmp_path / "file").write_text("")
    one_line_error(capsys, ["retrieve", tmp_path / "r.toml", "--out", tmp_path / "file" / "r.json"], "cannot write")


# ----------------------------------------------------------------------------- 7: retrieval status line

def test_cca_selection_says_what_it_does_before_it_starts(monkeypatch):
    from captionkit import retrieval
    from captionkit.tasks.retrieve import RetrieveConfig, run_cca

    lines: list[str] = []
    before: list[list[str]] = []
    real = retrieval.select_cca

    def select(*a, **k):
        before.append(list(lines))
        return real(*a, **k)

    monkeypatch.setattr(retrieval, "select_cca", select)
    g = torch.Generator().manual_seed(0)
    img, sent = torch.randn(12, 6, generator=g), torch.randn(24, 5, generator=g)
    s2i = torch.arange(12).repeat_interleave(2)  # (24,) two sentences per image
    cfg = RetrieveConfig(val_images=4)
    result = run_cca(cfg, img, sent, s2i, img[:3], sent[:6], s2i[:6], log=lines.append)
    assert before and any("CCA" in line and "8 images" in line for line in before[0])
    assert any("done in" in line for line in lines) and "reg" in result["selected"]
