"""Results and references in every format; unknown, duplicated and missing ids are loud."""
import json

import pytest

from captionkit.errors import UserError
from captionkit.metrics.inputs import align, read_references, read_results


@pytest.fixture
def coco_refs_file(tmp_path):
    p = tmp_path / "captions_val.json"
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
                             "annotations": [{"image_id": 1, "id": 10, "caption": "a dog"},
                                             {"image_id": 1, "id": 11, "caption": "a brown dog"},
                                             {"image_id": 2, "id": 12, "caption": "a cat"}]}))
    return p


def test_results_formats(tmp_path):
    j = tmp_path / "r.json"
    j.write_text(json.dumps([{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"}]))
    l = tmp_path / "r.jsonl"
    l.write_text('{"image_id": 1, "caption": "a dog"}\n\n{"id": "2", "caption": "a cat"}\n')
    t = tmp_path / "r.tsv"
    t.write_bytes("1\ta dog\r\n2\ta\u2028cat\n".encode())
    for p in (j, l, t):
        got = [(r.image_id, r.caption) for r in read_results(p)]
        assert got[0] == ("1", "a dog") and got[1][0] == "2"
    assert read_results(t)[1].caption == "a\u2028cat"       # U+2028 is not a record separator


@pytest.mark.parametrize("content,msg", [
    ("[{\"caption\": \"x\"}]", "image_id"), ("[{\"image_id\": 1}]", "caption"),
    ("{\"a\": 1}", "JSON list"), ("[1, 2", "not valid JSON")])
def test_bad_results_json(tmp_path, content, msg):
    p = tmp_path / "r.json"
    p.write_text(content)
    with pytest.raises(UserError, match=msg):
        read_results(p)


def test_bad_tsv_line(tmp_path):
    p = tmp_path / "r.tsv"
    p.write_text("1 a dog without a tab\n")
    with pytest.raises(UserError, match=r"r.tsv:1: expected"):
        read_results(p)


def test_reference_formats(tmp_path, coco_refs_file):
    assert read_references(coco_refs_file) == {"1": ["a dog", "a brown dog"], "2": ["a cat"]}
    k = tmp_path / "dataset_flickr8k.json"
    k.write_text(json.dumps({"images": [
        {"filename": "x.jpg", "split": "test", "sentences": [{"raw": "a dog", "tokens": ["a", "dog"]}]},
        {"filename": "y.jpg", "split": "train", "sentences": [{"raw": "a cat", "tokens": ["a", "cat"]}]}]}))
    assert read_references(k, split="test") == {"x.jpg": ["a dog"]}
    with pytest.raises(UserError, match="needs --split"):
        read_references(k)
    tok = tmp_path / "Flickr8k.token.txt"
    tok.write_text("x.jpg#0\ta dog\nx.jpg#1\ta brown dog\ny.jpg#0\ta cat\n")
    lst = tmp_path / "Flickr_8k.testImages.txt"
    lst.write_text("x.jpg\n")
    assert read_references(tok, split_list=lst) == {"x.jpg": ["a dog", "a brown dog"]}
    with pytest.raises(UserError, match="needs --split-list"):
        read_references(tok)


def _res(*pairs):
    from captionkit.metrics.inputs import Result
    return [Result(i, c, f"r[{k}]") for k, (i, c) in enumerate(pairs)]


REFS = {"1": ["a dog"], "2": ["a cat"], "3": ["a bird"]}


def test_duplicates_unknown_missing_are_errors():
    with pytest.raises(UserError, match=r"more than one caption, e.g. '1' again at r\[1\]"):
        align(REFS, _res(("1", "x"), ("1", "y"), ("2", "z"), ("3", "w")))
    with pytest.raises(UserError, match=r"1 image id\(s\) are not in the references: '9'"):
        align(REFS, _res(("1", "x"), ("2", "z"), ("3", "w"), ("9", "q")))
    with pytest.raises(UserError, match=r"1 of 3 reference images have no result: '3'"):
        align(REFS, _res(("1", "x"), ("2", "z")))


def test_policies_are_explicit_and_noted():
    a = align(REFS, _res(("1", "x"), ("1", "y"), ("2", "z"), ("9", "q")),
              on_duplicate="last", on_unknown="ignore", on_missing="ignore")
    assert a.res == {"1": "y", "2": "z"} and set(a.refs) == {"1", "2"}
    assert len(a.notes) == 3
    assert align(REFS, _res(("1", "x"), ("1", "y"), ("2", "z"), ("3", "w")), on_duplicate="first").res["1"] == "x"
