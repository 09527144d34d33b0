"""Caption tokenization as coco-caption does it: Stanford PTBTokenizer, lower case, punctuation removed.

Two paths give the same tokens:
- ``ptb_tokenize(..., backend="java")`` runs pycocoevalcap's own ``stanford-corenlp-3.4.1.jar``
  (``PTBTokenizer -preserveLines -lowerCase``) on a temporary file *we* own (pycocoevalcap writes its
  temporary file inside site-packages, which fails on read-only installs) with a timeout, and checks
  that one line comes back per caption;
- ``backend="python"`` is a pure-Python re-implementation of the PTB rules that occur in captions
  (checked equal to the Java tokenizer on all COCO val2017 captions, see tests), used by the fast path.

Before either, ``clean_caption`` normalises the input: every character that Java or Python treats as a
line break (``\\r``, ``\\n``, ``\\f``, ``\\v``, U+0085, U+2028, U+2029, U+001C..U+001E) would otherwise
split one caption into two lines and shift every following caption onto the wrong image; they become
spaces, runs of whitespace collapse, and captions longer than ``MAX_CHARS`` are an error (or truncated
when asked).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import UserError

# exactly the tokens pycocoevalcap's PTBTokenizer wrapper drops (note: after -lowerCase the
# bracket tokens are "-lrb-" etc., which this upper-case list does not remove; kept for equality)
PUNCTUATIONS = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                ".", "?", "!", ",", ":", "-", "--", "...", ";"}
MAX_CHARS = 1000            # longer captions are almost always a decoding bug (no EOS)
JAVA_TIMEOUT_S = 300.0
_LINE_BREAK = re.compile(r"[\r\n\f\v\x1c\x1d\x1e\x85\u2028\u2029]")
_BREAKS = re.compile(r"[\r\n\f\v\x1c\x1d\x1e\x85\u2028\u2029\t\s]+")


def ptb_jar() -> Path:
    """The Stanford CoreNLP 3.4.1 jar that ships with pycocoevalcap."""
    import pycocoevalcap.tokenizer.ptbtokenizer as m
    return Path(m.__file__).resolve().parent / m.STANFORD_CORENLP_3_4_1_JAR


def find_java() -> str | None:
    """Path of a working ``java`` executable on PATH, or None."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        p = subprocess.run([java, "-version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return java if p.returncode == 0 else None


def java_version(java: str) -> str:
    """First line of ``java -version`` (it prints to stderr)."""
    p = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    return (p.stderr or p.stdout).strip().splitlines()[0] if (p.stderr or p.stdout).strip() else "unknown"


def clean_caption(text: str, where: str = "caption", max_chars: int = MAX_CHARS,
                  truncate: bool = False) -> str:
    """Line breaks and whitespace runs -> one space, stripped; over-long captions raise (or truncate)."""
    if not isinstance(text, str):
        raise UserError(f"{where}: caption is not a string ({type(text).__name__}: {str(text)[:40]!r})")
    text = _BREAKS.sub(" ", text).strip()
    if len(text) > max_chars:
        if not truncate:
            raise UserError(f"{where}: caption has {len(text)} characters, more than the limit "
                            f"{max_chars} (truncate with --truncate-long / truncate=True): {text[:50]!r}...")
        text = text[:max_chars].rsplit(" ", 1)[0] if " " in text[:max_chars] else text[:max_chars]
    return text


def _drop_punct(line: str) -> str:
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def java_ptb(lines: list[str], java: str | None = None, timeout: float = JAVA_TIMEOUT_S) -> list[str]:
    """Cleaned captions -> PTB token lines from the Java tokenizer (punctuation removed)."""
    java = java or find_java()
    if java is None:
        raise UserError("java not found on PATH: the official PTB tokenizer needs Java "
                        "(install a JRE, or score with official=False / --fast)")
    for i, s in enumerate(lines):
        if _LINE_BREAK.search(s):
            raise ValueError(f"caption {i} contains a line break {s!r}; clean_caption() it first")
    with tempfile.TemporaryDirectory(prefix="captionkit_ptb_") as tmp:
        src = os.path.join(tmp, "captions.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        cmd = [java, "-cp", str(ptb_jar()), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", src]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"the Java PTB tokenizer did not finish within {timeout:.0f} s") from None
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"the Java PTB tokenizer failed (exit {p.returncode}): {err[-1] if err else ''}")
    out = p.stdout.decode("utf-8").split("\n")
    if out and out[-1] == "" and len(out) == len(lines) + 1:
        out = out[:-1]
    if len(out) != len(lines):
        raise UserError(f"the PTB tokenizer returned {len(out)} lines for {len(lines)} captions; "
                        "a caption contains a character it treats as a line break")
    return [_drop_punct(s) for s in out]


def ptb_tokenize(captions: dict[str, list[str]], backend: str = "python", max_chars: int = MAX_CHARS,
                 truncate: bool = False, java: str | None = None) -> dict[str, list[str]]:
    """{id: [raw caption, ...]} -> {id: [tokens joined by spaces, ...]}, same order, coco-caption's rules."""
    keys = [(k, i) for k, caps in captions.items() for i in range(len(caps))]
    flat = [clean_caption(captions[k][i], f"caption {i} of image {k!r}", max_chars, truncate)
            for k, i in keys]
    if backend == "java":
        toks = java_ptb(flat, java)
    elif backend == "python":
        from .ptb import tokenize_line
        nxt = [""] * len(flat)           # the next non-empty caption: the lexer's look-ahead context
        for j in range(len(flat) - 2, -1, -1):
            nxt[j] = flat[j + 1] if flat[j + 1] else nxt[j + 1]
        toks = [_drop_punct(tokenize_line(s, f)) for s, f in zip(flat, nxt)]
    else:
        raise ValueError(f"backend must be 'java' or 'python', got {backend!r}")
    out: dict[str, list[str]] = {k: [] for k in captions}
    for (k, _), t in zip(keys, toks):
        out[k].append(t)
    return out
