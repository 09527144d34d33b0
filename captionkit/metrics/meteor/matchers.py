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

from .resources import Synonyms, synonyms

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


class Sentence:
    """Everything the matchers need about one tokenized sentence, computed once (position
    indexes only when first asked for: a reference needs fewer than a hypothesis)."""

    def __init__(self, words: tuple, m: "Matchers"):
        self.words = words
        hc, sc, yc = _hash_cache, m._stem, m._synsets         # the per-word caches, read directly
        self.hashes = [hc[w] if w in hc else java_hash(w) for w in words]      # Java hash codes
        self.stems = [sc[w] if w in sc else m.stem_key(w) for w in words]      # hashes of the stems
        syn = [yc[w] if w in yc else m.synsets(w) for w in words]
        self.synsets = [(i, y) for i, y in enumerate(syn) if y]
        self._all_synsets = None
        self.function = None            # function-word flags, set by the scorer
        self.spans = m.spans(words)     # (start, length, paraphrases) in the transducer's order
        self.word_set = frozenset(words)
        self._index: dict[str, dict] = {}

    @property
    def all_synsets(self) -> frozenset:
        if self._all_synsets is None:
            self._all_synsets = frozenset().union(*(y for _, y in self.synsets))
        return self._all_synsets

    def positions(self, what: str) -> dict:
        """"hashes" / "stems" / "words" -> {key: ascending positions}."""
        d = self._index.get(what)
        if d is None:
            d = self._index[what] = _positions(self.words if what == "words" else getattr(self, what))
        return d


class Matchers:
    """Stemmer, synonym and paraphrase look-ups with per-word / per-sentence caches."""

    def __init__(self, paraphrases: dict[tuple, list[tuple]], syn: Synonyms | None = None):
        self._stemmer = english_stemmer()
        self.syn = syn or synonyms()
        self.para = paraphrases
        # phrase trie: word -> [paraphrases of the phrase ending here, {next word: ...}]; the
        # paraphrases as (first words, {first word: [(file rank, paraphrase), ...]})
        self._trie: dict = {}
        for phrase, targets in paraphrases.items():
            node = [None, self._trie]
            for w in phrase:
                node = node[1].setdefault(w, [None, {}])
            by_first: dict[str, list] = {}
            for rank, t in enumerate(targets):
                by_first.setdefault(t[0], []).append((rank, t))
            node[0] = (frozenset(by_first), by_first)
        self._stem: dict[str, int] = {}
        self._synsets: dict[str, frozenset] = {}
        self._sentences: dict[tuple, Sentence] = {}

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
        """[(start, length, paraphrases), ...] for every phrase of ``words`` in the table, by start,
        then length (the order of the jar's transducer): a walk down the phrase trie."""
        out = []
        trie = self._trie
        n = len(words)
        for s in range(n):
            node = trie.get(words[s])
            e = s + 1
            while node is not None:
                if node[0]:
                    out.append((s, e - s, node[0]))
                if e == n:
                    break
                node = node[1].get(words[e])
                e += 1
        return out

    def sentence(self, words: tuple) -> Sentence:
        sent = self._sentences.get(words)
        if sent is None:
            sent = self._sentences[words] = Sentence(words, self)
        return sent

    # ---- the stage
    def stage(self, hyp: tuple, ref: tuple, exact_only: bool = False) -> Stage:
        H, R = self.sentence(hyp), self.sentence(ref)
        h1, h2 = H.hashes, R.hashes
        st = Stage([[] for _ in ref], [0] * len(hyp), [0] * len(ref))
        by_hash = H.positions("hashes")
        for j, b in enumerate(h2):
            for i in by_hash.get(b, ()):
                st.add1(j, i, EXACT)
        if exact_only:
            return st
        by_stem = H.positions("stems")
        for j, k in enumerate(R.stems):
            for i in by_stem.get(k, ()):
                if h1[i] != h2[j]:
                    st.add1(j, i, STEM)
        hyp_synsets = H.all_synsets
        for j, y2 in R.synsets:
            if not y2.isdisjoint(hyp_synsets):         # some hypothesis word shares a synset
                b = h2[j]
                for i, y1 in H.synsets:
                    if h1[i] != b and not y2.isdisjoint(y1):
                        st.add1(j, i, SYNONYM)
        self._paraphrase(H, R, st)
        return st

    @staticmethod
    def _paraphrase(H: Sentence, R: Sentence, st: Stage) -> None:
        """Reference phrases found (as paraphrases) in the hypothesis, then the other way round;
        paraphrases in file order, skipped at once when none starts with a word of the other side."""
        for spans, other, flip in ((R.spans, H, False), (H.spans, R, True)):
            if not spans:
                continue
            words, present = other.words, other.word_set
            at = other.positions("words")
            for s, L, (firsts, by_first) in spans:
                if firsts.isdisjoint(present):
                    continue
                common = firsts & present
                cands = by_first[next(iter(common))] if len(common) == 1 else \
                    sorted(c for w in common for c in by_first[w])
                for _, tgt in cands:
                    k = len(tgt)
                    for p in at[tgt[0]]:
                        if words[p:p + k] == tgt:
                            st.add(_match(p, k, s, L, PARAPHRASE) if flip else _match(s, L, p, k, PARAPHRASE))


def _positions(keys) -> dict:
    """key -> ascending positions where it occurs."""
    out = {k: [i] for i, k in enumerate(keys)}
    if len(out) < len(keys):                 # repeated keys: the comprehension kept the last only
        out = {}
        for i, k in enumerate(keys):
            if k in out:
                out[k].append(i)
            else:
                out[k] = [i]
    return out
