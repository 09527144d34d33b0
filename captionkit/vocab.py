"""Caption vocabulary on Hugging Face ``tokenizers`` (WordLevel model).

Normalisation: Unicode NFKC, lower case, every character that is not a letter, digit, apostrophe or
white space becomes a space; then white-space splitting. Words seen fewer than ``min_count`` times in
the training captions map to UNK. PAD, BOS, EOS and UNK have distinct ids (0, 1, 2, 3): padding is
never confused with the end of a caption. The vocabulary travels inside checkpoints as tokenizer JSON.
"""
from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

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
        """Build from training captions; words with fewer than ``min_count`` occurrences become UNK."""
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.normalizer = _normalizer()
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(min_frequency=max(1, min_count), special_tokens=SPECIALS,
                                            show_progress=False)
        tok.train_from_iterator(captions, trainer=trainer)
        return cls(tok)

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
