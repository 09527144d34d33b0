"""PTB tokenization: Python == Java, input hygiene, one line per caption."""
import json

import pytest

from captionkit.errors import UserError
from captionkit.metrics.tokenize import clean_caption, find_java, java_ptb, ptb_tokenize

from _metrics_helpers import coco_refs, perturb

needs_java = pytest.mark.skipif(find_java() is None, reason="java not installed")

TRICKY = [
    "A man's dog doesn't run.", "", "He said \"hi\" (loudly) & left...", "and/or 3.5 1,000 St. Louis U.S.",
    "I cannot gonna wanna gotta", "café naïve — – … ‘quote’ “dq”", "Mr. Smith's cat isn't there, is it?",
    "it's 5:30 p.m. $5 50% a+b a=b {c} [d]", "o'clock y'all ain't we're I'll I'M", "TWO-TONE black-and-white",
    "a sign that reads K.", "A street sign for W. Centre st.", "corner of 22 3/4 St and 8th Ave/CTH D.",
    "Street at Ho'ohu and Pe'e roads", "dog., cat", "x no. 5", "A person I. A hood", "dogs' toys",
    "the '90s", "dog’s bowl", "THE BUS ISN'T HERE!!", "a...b", "-- hello --- world",
]


@needs_java
def test_python_equals_java_on_tricky_captions():
    caps = {str(i): [c] for i, c in enumerate(TRICKY)}
    assert ptb_tokenize(caps, "python") == ptb_tokenize(caps, "java")


@needs_java
@pytest.mark.data
def test_python_equals_java_on_coco_val2017_and_perturbed():
    refs = coco_refs()
    assert ptb_tokenize(refs, "python") == ptb_tokenize(refs, "java")
    res = {k: [v] for k, v in perturb(refs, seed=2).items()}
    assert ptb_tokenize(res, "python") == ptb_tokenize(res, "java")


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n", "\u2028", "\u2029", "\f", "\v", "\x85", "\x1c", "\t"])
def test_separators_become_spaces(sep):
    assert clean_caption(f"a dog{sep}on  a{sep}{sep}mat ") == "a dog on a mat"


@needs_java
@pytest.mark.parametrize("sep", ["\r", "\u2028", "\u2029", "\f", "\v", "\n"])
def test_separator_does_not_shift_captions(sep):
    caps = {"1": [f"a dog{sep}on a mat"], "2": ["a cat"], "3": ["two birds"]}
    want = {"1": ["a dog on a mat"], "2": ["a cat"], "3": ["two birds"]}
    assert ptb_tokenize(caps, "java") == want
    assert ptb_tokenize(caps, "python") == want


@needs_java
def test_java_line_count_is_checked():
    with pytest.raises(ValueError, match="line break"):
        java_ptb(["a\u2028b", "c"])


def test_over_long_caption_is_an_error_or_truncated():
    long = "a dog " * 400
    with pytest.raises(UserError, match="characters, more than the limit"):
        ptb_tokenize({"7": [long]})
    out = ptb_tokenize({"7": [long]}, truncate=True)["7"][0]
    assert len(out) <= 1000 and out.startswith("a dog a dog")


def test_non_string_caption_is_an_error():
    with pytest.raises(UserError, match="not a string"):
        ptb_tokenize({"7": [None]})
