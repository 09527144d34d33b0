"""Pretrained word vectors: the GloVe text format and the word2vec binary format.

- GloVe text: one word per line, ``word v1 v2 ... vD`` separated by single spaces (UTF-8).
- word2vec binary: an ASCII header ``V D\\n``, then V records ``word<space>`` followed by D
  little-endian float32 values (and, in most files, a ``\\n`` after each record).

Unknown words are handled explicitly: ``embed_sentences`` drops them from the sequence and counts
them in an ``UnknownReport`` (tokens, types, the most frequent ones, sentences left empty) that the
caller prints. Shape legend: V vocabulary size, D vector size, T sentence length.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

# Lower-cased words, numbers and clitics ("'s"); GloVe 6B is lower-cased and splits "man's" into
# "man" + "'s". Punctuation is dropped: it carries no content for sentence retrieval.
_TOKEN = re.compile(r"[a-z0-9]+|'[a-z]+")


def tokenize(sentence: str) -> list[str]:
    """A raw caption -> lower-cased word tokens without punctuation."""
    return _TOKEN.findall(sentence.lower())


@dataclass
class WordVectors:
    words: list[str]                    # V words, in file order
    vectors: torch.Tensor               # (V, D) float32
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return self.vectors.size(1)

    def __len__(self) -> int:
        return len(self.words)


@dataclass
class UnknownReport:
    tokens: int = 0                     # all tokens seen
    unknown_tokens: int = 0             # tokens with no vector (dropped)
    unknown_types: Counter = field(default_factory=Counter)
    empty_sentences: int = 0            # sentences with no known word at all

    def summary(self, top: int = 10) -> str:
        """One line: how many tokens/types were unknown, the most frequent ones, empty sentences."""
        rate = 100.0 * self.unknown_tokens / max(self.tokens, 1)
        common = ", ".join(f"{w}({n})" for w, n in self.unknown_types.most_common(top))
        return (f"unknown words: {self.unknown_tokens}/{self.tokens} tokens ({rate:.2f}%), "
                f"{len(self.unknown_types)} types [{common}]; {self.empty_sentences} empty sentences")


def read_glove(path: str | Path, max_words: int | None = None) -> WordVectors:
    """GloVe text file -> WordVectors (V, D)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"GloVe file not found: {path}")
    words, rows, dim = [], [], None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) < 2:
                if line.strip():
                    raise UserError(f"{path}:{lineno}: expected 'word v1 ... vD', got {line[:60]!r}")
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise UserError(f"{path}:{lineno}: {len(parts) - 1} values, expected {dim} like line 1")
            try:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            except ValueError:
                raise UserError(f"{path}:{lineno}: non-numeric vector value for word {parts[0]!r}") from None
            words.append(parts[0])
            if max_words is not None and len(words) >= max_words:
                break
    if not words:
        raise UserError(f"{path}: no word vectors in the file")
    return WordVectors(words, torch.from_numpy(np.stack(rows)))


def read_word2vec_bin(path: str | Path, max_words: int | None = None) -> WordVectors:
    """word2vec binary file -> WordVectors (V, D)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"word2vec file not found: {path}")
    data = path.read_bytes()
    nl = data.find(b"\n")
    try:
        V, D = (int(x) for x in data[:nl].split())
    except ValueError:
        raise UserError(f"{path}: first line must be '<words> <dim>', got {data[:40]!r}") from None
    n = V if max_words is None else min(V, max_words)
    words, vecs, pos = [], np.empty((n, D), dtype=np.float32), nl + 1
    for i in range(n):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b" "):  # optional record separator
            pos += 1
        end = data.find(b" ", pos)
        if end < 0 or end + 1 + 4 * D > len(data):
            raise UserError(f"{path}: truncated at word {i} of {V} (byte {pos})")
        try:
            words.append(data[pos:end].decode("utf-8"))
        except UnicodeDecodeError:
            words.append(data[pos:end].decode("latin-1"))
        vecs[i] = np.frombuffer(data, dtype="<f4", count=D, offset=end + 1)
        pos = end + 1 + 4 * D
    return WordVectors(words, torch.from_numpy(vecs))


def read_word_vectors(path: str | Path, max_words: int | None = None) -> WordVectors:
    """Read by extension: ``.bin`` -> word2vec binary, anything else -> GloVe text."""
    if str(path).endswith(".bin"):
        return read_word2vec_bin(path, max_words)
    return read_glove(path, max_words)


def embed_sentences(sentences: list[str], wv: WordVectors,
                    report: UnknownReport | None = None) -> tuple[list[torch.Tensor], list[list[str]], UnknownReport]:
    """Raw sentences -> per-sentence vectors (T_i, D) of the known words, their words, the report.

    A sentence with no known word becomes a (0, D) tensor; the encoders map it to a zero vector.
    """
    report = report if report is not None else UnknownReport()
    seqs, kept = [], []
    for s in sentences:
        toks = tokenize(s)
        known = [t for t in toks if t in wv.index]
        report.tokens += len(toks)
        report.unknown_tokens += len(toks) - len(known)
        report.unknown_types.update(t for t in toks if t not in wv.index)
        if not known:
            report.empty_sentences += 1
        ids = torch.tensor([wv.index[t] for t in known], dtype=torch.long)
        seqs.append(wv.vectors[ids])  # (T_i, D)
        kept.append(known)
    return seqs, kept, report
