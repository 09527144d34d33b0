"""Word-level features of METEOR's matchers (Denkowski & Lavie 2014, Sec. 2.1): Java hash codes (the
jar compares words by them), Snowball stems and WordNet synsets, each computed once per distinct word.

Stems: the jar's stemmer is Porter2 as of 2010; Snowball 2.x generates the same (PyStemmer 2.x, C,
or snowballstemmer 2.x, pure Python; checked on every COCO word), Snowball 3 changed some rules, so
without a 2.x package nltk's port (also equal, slower to import) is used. Synsets: the word's own
plus those of its base form (WordNet exceptions, else the jar's morphological detachment rules).
"""
from __future__ import annotations

from .resources import Synonyms, synonyms

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


class Lexicon:
    """Stems and synsets of words, cached per word. Holds no sentence, so sentences may hold it
    without making reference cycles (their memory is then freed without the cyclic collector)."""

    def __init__(self, syn: Synonyms | None = None):
        self._stemmer = english_stemmer()
        self.syn = syn or synonyms()
        self.stem_cache: dict[str, int] = {}
        self.synset_cache: dict[str, frozenset] = {}

    def stem_key(self, word: str) -> int:
        """Java hash code of the word's stem."""
        k = self.stem_cache.get(word)
        if k is None:
            k = self.stem_cache[word] = java_hash(self._stemmer(word))
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
        s = self.synset_cache.get(word)
        if s is None:
            out = self._synsets_of(word)
            bases = self.syn.bases.get(word)
            for b in (bases if bases is not None else [self._morph(word)]):
                out |= self._synsets_of(b)
            s = self.synset_cache[word] = frozenset(out)
        return s
