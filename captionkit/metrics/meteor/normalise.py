"""METEOR 1.5's ``-norm`` for English (Denkowski & Lavie 2014, Sec. 2: "tokenize / normalize
punctuation and lowercase"), as the jar applies it to every hypothesis and reference.

An mteval-v13a-style tokenizer: symbols other than ``. ' ` , -`` become tokens, runs of dots are
protected, commas split unless between digits, quotes are unified, dashes between letters or digits
become spaces, English contractions are split (``n't`` -> ``n 't``, ``'s`` stays), and a token's final
period is split off unless the word is a known non-breaking prefix, followed by a lower-case word, or
(for ``no`` / ``art`` / ``pp``) by a number; dotted abbreviations lose their dots (``a.m.`` -> ``am``).
Character classes follow Java's defaults: ``\\s``, ``\\p{Digit}`` and ``\\p{Lower}`` are ASCII only.
``tests/test_meteor_python.py`` checks it against the jar's own Normalizer on every COCO caption.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .resources import nonbreaking_prefixes

_ALPHA = ("A-Za-z\u0160\u017d\u0161\u017e\u0178\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017e\u0400-\u04ff"
          "\u0500-\u0527\ua640-\ua66e\ua67e-\ua697\u1d00-\u1d7f")
_ALNUM = "0-9" + _ALPHA
_JS = " \t\n\x0b\f\r"                 # Java's \s
_D = "0-9"                             # Java's \p{Digit}

_SEP_OTHER = re.compile(f"([^{_ALNUM}{_JS}.'`,\\-\u2018\u2019])")
_MULTI_DOT = re.compile(r"\.([.]+)")
_MULTI_DOT2 = re.compile(r"DOTMULTI\.([^.])")
_COMMAS = [re.compile(f"([^{_D}])[,]([^{_D}])"), re.compile(f"([{_D}])[,]([^{_D}])"),
           re.compile(f"([^{_D}])[,]([{_D}])")]
_QUOTE = re.compile("([`\u2018\u2019])")
_DQUOTE = re.compile("([\u201c\u201d]|'')")
_RM_DASH = re.compile(f"([{_ALNUM}.])[-]([{_ALNUM}])")
_CONTRACTIONS = [
    (re.compile(f"([^{_ALPHA}])[']([^{_ALPHA}])"), r"\1 ' \2"),
    (re.compile(f"([^{_ALPHA}{_D}])[']([{_ALPHA}])"), r"\1 ' \2"),
    (re.compile(f"([{_ALPHA}])[']([^{_ALPHA}])"), r"\1 ' \2"),
    (re.compile(f"([{_ALPHA}])[']([{_ALPHA}])"), r"\1 '\2"),
    (re.compile(f"([{_D}])[']([s])"), r"\1 '\2"),
]
_HAS_ALPHA = re.compile(f"[{_ALPHA}]")
_LOWER_START = re.compile("^[a-z]")
_DIGIT_START = re.compile("^[0-9]+")
_WHITE = re.compile("[ \u2000-\u200a\u202f\u205f\u3000\u00a0]+")
_JAVA_TRIM = "".join(chr(c) for c in range(33))
_TOKEN_SPLIT = re.compile("[ \t\n\r\f]+")     # java.util.StringTokenizer's default delimiters
_PLAIN = re.compile("[A-Za-z0-9 ]*")            # no rule applies to these: only spaces collapse


def java_tokens(line: str) -> list[str]:
    """Whitespace tokens as java.util.StringTokenizer gives them."""
    return [t for t in _TOKEN_SPLIT.split(line) if t]


def _split_periods(tokens: list[str]) -> str:
    """A final period is its own token unless the word is a non-breaking prefix (see module doc)."""
    nbp = nonbreaking_prefixes()
    out = []
    last = len(tokens) - 1
    for i, tok in enumerate(tokens):
        if len(tok) > 1 and tok.endswith("."):
            pre = tok[:-1]
            kind = nbp.get(pre)
            if "." in pre and _HAS_ALPHA.search(pre):
                out.append(tok.replace(".", ""))
            elif kind == 1 or (i < last and _LOWER_START.search(tokens[i + 1])):
                out.append(tok)
            elif kind == 2 and i < last and _DIGIT_START.search(tokens[i + 1]):
                out.append(tok)
            else:
                out.append(pre + " .")
        else:
            out.append(tok)
    return " ".join(out) + " "


@lru_cache(maxsize=1 << 17)
def normalize(line: str) -> str:
    """One line -> METEOR's normalised, lower-cased token string (``-l en -norm``)."""
    if _PLAIN.fullmatch(line):
        return " ".join(line.split()).lower()
    s = _SEP_OTHER.sub(r" \1 ", " " + line + " ")
    s = _MULTI_DOT.sub(r" DOTMULTI\1", s)
    while "DOTMULTI." in s:
        s = _MULTI_DOT2.sub(r"DOTDOTMULTI \1", s)
        s = s.replace("DOTMULTI.", "DOTDOTMULTI")
    for rx in _COMMAS:
        s = rx.sub(r"\1 , \2", s)
    s = _QUOTE.sub("'", s)
    s = _DQUOTE.sub(' " ', s)
    s = s.replace("\u2013", "-").replace("--", "-")
    s = _RM_DASH.sub(r"\1 \2", s)
    for rx, rep in _CONTRACTIONS:
        s = rx.sub(rep, s)
    s = _split_periods(java_tokens(s))
    while "DOTDOTMULTI" in s:
        s = s.replace("DOTDOTMULTI", "DOTMULTI.")
    s = s.replace("DOTMULTI", ".")
    return _WHITE.sub(" ", s).strip(_JAVA_TRIM).lower()


def tokens(line: str) -> tuple:
    """One line -> its normalised tokens: ``normalize`` after the jar's trim, then ``java_tokens``."""
    line = line.strip(_JAVA_TRIM)
    if _PLAIN.fullmatch(line):                   # (the common case, without the regular expressions)
        return tuple(line.lower().split())
    return tuple(java_tokens(normalize(line)))
