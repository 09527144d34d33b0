"""A pure-Python Stanford PTBTokenizer (CoreNLP 3.4.1, ``-preserveLines -lowerCase``) for captions.

Written from the tokenizer's observable behaviour (probed with pycocoevalcap's jar), not from its
source. It is a longest-match lexer like the JFlex original: at every position each rule is tried,
the longest match wins and ties go to the earlier rule. It covers what captions contain: words with
internal hyphens, slashes and ``.!?``; numbers with ``.,:/``; abbreviations that keep their period
(the tokenizer's own list, partly case-sensitive); clitics (``n't 's 'm 'd 're 've 'll``,
``cannot gonna wanna gotta lemme``); quotes, brackets, dashes and ellipses with their PTB names.
``tests/test_metrics_tokenize.py`` checks it against the Java tokenizer on all COCO val2017
captions and on perturbed ones. Input: one cleaned line; output: space-separated lower-case tokens.
"""
from __future__ import annotations

import functools
import re

# abbreviations that keep their final period (matched case-insensitively) ...
_ABBR = (
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri "
    "ala ariz calif colo conn ct dak fla ga ind kans? ky md mich minn mo mont neb nev okla penn tenn "
    "va vt wisc? wyo mr mrs ms drs? profs? sens? reps? attys? lt col gen messrs govs? adm rev maj sgt "
    "cpl pvt mt capt ste? ave pres lieut hon brig co?mdr pfc spc supts? det m mm mme mmes mlle mlles "
    "inc cos? corp ltd plc bancorp dept bhd assn univ intl sys invt elec natl tel est ext sq "
    "jr sr bros blvd rd esq etc al seq vs cf ft"
).split()
# ... those that do only with a capital first letter, and those with a letter that must be lower case
_ABBR_CAP = "ark del ill la mass miss ore pa tex wash".split()
_ABBR_MIXED = [r"[mM][ft]g", r"[pP]p?t[ye]s?"]
_ABBR_RE = "(?:(?i:" + "|".join(_ABBR) + ")|" + "|".join(
    "[" + a[0].upper() + "](?i:" + a[1:] + ")" for a in _ABBR_CAP) + "|" + "|".join(_ABBR_MIXED) + ")"

# capitalised words that make a preceding "K." sentence-final (probed; rest of the word any case)
_STARTERS = ("a an after as at but he her here however if in it many more now one our she since so "
             "some such that the their then there these they this we what when while yet you").split()
_SENT_START = r"\s+(?:" + "|".join(w[0].upper() + "(?i:" + w[1:] + ")" if len(w) > 1 else w.upper()
                               for w in _STARTERS) + r")(?=\s|$)"
_L = r"[^\W\d_]"          # a letter
_AN = r"[^\W_]"           # a letter or digit
_WORDPART = rf"{_L}{_AN}*(?:[.!?]{_L}{_AN}*)*|\d+{_L}{_AN}*"
_NUMBER = r"\d+(?:[.,:/]\d+)*"
_WORD = rf"(?:{_WORDPART}|{_NUMBER})(?:[-/](?:{_WORDPART}|{_NUMBER}))*"

# (name, regex); the order breaks ties between equally long matches
_RULES = [
    ("abbrev", rf"{_ABBR_RE}\.(?!{_AN})"),
    ("letter_end", rf"{_L}(?=\.{_SENT_START})"),   # "K. The" ends a sentence: "k", "."
    ("acro", rf"{_L}(?:\.{_L})+\.(?!{_AN})|{_L}\.(?!{_AN}|{_SENT_START})|{_L}(?:\.{_L})+"),
    ("fraction", r"\d+ \d+/\d+"),                # "22 3/4" is one token, joined by U+00A0
    ("no", r"(?i:no)\.(?=\s*\d)"),
    ("wordcomma", rf"{_L}{_AN}*\.(?=,)"),
    ("number", rf"[.,]?{_NUMBER}"),
    ("apos_word", rf"[^\W\d_iIyY]'(?!(?i:ll|re|ve)(?!\w)){_L}{_L}+|(?i:ma'am)"),
    ("yall", r"(?i:y')(?=(?i:all)(?![^\W_]))"),          # y'all -> y' all
    ("okina", rf"(?!(?i:y'all))(?<![^\W_]){_L}*[aeiouyAEIOUY]'(?!(?i:s|m|d|ll|re|ve)(?!{_AN}))[aeiouA-Z]{_L}*"),   # Hawaiian names: Ho'ohu, Pe'e
    ("decade", r"'\d\ds"),
    ("word", _WORD),
    ("clitic", r"(?i:n't|'s|'m|'d|'re|'ve|'ll)(?!\w)"),
    ("ellipsis", r"\.\.\.|\u2026"),
    ("bang", r"[?!]+"),
    ("dashes", r"--+|\u2014|\u2013"),
    ("dquote", r"\"|''|``|\u201c|\u201d"),
    ("squote", r"['`\u2018\u2019]"),
    ("other", r"."),
]
_COMPILED = [(name, re.compile(rx)) for name, rx in _RULES]
_SPLIT_WORDS = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "wanna": ("wan", "na"),
                "gotta": ("got", "ta"), "lemme": ("lem", "me"), "gimme": ("gim", "me")}
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-"}
_CLITIC_AT_END = re.compile(r"(?i:(n't|'s|'m|'d|'re|'ve|'ll))$")


def _emit_word(tok: str, out: list[str]) -> None:
    low = tok.lower()
    if low in _SPLIT_WORDS:
        out.extend(_SPLIT_WORDS[low])
    else:
        out.append(low)


_PLAIN = re.compile(r"[A-Za-z]+(?=[ \n])")   # a plain word before a space: no rule can do more


_LETTERS_SPACES = re.compile(r"[A-Za-z ]*")
_WORD_PERIOD = re.compile(r"([A-Za-z]{2,})\.( *)")   # the usual caption end: "... horse."


@functools.lru_cache(maxsize=1 << 18)
def tokenize_line(line: str, following: str = "") -> str:
    """One caption (no line breaks) -> its PTB tokens, lower case, joined by single spaces.

    ``following`` is the next caption: the Java lexer reads the captions as one stream, so its
    look-ahead rules ("K." before a capital, "no." before a number) see across the line break.

    Fast path: the longest prefix of letters and spaces that ends with a space is plain words (each
    is a whole token for the lexer); only the rest goes through the rules. The rules look ahead only
    (the one look-behind sees a space or the start alike) and the quote state starts fresh, so the
    split changes nothing.
    """
    k = _LETTERS_SPACES.match(line).end()
    if k == len(line):
        cut = k
    else:
        cut = line.rfind(" ", 0, k) + 1
    out: list[str] = []
    for w in line[:cut].split():
        _emit_word(w, out)
    tail = line[cut:]
    end = _WORD_PERIOD.fullmatch(tail)
    if end and end.group(1).lower() != "no" and not _COMPILED[0][1].match(tail):
        _emit_word(end.group(1), out)     # not an abbreviation, nor "no." before a number: word, "."
        out.append(".")
    elif tail:
        out.extend(_lex(tail, following))
    return " ".join(out)


def _lex(line: str, following: str) -> list[str]:
    """The rule-by-rule longest-match lexer (see the module docstring) -> tokens."""
    out: list[str] = []
    n = len(line)
    line = (line + "\n" + following[:16]).replace("\u2019", "'")
    i = 0
    double_open = True     # '"' alternates between `` and '' like PTB's quote normalisation
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
            continue
        m = _PLAIN.match(line, i)
        if m:
            _emit_word(m.group(0), out)
            i = m.end()
            continue
        if ord(c) > 0xFFFF or (ord(c) < 32):
            i += 1          # untokenizable for the Java lexer: dropped with a warning
            continue
        best, best_len = None, 0
        for name, rx in _COMPILED:
            m = rx.match(line, i)
            if m and m.end() - i > best_len:
                best, best_len = name, m.end() - i
        tok = line[i:i + best_len]
        i += best_len
        if best == "word":
            # clitics: a word followed by 's / n't ... is split off by the trailing-context rules
            nt = re.match(r"(?i)'t(?!\w)", line[i:])
            if nt and tok.lower().endswith("n") and len(tok) > 1:
                _emit_word(tok[:-1], out)
                out.append("n't")
                i += 2
                continue
            _emit_word(tok, out)
        elif best == "fraction":
            out.append(tok.replace(" ", "\u00a0"))
        elif best == "ellipsis":
            out.append("...")
        elif best == "dashes":
            out.append("--")
        elif best == "dquote":
            if tok in ("``", "\u201c"):
                out.append("``")
            elif tok in ("''", "\u201d"):
                out.append("''")
            else:
                out.append("``" if double_open else "''")
                double_open = not double_open
        elif best == "squote":
            out.append("'")
        elif best == "other" and tok in _BRACKETS:
            out.append(_BRACKETS[tok])
        else:
            out.append(tok.lower())
    return out
