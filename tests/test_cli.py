"""The command line: captioning a folder, evaluate, and one-line errors with a non-zero exit."""
import json
import os
import subprocess
import sys

import pytest

from captionkit.data.synth import write_coco
from captionkit.tasks import load_task
from captionkit.train import fit

from conftest import tiny_caption_recipe

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "captionkit", *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    fit(load_task(data=tiny_caption_recipe(root / "run", train={"epochs": 2})))
    write_coco(root / "imgs", "test", 3, size=32)
    return root


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_caption_formats_and_folder_expansion(trained):
    ckpt = trained / "run" / "best.pt"
    text = cli("caption", "--checkpoint", ckpt, trained / "imgs" / "test")
    assert text.returncode == 0, text.stderr
    rows = [line.split("\t") for line in text.stdout.strip().splitlines()]
    assert len(rows) == 3 and all(r[0].endswith(".png") for r in rows)
    coco = json.loads(cli("caption", "--checkpoint", ckpt, "--format", "coco", trained / "imgs" / "test").stdout)
    assert [c["caption"] for c in coco] == [r[1] for r in rows]  # same captions, batched either way
    nbest = json.loads(cli("caption", "--checkpoint", ckpt, "--format", "json", "--beam", "3", "--nbest", "3",
                           sorted((trained / "imgs" / "test").iterdir())[0]).stdout)
    logps = [c["logp"] for c in nbest[0]["captions"]]
    assert len(logps) == 3 and logps == sorted(logps, reverse=True)


def test_evaluate_writes_captions_and_scores(trained):
    out = trained / "eval"
    proc = cli("evaluate", "--checkpoint", trained / "run" / "best.pt", "--split", "test", "--fast",
               "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary["scores"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr"}  # --fast: no Java metrics
    assert summary["images"] == 8 and summary["settings"]["path"] == "fast"
    assert len(json.loads((out / "captions_test_greedy.json").read_text())) == 8


def test_evaluate_output_names_differ_for_every_decoding():
    """Two decodings evaluated into one folder must never overwrite each other's files."""
    from captionkit.tasks.outputs import decode_tag
    from captionkit.decoding import DecodeConfig

    configs = [DecodeConfig(method="greedy"), DecodeConfig(method="beam", beam_size=3),
               DecodeConfig(method="beam", beam_size=3, length_norm=0.5),
               DecodeConfig(method="beam", beam_size=3, length_norm=1.0),
               DecodeConfig(method="sample", n=10, temperature=1.5), DecodeConfig(method="sample", n=10, temperature=2)]
    tags = [decode_tag(c) for c in configs]
    assert len(set(tags)) == len(tags) and tags[1] == "beam3" and tags[2] == "beam3_ln0.5"


def test_an_ensemble_of_copies_captions_like_the_model(trained, tmp_path):
    ckpt = trained / "run" / "best.pt"
    runs = {}
    for n in (1, 2):
        proc = cli("evaluate", *["--checkpoint", ckpt] * n, "--split", "test", "--fast", "--beam", "2",
                   "--out", tmp_path, "--json")
        assert proc.returncode == 0, proc.stderr
        runs[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs[2]["ensemble"] == [str(ckpt)] * 2 and "ensemble" not in runs[1]
    assert runs[2]["scores"] == runs[1]["scores"]
    single, double = (json.loads((tmp_path / f"captions_test_beam2{t}.json").read_text()) for t in ("", "_ens2"))
    assert single == double and len(single) == 8
    text = [cli("caption", *["--checkpoint", ckpt] * n, trained / "imgs" / "test").stdout for n in (1, 2)]
    assert text[0] == text[1] and len(text[0].splitlines()) == 3


def test_ensemble_members_must_share_the_vocabulary(trained, tmp_path):
    fit(load_task(data=tiny_caption_recipe(tmp_path / "other", data={"min_count": 20},
                                           train={"max_steps_per_epoch": 1})))
    other = tmp_path / "other" / "best.pt"
    assert_one_line_error(cli("evaluate", "--checkpoint", trained / "run" / "best.pt", "--checkpoint", other,
                              "--split", "test", "--fast", "--out", tmp_path), "other/best.pt", "vocabulary")
    assert not list(tmp_path.glob("captions_*"))


def test_bad_image_is_a_one_line_error(trained, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    assert_one_line_error(cli("caption", "--checkpoint", trained / "run" / "best.pt", bad), "broken.jpg")
    skipped = cli("caption", "--checkpoint", trained / "run" / "best.pt", "--skip-bad", bad,
                  sorted((trained / "imgs" / "test").iterdir())[0])
    assert skipped.returncode == 0 and "1 unreadable image(s) skipped" in skipped.stderr


def test_bad_json_is_a_one_line_error(tmp_path):
    ann = tmp_path / "captions.json"
    ann.write_text('{"annotations": [ {"image_id": 1, "caption": "a"} ')
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[data]\nsource = "coco"\nannotations = "{ann}"\n[train]\nout_dir = "{tmp_path / "o"}"\n')
    assert_one_line_error(cli("train", recipe), "captions.json", "not valid JSON")


def test_unknown_recipe_key_is_a_one_line_error(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\nepochs = 1\nlearning_rate = 0.1\n')
    assert_one_line_error(cli("train", recipe), "r.toml", "unknown key 'train.learning_rate'")
    assert not (tmp_path / "runs").exists()


def test_missing_checkpoint_and_wrong_set_syntax(tmp_path):
    assert_one_line_error(cli("caption", "--checkpoint", tmp_path / "none.pt", tmp_path), "checkpoint not found")
    recipe = tmp_path / "r.toml"
    recipe.write_text("[train]\nepochs = 1\n")
    assert_one_line_error(cli("train", recipe, "--set", "train.epochs"), "key=value")
