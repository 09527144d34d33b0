"""METEOR's four matching modules (Banerjee & Lavie 2005, Sec. 2.1; Denkowski & Lavie 2014, Sec. 2.1).

Every module proposes *all* its candidate matches between the hypothesis (line 1) and one reference
(line 2); the aligner then picks a consistent subset. Candidates are kept per reference position in
the order METEOR 1.5 creates them, because that order breaks ties in the search:

* exact (module 0): equal words. As in the jar, words are compared by their Java ``String.hashCode``.
* stem (1): equal Snowball English stems (2010 rules, see ``words``) for words that are not exact
  matches.
* synonym (2): words that share a WordNet synset, looked up for the word itself and for its base
  form (WordNet exceptions, else a morphological rule), for words that are not exact matches.
* paraphrase (3): a phrase of the reference whose table paraphrase occurs in the hypothesis, then
  a phrase of the hypothesis whose paraphrase occurs in the reference; multi-word on both sides.

A match is a tuple ``(start, length, match_start, match_length, module, ref_mask, hyp_mask)``:
``start/length`` on the reference, ``match_*`` on the hypothesis, masks as bit sets of the positions.
"""
from __future__ import annotations

from dataclasses import dataclass

from .resources import Synonyms
from .words import Lexicon, _hash_cache, java_hash

EXACT, STEM, SYNONYM, PARAPHRASE = 0, 1, 2, 3


def _match(start, length, mstart, mlength, module):
    return (start, length, mstart, mlength, module,
            ((1 << length) - 1) << start, ((1 << mlength) - 1) << mstart)


@dataclass
class Stage:
    """All candidate matches of one hypothesis/reference pair."""
    matches: list[list[tuple]]       # per reference position, in creation order
    cov1: list[int]                  # candidates covering each hypothesis word
    cov2: list[int]                  # candidates covering each reference word

    def add(self, m: tuple) -> None:
        self.matches[m[0]].append(m)
        for k in range(m[3]):
            self.cov1[m[2] + k] += 1
        for k in range(m[1]):
            self.cov2[m[0] + k] += 1


_FEATURES = frozenset({"hashes", "stems", "syn", "synsets"})
_SETS = frozenset({"hash_set", "stem_set", "all_synsets"})


class Sentence:
    """Everything the matchers need about one tokenized sentence, each part computed when first
    asked for (a reference that the pruning never stages needs only its paraphrase spans and
    occurrences)."""

    def __init__(self, words: tuple, m: "Matchers"):
        self.words = words
        self._lex = m.lex
        self.function = None            # function-word flags, set by the scorer
        # the table's phrases here with their paraphrases, and where the table's paraphrases occur
        self.spans, self.occ = m.phrases(words)
        self._index: dict[str, dict] = {}

    def __getattr__(self, name: str):
        """The word features, computed on first use (then plain attributes): hashes (Java hash
        codes, the jar compares words by them), stems (hash codes of the stems), syn (synsets per
        word), synsets ((position, synsets) where any); then, for coverage tests, hash_set,
        stem_set, all_synsets. (functools.cached_property takes a lock per access in Python 3.11.)"""
        if name in _SETS:
            self.hash_set, self.stem_set = frozenset(self.hashes), frozenset(self.stems)
            self.all_synsets = frozenset().union(*(y for _, y in self.synsets))
        elif name in _FEATURES:
            m, words = self._lex, self.words
            hc, sc, yc = _hash_cache, m.stem_cache, m.synset_cache     # the per-word caches, read directly
            self.hashes = [hc[w] if w in hc else java_hash(w) for w in words]
            self.stems = [sc[w] if w in sc else m.stem_key(w) for w in words]
            self.syn = [yc[w] if w in yc else m.synsets(w) for w in words]
            self.synsets = [(i, y) for i, y in enumerate(self.syn) if y]
        else:
            raise AttributeError(name)
        return getattr(self, name)

    def positions(self, what: str) -> dict:
        """"hashes" / "stems" -> {key: ascending positions}."""
        d = self._index.get(what)
        if d is None:
            d = self._index[what] = _positions(self.words if what == "words" else getattr(self, what))
        return d


class Matchers:
    """Stemmer, synonym and paraphrase look-ups with per-word / per-sentence caches."""

    def __init__(self, paraphrases: dict[tuple, list[tuple]], syn: Synonyms | None = None):
        self.lex = Lexicon(syn)
        self.para = paraphrases
        # one trie of every phrase and every paraphrase in the table: word -> [the paraphrases of
        # the phrase ending here, the paraphrase ending here, {next word: ...}]. Paraphrases go by
        # number (``_length``: their lengths), the paraphrases of a phrase as (set of numbers,
        # {number: [file ranks]}) (a table may repeat an entry)
        self._trie: dict = {}
        number: dict[tuple, int] = {}
        for phrase, targets in paraphrases.items():
            ranks: dict[int, list[int]] = {}
            for rank, t in enumerate(targets):
                ranks.setdefault(number.setdefault(t, len(number)), []).append(rank)
            self._node(phrase)[0] = (frozenset(ranks), ranks)
        for t, k in number.items():
            self._node(t)[1] = k
        self._length = [len(t) for t in number]
        self._sentences: dict[tuple, Sentence] = {}

    def stem_key(self, word: str) -> int:
        return self.lex.stem_key(word)

    def synsets(self, word: str) -> frozenset:
        return self.lex.synsets(word)

    # ---- paraphrases
    def _node(self, phrase: tuple) -> list:
        node = [None, None, self._trie]
        for w in phrase:
            node = node[2].setdefault(w, [None, None, {}])
        return node

    def phrases(self, words: tuple) -> tuple[list, dict]:
        """One walk down the trie -> ``spans``: [(start, length, paraphrases), ...] for every phrase
        of ``words`` in the table, by start, then length (the order of the jar's transducer); and
        ``occ``: {paraphrase number: ascending start positions} of every table paraphrase in ``words``."""
        spans: list = []
        occ: dict[int, list[int]] = {}
        trie = self._trie
        n = len(words)
        for s in range(n):
            node = trie.get(words[s])
            e = s + 1
            while node is not None:
                if node[0]:
                    spans.append((s, e - s, node[0]))
                t = node[1]
                if t is not None:
                    if t in occ:
                        occ[t].append(s)
                    else:
                        occ[t] = [s]
                if e == n:
                    break
                node = node[2].get(words[e])
                e += 1
        return spans, occ

    def sentence(self, words: tuple) -> Sentence:
        sent = self._sentences.get(words)
        if sent is None:
            sent = self._sentences[words] = Sentence(words, self)
        return sent

    # ---- the stage
    def stage(self, hyp: tuple, ref: tuple, exact_only: bool = False, para: list | None = None) -> Stage:
        """Every candidate match of the pair, per reference position in the jar's order: exact,
        stem, synonym, paraphrase (``para``: ``paraphrase_matches`` of the pair, if already known)."""
        H, R = self.sentence(hyp), self.sentence(ref)
        h1, h2 = H.hashes, R.hashes
        matches, cov1, cov2 = [[] for _ in ref], [0] * len(hyp), [0] * len(ref)
        by_hash = H.positions("hashes")
        for j, b in enumerate(h2):
            for i in by_hash.get(b, ()):
                matches[j].append((j, 1, i, 1, EXACT, 1 << j, 1 << i))
                cov1[i] += 1
                cov2[j] += 1
        st = Stage(matches, cov1, cov2)
        if exact_only:
            return st
        by_stem = H.positions("stems")
        for j, k in enumerate(R.stems):
            for i in by_stem.get(k, ()):
                if h1[i] != h2[j]:
                    matches[j].append((j, 1, i, 1, STEM, 1 << j, 1 << i))
                    cov1[i] += 1
                    cov2[j] += 1
        hyp_synsets = H.all_synsets
        for j, y2 in R.synsets:
            if not y2.isdisjoint(hyp_synsets):         # some hypothesis word shares a synset
                b = h2[j]
                for i, y1 in H.synsets:
                    if h1[i] != b and not y2.isdisjoint(y1):
                        matches[j].append((j, 1, i, 1, SYNONYM, 1 << j, 1 << i))
                        cov1[i] += 1
                        cov2[j] += 1
        for m in (self.paraphrase_matches(H, R) if para is None else para):
            st.add(m)
        return st

    def coverage(self, hyp: tuple, ref: tuple, para: list) -> tuple[list[bool], list[bool]]:
        """Which hypothesis / reference words have a candidate (``stage``'s cov > 0) without
        building the candidates: a word of one side has an exact, stem or synonym candidate iff its
        hash, its stem or one of its synsets occurs on the other side (equal hashes are exact)."""
        H, R = self.sentence(hyp), self.sentence(ref)
        c1 = _covered(H, R)
        c2 = _covered(R, H)
        for m in para:
            for k in range(m[3]):
                c1[m[2] + k] = True
            for k in range(m[1]):
                c2[m[0] + k] = True
        return c1, c2

    def paraphrase_matches(self, H: Sentence, R: Sentence) -> list[tuple]:
        """Reference phrases found (as paraphrases) in the hypothesis, then the other way round;
        by phrase, then its paraphrases in file order, each at its occurrences in the other one."""
        out: list[tuple] = []
        length = self._length
        for this, other, flip in ((R, H, False), (H, R, True)):
            occ = other.occ
            if not occ:
                continue
            for s, L, (targets, ranks) in this.spans:
                common = targets.intersection(occ)          # (iterates the few keys of occ)
                if not common:
                    continue
                if len(common) == 1:
                    t = next(iter(common))
                    cands = [(r, t) for r in ranks[t]]
                else:
                    cands = sorted((r, t) for t in common for r in ranks[t])
                for _, t in cands:
                    k = length[t]
                    for p in occ[t]:
                        out.append(_match(p, k, s, L, PARAPHRASE) if flip else _match(s, L, p, k, PARAPHRASE))
        return out


def _covered(A: Sentence, B: Sentence) -> list[bool]:
    """Per word of A: does it have an exact, stem or synonym candidate in B."""
    hb, sb = B.hash_set, B.stem_set
    yb = B.all_synsets
    return [h in hb or k in sb or (bool(y) and not y.isdisjoint(yb))
            for h, k, y in zip(A.hashes, A.stems, A.syn)]


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
