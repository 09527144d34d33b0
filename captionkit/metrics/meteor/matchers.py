"""METEOR's four matching modules (Banerjee & Lavie 2005, Sec. 2.1; Denkowski & Lavie 2014, Sec. 2.1).

Every module proposes *all* its candidate matches between the hypothesis (line 1) and one reference
(line 2); the aligner then picks a consistent subset. Candidates are kept per reference position in
the order METEOR 1.5 creates them, because that order breaks ties in the search:

* exact (module 0): equal words. As in the jar, words are compared by their Java ``String.hashCode``.
* stem (1): equal Snowball English stems for words that are not exact matches. The jar's stemmer is
  Porter2 as of 2010; Snowball 2.x generates the same (PyStemmer 2.x, C, or snowballstemmer 2.x,
  pure Python; checked on every COCO word), Snowball 3 changed some rules, so without a 2.x
  package nltk's port (also equal, slower to import) is used.
* synonym (2): words that share a WordNet synset, looked up for the word itself and for its base
  form (WordNet exceptions, else a morphological rule), for words that are not exact matches.
* paraphrase (3): a phrase of the reference whose table paraphrase occurs in the hypothesis, then
  a phrase of the hypothesis whose paraphrase occurs in the reference; multi-word on both sides.

A match is a tuple ``(start, length, match_start, match_length, module, ref_mask, hyp_mask)``:
``start/length`` on the reference, ``match_*`` on the hypothesis, masks as bit sets of the positions.
"""
from __future__ import annotations

from dataclasses import dataclass

from .resources import MAX_PHRASE, Synonyms, synonyms

EXACT, STEM, SYNONYM, PARAPHRASE = 0, 1, 2, 3

# WordNet-style detachment rules of the jar's SynonymDictionary.morph: suffix -> replacement
_SUFFIXES = ["s", "ses", "xes", "zes", "ches", "shes", "men", "ies", "s", "ies", "es", "es", "ed", "ed",
             "ing", "ing", "er", "est", "er", "est"]
_ADDS = ["", "s", "x", "z", "ch", "sh", "man", "y", "", "y", "e", "", "e", "", "e", "", "", "", "e", "e"]

_hash_cache: dict[str, int] = {}


def java_hash(word: str) -> int:
    """Java's ``String.hashCode`` (32-bit, over UTF-16 code units)."""
    h = _hash_cache.get(word)
    if h is None:
        h = 0
        data = word.encode("utf-16-be")
        for k in range(0, len(data), 2):
            h = (31 * h + (data[k] << 8 | data[k + 1])) & 0xFFFFFFFF
        h = h - (1 << 32) if h & 0x80000000 else h
        _hash_cache[word] = h
    return h


def _major(pkg: str):
    from importlib import metadata
    try:
        return int(metadata.version(pkg).split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


def english_stemmer():
    """word -> Snowball English stem with the 2010 rules the jar uses (see the module docstring)."""
    if (_major("PyStemmer") or 99) < 3:
        import Stemmer
        return Stemmer.Stemmer("english").stemWord
    if (_major("snowballstemmer") or 99) < 3:
        import snowballstemmer
        return snowballstemmer.stemmer("english").stemWord
    from nltk.stem.snowball import SnowballStemmer
    return SnowballStemmer("english").stem


def _match(start, length, mstart, mlength, module):
    return (start, length, mstart, mlength, module,
            ((1 << length) - 1) << start, ((1 << mlength) - 1) << mstart)


@dataclass
class Stage:
    """All candidate matches of one hypothesis/reference pair."""
    matches: list[list[tuple]]       # per reference position, in creation order
    cov1: list[int]                  # candidates covering each hypothesis word
    cov2: list[int]                  # candidates covering each reference word

    def add1(self, j: int, i: int, module: int) -> None:
        """A one-word match: reference word j, hypothesis word i."""
        self.matches[j].append((j, 1, i, 1, module, 1 << j, 1 << i))
        self.cov1[i] += 1
        self.cov2[j] += 1

    def add(self, m: tuple) -> None:
        self.matches[m[0]].append(m)
        for k in range(m[3]):
            self.cov1[m[2] + k] += 1
        for k in range(m[1]):
            self.cov2[m[0] + k] += 1


class Matchers:
    """Stemmer, synonym and paraphrase look-ups with per-word / per-sentence caches."""

    def __init__(self, paraphrases: dict[tuple, list[tuple]], syn: Synonyms | None = None):
        self._stemmer = english_stemmer()
        self.syn = syn or synonyms()
        self.para = paraphrases
        self._stem: dict[str, int] = {}
        self._synsets: dict[str, frozenset] = {}
        self._spans: dict[tuple, list] = {}
        self._grams: dict[tuple, dict] = {}

    # ---- stems and synonyms
    def stem_key(self, word: str) -> int:
        k = self._stem.get(word)
        if k is None:
            k = self._stem[word] = java_hash(self._stemmer(word))
        return k

    def _synsets_of(self, word: str) -> set[int]:
        line = self.syn.synset_lines.get(word)
        return {int(x) for x in line.split()} if line else set()

    def _morph(self, word: str) -> str:
        if word.endswith("ss") or len(word) <= 2:
            return word
        for suf, add in zip(_SUFFIXES, _ADDS):
            if word.endswith(suf):
                cand = word[:len(word) - len(suf)] + add
                if cand in self.syn.synset_lines:
                    return cand
        return ""

    def synsets(self, word: str) -> frozenset:
        """The word's synsets plus those of its base form(s)."""
        s = self._synsets.get(word)
        if s is None:
            out = self._synsets_of(word)
            bases = self.syn.bases.get(word)
            for b in (bases if bases is not None else [self._morph(word)]):
                out |= self._synsets_of(b)
            s = self._synsets[word] = frozenset(out)
        return s

    # ---- paraphrases
    def spans(self, words: tuple) -> list:
        """[(start, length, [paraphrase, ...]), ...] for every phrase of ``words`` in the table,
        by start, then length (the order of the jar's transducer)."""
        out = self._spans.get(words)
        if out is None:
            out = []
            n = len(words)
            for s in range(n):
                for L in range(1, min(MAX_PHRASE, n - s) + 1):
                    tg = self.para.get(words[s:s + L])
                    if tg:
                        out.append((s, L, tg))
            self._spans[words] = out
        return out

    def positions(self, words: tuple) -> dict:
        """word -> ascending positions in ``words``."""
        out = self._grams.get(words)
        if out is None:
            out = self._grams[words] = _positions(words)
        return out

    # ---- the stage
    def stage(self, hyp: tuple, ref: tuple, exact_only: bool = False) -> Stage:
        h1 = [java_hash(w) for w in hyp]
        h2 = [java_hash(w) for w in ref]
        st = Stage([[] for _ in ref], [0] * len(hyp), [0] * len(ref))
        by_hash = _positions(h1)
        for j, b in enumerate(h2):
            for i in by_hash.get(b, ()):
                st.add1(j, i, EXACT)
        if exact_only:
            return st
        by_stem = _positions([self.stem_key(w) for w in hyp])
        for j, w in enumerate(ref):
            for i in by_stem.get(self.stem_key(w), ()):
                if h1[i] != h2[j]:
                    st.add1(j, i, STEM)
        y1 = [self.synsets(w) for w in hyp]
        for j, w in enumerate(ref):
            y2 = self.synsets(w)
            if y2:
                for i in range(len(hyp)):
                    if h1[i] != h2[j] and not y2.isdisjoint(y1[i]):
                        st.add1(j, i, SYNONYM)
        self._paraphrase(hyp, ref, st)
        return st

    def _paraphrase(self, hyp: tuple, ref: tuple, st: Stage) -> None:
        at_hyp, at_ref = self.positions(hyp), self.positions(ref)
        for j, L, targets in self.spans(ref):              # reference phrase -> hypothesis
            for tgt in targets:
                k = len(tgt)
                for i in at_hyp.get(tgt[0], ()):
                    if hyp[i:i + k] == tgt:
                        st.add(_match(j, L, i, k, PARAPHRASE))
        for i, L, targets in self.spans(hyp):              # hypothesis phrase -> reference
            for tgt in targets:
                k = len(tgt)
                for j in at_ref.get(tgt[0], ()):
                    if ref[j:j + k] == tgt:
                        st.add(_match(j, k, i, L, PARAPHRASE))


def _positions(keys: list) -> dict:
    """key -> ascending positions where it occurs."""
    out: dict = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return out
