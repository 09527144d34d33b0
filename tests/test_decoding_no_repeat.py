"""Decoding without repeated n-grams (``DecodeConfig.no_repeat_ngram``, ``decoding.no_repeat``):
exact against brute force over every caption, greedy == the blocked argmax, samples never repeat."""
from __future__ import annotations

import pytest
from _decoding_toys import BOS, EOS, V, assert_same, enumerate_all, prefix_state, prefix_step, replay, row

from captionkit.decoding import DecodeConfig, decode, greedy


# ----------------------------------------------------------------------------- no repeated n-grams

def repeats(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_beam_wide_enough_returns_the_most_probable_captions_without_a_repeated_ngram(n):
    """Exact search (every prefix kept) with --no-repeat-ngram n == brute force over every sequence,
    keeping those without a repeated n-gram, ranked by the model's own log-probability."""
    B, max_len = 3, 4
    state = prefix_state(B, seed=2, eos_bias=0.3)
    wants = [sorted((c for c in enumerate_all(prefix_step, row(state, b), max_len) if not repeats(c[0], n)),
                    key=lambda c: c[1], reverse=True) for b in range(B)]
    K = max(len(w) for w in wants)
    cfg = DecodeConfig(method="beam", beam_size=K, nbest=K, max_len=max_len, no_repeat_ngram=n)
    got = decode(prefix_step, state, cfg, bos=BOS, eos=EOS)
    for b in range(B):
        assert_same(got[b], wants[b])
    plain = decode(prefix_step, state, DecodeConfig(method="beam", beam_size=K, nbest=K, max_len=max_len),
                   bos=BOS, eos=EOS)
    assert any(repeats(h.tokens, n) for hyps in plain for h in hyps)  # there was something to block


def test_no_repeat_greedy_and_samples_never_repeat_and_greedy_is_the_blocked_argmax():
    B, n, max_len = 5, 2, 7
    state = prefix_state(B, seed=4)
    got = decode(prefix_step, state, DecodeConfig(max_len=max_len, no_repeat_ngram=n), bos=BOS, eos=EOS)
    for b in range(B):
        prefix, total = (), 0.0
        for _ in range(max_len):  # the reference: argmax over the words that repeat no n-gram
            logp = replay(prefix_step, row(state, b), prefix)
            allowed = [v for v in range(V) if v == EOS or not repeats(list(prefix) + [v], n)]
            v = max(allowed, key=lambda v: (logp[v], -v))
            total += logp[v]
            if v == EOS:
                break
            prefix += (v,)
        assert (got[b][0].tokens, got[b][0].finished) == (list(prefix), v == EOS)
        assert got[b][0].logp == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert any(repeats(h[0].tokens, n) for h in greedy(prefix_step, state, bos=BOS, eos=EOS, max_len=max_len))
    samples = decode(prefix_step, state, DecodeConfig(method="sample", n=20, nbest=20, max_len=max_len,
                                                      no_repeat_ngram=n), bos=BOS, eos=EOS)
    assert sum(len(h) for h in samples) > B and not any(repeats(h.tokens, n) for hs in samples for h in hs)
