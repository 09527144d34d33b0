"""Caption vocabulary on Hugging Face ``tokenizers`` (WordLevel model).

Normalisation: Unicode NFKC, lower case, every character that is not a letter, digit, apostrophe or
white space becomes a space; then white-space splitting. Words seen fewer than ``min_count`` times in
the training captions map to UNK. PAD, BOS, EOS and UNK have distinct ids (0, 1, 2, 3): padding is
never confused with the end of a caption. The vocabulary travels inside checkpoints as tokenizer JSON.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]


def _normalizer():
    return normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[^\w\s']|_"), " "),
    ])


class Vocab:
    """Word-level vocabulary: ``encode`` (text -> ids, no BOS/EOS) and ``decode`` (ids -> text)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        self.pad, self.bos, self.eos, self.unk = (tokenizer.token_to_id(t) for t in SPECIALS)
        if None in (self.pad, self.bos, self.eos, self.unk):
            raise ValueError("vocabulary is missing one of the special tokens " + ", ".join(SPECIALS))
        self._specials = {self.pad, self.bos, self.eos}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 5) -> "Vocab":
        """Build from training captions; words with fewer than ``min_count`` occurrences become UNK.

        Ids are deterministic: specials first, then words by decreasing count, ties alphabetical
        (the ``tokenizers`` trainer breaks ties in hash order, which differs between processes).
        """
        probe = cls._empty()
        counts = Counter(w for text in captions for w in probe.words(text))
        kept = sorted((w for w, n in counts.items() if n >= max(1, min_count) and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        vocab = {w: i for i, w in enumerate(SPECIALS + kept)}
        return cls(cls._tokenizer(vocab))

    @staticmethod
    def _tokenizer(vocab: dict[str, int]) -> Tokenizer:
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
        tok.normalizer = _normalizer()
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return tok

    @classmethod
    def _empty(cls) -> "Vocab":
        return cls(cls._tokenizer({w: i for i, w in enumerate(SPECIALS)}))

    def __len__(self) -> int:
        return self.tok.get_vocab_size()

    def words(self, text: str) -> list[str]:
        """The normalised words of ``text`` (before UNK mapping)."""
        norm = self.tok.normalizer.normalize_str(text)
        return [w for w, _ in self.tok.pre_tokenizer.pre_tokenize_str(norm)]

    def encode(self, text: str) -> list[int]:
        """Text -> word ids (no BOS/EOS)."""
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; stops at EOS, skips PAD and BOS (UNK is kept as ``<unk>``)."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i in self._specials:
                continue
            words.append(self.tok.id_to_token(i) or UNK)
        return " ".join(words)

    def to_json(self) -> str:
        return self.tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> "Vocab":
        return cls(Tokenizer.from_str(text))


def pad_captions(ids: list[list[int]], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """Caption ids -> (inputs [BOS]+ids, targets ids+[EOS]), both (B, T) padded with PAD."""
    T = max(len(x) for x in ids) + 1
    inp = torch.full((len(ids), T), vocab.pad, dtype=torch.long)
    tgt = torch.full((len(ids), T), vocab.pad, dtype=torch.long)
    for b, x in enumerate(ids):
        inp[b, 0] = vocab.bos
        inp[b, 1:len(x) + 1] = torch.tensor(x, dtype=torch.long)
        tgt[b, :len(x)] = torch.tensor(x, dtype=torch.long)
        tgt[b, len(x)] = vocab.eos
    return inp, tgt
