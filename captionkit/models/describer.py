"""Video description from CRF tuples (Donahue et al., LRCN section 6, Figure 5).

The three architectures of the paper, all decoding words with an LRCN stack (2-layer unfactored
LSTMs by default) and all exposing the shared step contract (``init_state`` / ``step``):
  ``a``  encoder-decoder: an LSTM encoder reads the tuple's labels one per step (one token per slot,
         CRF max); its final (h, c) per layer starts the decoder, which gets no other input.
  ``b``  decoder fed the concatenated one-hot max labels of every slot at every step (CRF max).
  ``c``  the same decoder fed the concatenated per-slot probability vectors (CRF probabilities), at
         training and at test time.
For (b)/(c) the tuple vector is the stack's ``visual`` input (variant "2u": it enters layer 1 beside
the word embedding), which is exactly the paper's decoder when ``tuple_proj = 0``. With
``tuple_proj = P > 0`` the sparse K-d vector is first mapped to a dense P-d one,
``drop(tanh(W x + b))`` with W initialised like an embedding table (N(0, 1) rows, so a one-hot tuple
gets an input as strong as a word's), and that is fed at every step; with ``tuple_init`` the
projection also sets every layer's initial (h, c) (``tanh`` of a linear map), as (a)'s encoder does.

Every model takes ``labels`` (B, S) long, the max label index per slot, and ``probs`` (B, K) float,
the concatenated probability vectors; each uses what its architecture needs.
Shapes: B batch, T time, S slots (5), K sum of the slots' label-set sizes, E embedding, H hidden,
L recurrent layers, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..recurrent import LRCNStack, RecurrentConfig, run_layer

ARCHS = ("a", "b", "c")


@dataclass
class DescriberConfig(RecurrentConfig):
    arch: str = "c"          # "a" encoder-decoder | "b" decoder + CRF max | "c" decoder + CRF probabilities
    variant: str = "2u"      # the paper's description decoder: two unfactored layers
    hidden: int = 256        # CPU-sized (the benchmark trains a/b/c in ~20 CPU minutes); the LRCN
    embed: int = 256         # captioning models use 1000: set model.hidden/model.embed for that
    tuple_proj: int = 0      # (b)/(c): learned dense projection of the tuple vector (0 = feed it raw)
    tuple_init: bool = False  # (b)/(c), needs tuple_proj > 0: the projection also sets the initial (h, c)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.tuple_proj < 0:
            raise ValueError(f"model.tuple_proj must be >= 0, got {self.tuple_proj}")
        if self.tuple_init and self.tuple_proj == 0:
            raise ValueError("model.tuple_init needs model.tuple_proj > 0")


def _offsets(slot_sizes: list[int]) -> torch.Tensor:
    return torch.tensor([0] + list(torch.tensor(slot_sizes).cumsum(0)[:-1].tolist()), dtype=torch.long)


class TupleDecoder(nn.Module):
    """Architectures (b) and (c): the (optionally projected) tuple vector enters the LRCN stack at every step."""

    def __init__(self, cfg: DescriberConfig, slot_sizes: list[int], vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.cfg, self.K = cfg, int(sum(slot_sizes))
        self.register_buffer("offsets", _offsets(slot_sizes), persistent=False)  # (S,)
        P = cfg.tuple_proj
        self.core = LRCNStack(cfg, vocab_size, P or self.K, pad_id)
        if P:
            self.proj = nn.Linear(self.K, P)
            nn.init.normal_(self.proj.weight)   # (P, K): one N(0, 1) column per label, like an embedding
            nn.init.zeros_(self.proj.bias)
        if cfg.tuple_init:
            self.init_proj = nn.Linear(P, 2 * self.core.num_layers * cfg.hidden)

    def tuple_vector(self, labels: torch.Tensor, probs: torch.Tensor | None) -> torch.Tensor:
        """labels (B, S), probs (B, K) -> (B, K): probabilities for (c), concatenated one-hots for (b)."""
        if self.cfg.arch == "c":
            return probs.float()
        return F.one_hot(labels + self.offsets, self.K).sum(1).float()  # (B, S, K) -> (B, K)

    def init_state(self, labels: torch.Tensor, probs: torch.Tensor | None = None):
        """labels (B, S), probs (B, K) -> (h_1, c_1, ..., h_L, c_L, per-step input (B, P or K))."""
        v = self.tuple_vector(labels, probs)  # (B, K)
        if not self.cfg.tuple_proj:
            return self.core.init_state(v)
        v = torch.tanh(self.proj(v))  # (B, P)
        state = self.core.init_state(self.core.drop(v))
        if self.cfg.tuple_init:
            hc = torch.tanh(self.init_proj(v)).chunk(2 * self.core.num_layers, dim=-1)  # 2L x (B, H)
            if self.cfg.unit == "rnn":   # no cell: its slots stay zero
                hc = tuple(x if i % 2 == 0 else torch.zeros_like(x) for i, x in enumerate(hc))
            state = tuple(hc) + (state[-1],)
        return state

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor | None = None):
        """Teacher forcing: tokens (B, T) (BOS first) -> logits (B, T, V)."""
        if not self.cfg.tuple_init:
            return self.core(tokens, self.init_state(labels, probs)[-1])
        state = self.init_state(labels, probs)
        return _run_from_state(self.core, self.cfg.unit, tokens, state)

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """tokens (B,) -> (logp (B, V), state): the decoders' step contract."""
        return self.core.step(tokens, state)


def _run_from_state(core: LRCNStack, unit: str, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
    """Teacher-forced pass of ``core`` from a step-contract state (h_1, c_1, ..., visual) -> logits (B, T, V)."""
    visual = state[-1]
    x = core.drop(core.embed(tokens))  # (B, T, E)
    for i, layer in enumerate(core.layers):
        h0 = state[2 * i].unsqueeze(0).contiguous()  # (1, B, H)
        init = (h0, state[2 * i + 1].unsqueeze(0).contiguous()) if unit == "lstm" else h0
        x, _ = run_layer(layer, core._layer_input(i, x, visual), init)  # (B, T, H)
        x = core.drop(x)
    return core.out(x)  # (B, T, V)


class TupleEncoderDecoder(nn.Module):
    """Architecture (a): LSTM encoder over the tuple's labels; its final state starts the decoder."""

    def __init__(self, cfg: DescriberConfig, slot_sizes: list[int], vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("offsets", _offsets(slot_sizes), persistent=False)  # (S,)
        self.core = LRCNStack(cfg, vocab_size, 0, pad_id)   # no per-step input besides the words
        L = self.core.num_layers
        self.label_embed = nn.Embedding(int(sum(slot_sizes)), cfg.embed)
        rnn = nn.LSTM if cfg.unit == "lstm" else nn.RNN
        self.encoder = rnn(cfg.embed, cfg.hidden, num_layers=L, batch_first=True,
                           dropout=cfg.dropout if L > 1 else 0.0)

    def init_state(self, labels: torch.Tensor, probs: torch.Tensor | None = None):
        """labels (B, S) -> decoder state (h_1, c_1, ..., h_L, c_L, empty visual (B, 0))."""
        x = self.core.drop(self.label_embed(labels + self.offsets))  # (B, S, E)
        _, last = run_layer(self.encoder, x)
        h, c = last if self.cfg.unit == "lstm" else (last, torch.zeros_like(last))  # (L, B, H) each
        state = []
        for i in range(h.size(0)):
            state += [h[i], c[i]]  # (B, H)
        return tuple(state) + (h.new_zeros(h.size(1), 0),)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor | None = None):
        """Teacher forcing: tokens (B, T) (BOS first) -> logits (B, T, V)."""
        return _run_from_state(self.core, self.cfg.unit, tokens, self.init_state(labels))

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """tokens (B,) -> (logp (B, V), state): the decoders' step contract."""
        return self.core.step(tokens, state)


def build_describer(cfg: DescriberConfig, slot_sizes: list[int], vocab_size: int, pad_id: int = 0) -> nn.Module:
    """The architecture ``cfg.arch`` for tuples with these per-slot label-set sizes."""
    if cfg.arch == "a":
        return TupleEncoderDecoder(cfg, slot_sizes, vocab_size, pad_id)
    return TupleDecoder(cfg, slot_sizes, vocab_size, pad_id)
