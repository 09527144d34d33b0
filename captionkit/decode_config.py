"""What a decoder is asked to do (``DecodeConfig``: a recipe's ``[decode]`` table, the CLI's decoding
flags), validated when it is made so a bad value is one clear error naming the field.

The decoders themselves are in ``decoding.py``, which re-exports these names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

METHODS = ("greedy", "beam", "sample")

# The longest caption any decoder generates: the decoders hold (rows, max_len) token buffers, so an
# unbounded --max-len asks for unbounded memory (captions here are ~12 words; 1000 is far past any).
MAX_LEN_LIMIT = 1000


@dataclass
class DecodeConfig:
    method: str = "greedy"      # "greedy" | "beam" | "sample" (the rows of LRCN Table 6)
    beam_size: int = 1          # beam width K (method="beam"); 1 equals greedy
    nbest: int = 1              # hypotheses returned per input: <= beam_size (beam), <= n (sample)
    n: int = 100                # samples per input (best-of-N); the paper's best is N=100
    temperature: float = 1.5    # LRCN's inverse temperature T: samples from softmax(T * logits)
    max_len: int = 20           # at most this many step calls (tokens generated, EOS included)
    length_norm: float = 0.0    # 0 = off (the paper); >0 = divide score by len**alpha when ranking
    seed: int = 0               # seed of the sampling generator
    chunk: int = 0              # 0 = automatic; bounds memory for sample-N (B*chunk rows per step)
    allow_unk: bool = False     # False: the unknown-word token is never generated (see ``decoding.banning``)
    no_repeat_ngram: int = 0    # n > 0: no caption repeats an n-gram (see ``decoding.no_repeat``); 0 = off (the paper)

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise ValueError(f"decode.{field} must be {what}, got {getattr(self, field)!r}")

        def is_int(x: object) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        def is_num(x: object) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)

        need(self.method in METHODS, "method", f"one of {METHODS}")
        for field in ("beam_size", "nbest", "n"):
            need(is_int(getattr(self, field)) and getattr(self, field) >= 1, field, "an integer >= 1")
        need(is_int(self.max_len) and 1 <= self.max_len <= MAX_LEN_LIMIT, "max_len",
             f"an integer in [1, {MAX_LEN_LIMIT}]")
        need(is_int(self.seed), "seed", "an integer")
        need(is_int(self.chunk) and self.chunk >= 0, "chunk", "an integer >= 0 (0 = automatic)")
        need(is_int(self.no_repeat_ngram) and self.no_repeat_ngram >= 0, "no_repeat_ngram", "an integer >= 0 (0 = off)")
        need(is_num(self.temperature) and self.temperature > 0, "temperature", "> 0 (inf = greedy)")
        need(is_num(self.length_norm) and 0 <= self.length_norm < math.inf, "length_norm",
             "a finite number >= 0")
        limit = {"greedy": 1, "beam": self.beam_size, "sample": self.n}[self.method]
        need(self.nbest <= limit, "nbest",
             f"<= {limit} for method={self.method!r} (beam_size for beam, n for sample)")
