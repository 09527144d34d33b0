"""`captionkit score` end to end on small files, through the real CLI entry point."""
import json

import pytest

from captionkit.cli import main

from _metrics_helpers import REFS, RES


def _main(argv) -> int:
    """The real entry point (captionkit.cli.main); its one-line errors go to stderr."""
    return main(argv)


@pytest.fixture
def files(tmp_path):
    anns, k = [], 0
    for i, caps in REFS.items():
        for c in caps:
            anns.append({"image_id": int(i), "id": k, "caption": c})
            k += 1
    refs = tmp_path / "captions.json"
    refs.write_text(json.dumps({"images": [{"id": int(i)} for i in REFS], "annotations": anns}))
    res = tmp_path / "results.json"
    res.write_text(json.dumps([{"image_id": int(i), "caption": c} for i, c in RES.items()]))
    return refs, res, tmp_path


def test_score_json_and_per_image(files, capsys):
    refs, res, tmp = files
    per = tmp / "per.json"
    rc = _main(["score", "--results", str(res), "--references", str(refs), "--metrics", "bleu,cider,rouge",
                "--fast", "--json", "--per-image", str(per)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"Bleu_1", "Bleu_4", "CIDEr", "ROUGE_L", "settings"} <= set(out)
    assert out["settings"]["path"] == "fast" and "tokenizer" in out["settings"]
    assert set(json.loads(per.read_text())) == set(REFS)


def test_score_table(files, capsys):
    refs, res, _ = files
    assert _main(["score", "--results", str(res), "--references", str(refs), "--metrics", "bleu,cider"]) == 0
    assert "CIDEr" in capsys.readouterr().out


def test_missing_and_unknown_ids_exit_2(files, capsys):
    refs, res, tmp = files
    r2 = tmp / "partial.jsonl"
    r2.write_text('{"image_id": 1, "caption": "a man"}\n{"image_id": 77, "caption": "x"}\n')
    assert _main(["score", "--results", str(r2), "--references", str(refs), "--fast"]) == 2
    err = capsys.readouterr().err
    assert "not in the references: '77'" in err and len(err.strip().splitlines()) == 1
    assert _main(["score", "--results", str(r2), "--references", str(refs), "--fast", "--metrics", "bleu",
                  "--on-unknown", "ignore", "--on-missing", "ignore", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["images"] == 1 and len(out["settings"]["notes"]) == 2


def test_bad_metric_name_exit_2(files, capsys):
    refs, res, _ = files
    assert _main(["score", "--results", str(res), "--references", str(refs), "--metrics", "bleu,cidr"]) == 2
    assert "cidr" in capsys.readouterr().err
