"""Hand-built step functions for the decoder tests, whose right answers are known or can be enumerated
(brute force over every sequence, a reference beam search), shared by ``test_decoding.py`` and
``test_decoding_no_repeat.py``.

Step functions here carry everything in a batch-first state (per-input random tables, a prefix hash,
the token history), so a decoder that repeats or reorders the state wrongly gives wrong answers.
"""
from __future__ import annotations

import math

import pytest
import torch

from captionkit.decoding import Hypothesis, select_state

BOS, EOS, V = 0, 1, 5
INF = math.inf


def random_logp(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.log_softmax(2.0 * torch.randn(*shape, V, generator=gen), dim=-1)


# ----------------------------------------------------------------------------- step functions

def bigram_state(B: int, seed: int) -> tuple[torch.Tensor, ...]:
    """state = (table (B, V, V),): logp of the next word given the previous one, per input."""
    return (random_logp(torch.Generator().manual_seed(seed), B, V),)


def bigram_step(tokens, state):
    (table,) = state
    return table[torch.arange(tokens.size(0)), tokens], state  # (B, V)


H, LMAX = 211, 8  # prefix-hash buckets, history capacity


def prefix_state(B: int, seed: int, eos_bias: float = 0.0) -> tuple[torch.Tensor, ...]:
    """state = (table (B, H, V), hash (B,), history (B, LMAX), pos (B, 1)): logp depends on the prefix.

    Four tensors of different shapes and dtypes; the step checks that hash and history still agree,
    so reordering some tensors and not others (or mixing rows) fails loudly.
    """
    gen = torch.Generator().manual_seed(seed)
    table = torch.log_softmax(2.0 * torch.randn(B, H, V, generator=gen)
                              + eos_bias * (torch.arange(V) == EOS), dim=-1)
    return (table, torch.zeros(B, dtype=torch.long), torch.full((B, LMAX), -1),
            torch.zeros(B, 1, dtype=torch.long))


def _hash(history: torch.Tensor, upto: torch.Tensor) -> torch.Tensor:
    h = torch.zeros(history.size(0), dtype=torch.long)
    for i in range(history.size(1)):
        h = torch.where(upto > i, (h * 31 + history[:, i] + 7) % H, h)
    return h


def prefix_step(tokens, state):
    table, h, history, pos = state
    assert torch.equal(h, _hash(history, pos.squeeze(1))), "state rows were mixed up"
    history = history.scatter(1, pos, tokens.unsqueeze(1))  # (B, LMAX)
    h, pos = (h * 31 + tokens + 7) % H, pos + 1
    return table[torch.arange(tokens.size(0)), h], (table, h, history, pos)


def position_state(B: int, seed: int, eos: str) -> tuple[torch.Tensor, ...]:
    """state = (table (B, T, V), pos (B,)): logp depends on the position only (not on the prefix).

    eos="never": EOS impossible; eos="last": EOS forced at position 3 (so every sentence has 3 words).
    """
    table = random_logp(torch.Generator().manual_seed(seed), B, 4)  # (B, 4, V)
    table[:, :, EOS] = -INF
    if eos == "last":
        table[:, 3] = -INF
        table[:, 3, EOS] = 0.0
    return table, torch.zeros(B, dtype=torch.long)


def position_step(tokens, state):
    table, pos = state
    return table[torch.arange(tokens.size(0)), pos], (table, pos + 1)


class Counting:
    """Wraps a step function and records the rows of every call."""

    def __init__(self, step):
        self.step, self.rows = step, []

    def __call__(self, tokens, state):
        self.rows.append(tokens.size(0))
        return self.step(tokens, state)


# ----------------------------------------------------------------------------- references

def row(state, b: int):
    return select_state(state, torch.tensor([b]))


def replay(step, state1, prefix: tuple[int, ...]) -> list[float]:
    """logp after feeding BOS + prefix to a one-row state, from scratch (no decoder involved)."""
    for tok in (BOS,) + prefix:
        logp, state1 = step(torch.tensor([tok]), state1)
    return logp[0].tolist()


def enumerate_all(step, state1, max_len: int) -> list[tuple[list[int], float, bool]]:
    """Every sequence reachable within max_len steps with its total logp (finite ones only)."""
    out, frontier = [], [((), 0.0)]
    for t in range(max_len):
        nxt = []
        for prefix, s in frontier:
            for v, lp in enumerate(replay(step, state1, prefix)):
                if lp == -INF:
                    continue
                if v == EOS:
                    out.append((list(prefix), s + lp, True))
                elif t == max_len - 1:
                    out.append((list(prefix) + [v], s + lp, False))
                else:
                    nxt.append((prefix + (v,), s + lp))
        frontier = nxt
    return out


def rank_key(alpha: float):
    return lambda c: c[1] / (len(c[0]) + c[2]) ** alpha if alpha else c[1]


def reference_beam(step, state1, *, max_len: int, K: int, alpha: float = 0.0):
    """Slow beam search for one input with LRCN's rule: finished hypotheses keep their slot."""
    beams = [((), 0.0, False)]
    for _ in range(max_len):
        cands = []
        for prefix, s, fin in beams:
            if fin:
                cands.append((prefix, s, True))
                continue
            for v, lp in enumerate(replay(step, state1, prefix)):
                if lp > -INF:
                    cands.append((prefix + (v,), s + lp, v == EOS))
        key = rank_key(alpha)
        beams = sorted(cands, key=lambda c: key((c[0][:len(c[0]) - c[2]], c[1], c[2])), reverse=True)[:K]
        if all(fin for _, _, fin in beams):
            break
    return [(list(p[:len(p) - fin]), s, fin) for p, s, fin in beams]


def as_tuples(hyps: list[Hypothesis]):
    return [(h.tokens, h.logp, h.finished) for h in hyps]


def assert_same(got: list[Hypothesis], want: list[tuple[list[int], float, bool]]):
    assert [(h.tokens, h.finished) for h in got] == [(w[0], w[2]) for w in want]
    assert [h.logp for h in got] == pytest.approx([w[1] for w in want], rel=1e-9, abs=1e-9)
