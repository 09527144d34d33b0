"""Decoders (beam search, greedy, sampling, score_sequences) on the hand-built step functions of
``_decoding_toys.py``: exact against brute force and a reference beam, batched == one at a time."""
from __future__ import annotations

import pytest
import torch
from _decoding_toys import (BOS, EOS, INF, V, Counting, as_tuples, assert_same, bigram_state, bigram_step,
                            enumerate_all, position_state, position_step, prefix_state, prefix_step,
                            rank_key, reference_beam, replay, row)

from captionkit.decoding import (DecodeConfig, Hypothesis, beam_search, decode, greedy,
                                 sample_best_of_n, sample_tokens, score_sequences)


# ----------------------------------------------------------------------------- beam search

@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_beam_wide_enough_to_keep_every_prefix_returns_the_most_probable(alpha):
    B, max_len = 4, 3  # 85 sequences: 1 + 4 + 16 finished, 64 cut at max_len
    state = prefix_state(B, seed=1, eos_bias=1.0)
    got = beam_search(prefix_step, state, bos=BOS, eos=EOS, max_len=max_len, beam_size=85, nbest=85,
                      length_norm=alpha)
    top = beam_search(prefix_step, state, bos=BOS, eos=EOS, max_len=max_len, beam_size=85, nbest=6,
                      length_norm=alpha)
    bests = []
    for b in range(B):
        want = sorted(enumerate_all(prefix_step, row(state, b), max_len), key=rank_key(alpha),
                      reverse=True)
        assert len(want) == 85
        assert_same(got[b], want)
        assert_same(top[b], want[:6])
        bests.append(tuple(want[0][0]))
    assert len(set(bests)) > 1, "the inputs should have different answers"


@pytest.mark.parametrize("eos", ["never", "last"])
@pytest.mark.parametrize("K", [1, 2, 3, 6])
def test_beam_width_k_returns_the_k_most_probable_sequences(eos, K):
    # Position-only models: every pruned prefix loses to K prefixes that can take its best suffix,
    # so beam search of width K is exact and must return exactly the top K of all 256 sequences.
    B, max_len = 3, 4
    state = position_state(B, seed=K, eos=eos)
    got = beam_search(position_step, state, bos=BOS, eos=EOS, max_len=max_len, beam_size=K, nbest=K)
    answers = set()
    for b in range(B):
        want = sorted(enumerate_all(position_step, row(state, b), max_len), key=lambda c: c[1],
                      reverse=True)
        assert len(want) == (4 ** 4 if eos == "never" else 4 ** 3)
        assert_same(got[b], want[:K])
        assert all(h.finished == (eos == "last") for h in got[b])
        answers.add(tuple(want[0][0]))
    assert len(answers) == B


@pytest.mark.parametrize("alpha", [0.0, 0.7])
@pytest.mark.parametrize("K", [1, 2, 3, 5])
def test_beam_matches_a_reference_beam_search_on_prefix_dependent_steps(K, alpha):
    B, max_len = 5, 4
    state = prefix_state(B, seed=10 + K, eos_bias=0.5)
    got = beam_search(prefix_step, state, bos=BOS, eos=EOS, max_len=max_len, beam_size=K, nbest=K,
                      length_norm=alpha)
    for b in range(B):
        assert_same(got[b], reference_beam(prefix_step, row(state, b), max_len=max_len, K=K,
                                           alpha=alpha))


@pytest.mark.parametrize("make_state,step", [(bigram_state, bigram_step), (prefix_state, prefix_step)])
def test_beam_one_equals_greedy(make_state, step):
    state = make_state(8, 3)
    g = greedy(step, state, bos=BOS, eos=EOS, max_len=6)
    b = beam_search(step, state, bos=BOS, eos=EOS, max_len=6, beam_size=1)
    assert [as_tuples(x) for x in g] == [as_tuples(x) for x in b]  # exactly, logp included
    assert any(h[0].finished for h in g) and any(len(h[0].tokens) > 0 for h in g)


@pytest.mark.parametrize("no_repeat", [0, 2])
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_batched_equals_one_input_at_a_time(method, no_repeat):
    B = 6
    state = prefix_state(B, seed=5, eos_bias=0.8)
    cfg = DecodeConfig(method=method, beam_size=3 if method == "beam" else 1,
                       nbest=3 if method == "beam" else 1, max_len=5, no_repeat_ngram=no_repeat)
    counting = Counting(prefix_step)
    batched = decode(counting, state, cfg, bos=BOS, eos=EOS)
    assert len(counting.rows) <= cfg.max_len  # one step call per time step for the whole batch
    for b in range(B):
        assert as_tuples(batched[b]) == as_tuples(decode(prefix_step, row(state, b), cfg, bos=BOS,
                                                         eos=EOS)[0])


def test_nbest_is_ordered_distinct_and_scored_by_the_model():
    state = prefix_state(4, seed=7, eos_bias=1.0)
    for alpha in (0.0, 1.0):
        out = beam_search(prefix_step, state, bos=BOS, eos=EOS, max_len=4, beam_size=5, nbest=5,
                          length_norm=alpha)
        for b, hyps in enumerate(out):
            assert len(hyps) == 5 and len({tuple(h.tokens) for h in hyps}) == 5
            keys = [h.logp / (len(h.tokens) + h.finished) ** alpha for h in hyps]
            assert keys == sorted(keys, reverse=True)
            for h in hyps:  # logp is the model's total log-probability of exactly these tokens
                s = score_sequences(prefix_step, row(state, b), torch.tensor([h.tokens + [0]]),
                                    [len(h.tokens)], bos=BOS, eos=EOS, with_eos=h.finished)
                assert float(s) == pytest.approx(h.logp, rel=1e-9)


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_state_of_several_tensors_is_reordered_row_by_row(method):
    # prefix_state holds (B, H, V) float, (B,) long, (B, LMAX) long and (B, 1) long tensors; its step
    # asserts that hash and history agree, and replay() recomputes each score without any decoder.
    state = prefix_state(3, seed=15, eos_bias=0.3)
    cfg = DecodeConfig(method=method, beam_size=4, nbest=1 if method == "greedy" else 3, n=9,
                       temperature=1.0, max_len=5)
    for b, hyps in enumerate(decode(prefix_step, state, cfg, bos=BOS, eos=EOS)):
        for h in hyps:
            words = h.tokens + [EOS] * h.finished
            logps = [replay(prefix_step, row(state, b), tuple(words[:i]))[w] for i, w in enumerate(words)]
            assert h.logp == pytest.approx(sum(logps), rel=1e-9)


# ----------------------------------------------------------------------------- edge cases

def eos_first_state(B: int) -> tuple[torch.Tensor, ...]:
    (table,) = bigram_state(B, 11)
    table[:, BOS] = torch.log_softmax(torch.tensor([0.0, 20.0, 0.0, 0.0, 0.0]), dim=0)
    return (table,)


def test_eos_first():
    state = eos_first_state(3)
    eos_logp = float(torch.log_softmax(torch.tensor([0.0, 20.0, 0.0, 0.0, 0.0]), 0)[EOS])
    counting = Counting(bigram_step)
    for hyps in greedy(counting, state, bos=BOS, eos=EOS, max_len=5):
        assert as_tuples(hyps) == [([], pytest.approx(eos_logp), True)]
    assert counting.rows == [3]  # everything finished after one step
    for hyps in beam_search(bigram_step, state, bos=BOS, eos=EOS, max_len=5, beam_size=3, nbest=3):
        assert hyps[0] == Hypothesis([], pytest.approx(eos_logp), True) and len(hyps) == 3
        assert all(h.logp < eos_logp for h in hyps[1:])
    for hyps in sample_best_of_n(bigram_step, state, bos=BOS, eos=EOS, max_len=5, n=10,
                                 temperature=1.5):
        assert as_tuples(hyps) == [([], pytest.approx(eos_logp), True)]


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_no_eos_ever_stops_at_max_len(method):
    state = position_state(3, seed=2, eos="never")
    counting = Counting(position_step)
    cfg = DecodeConfig(method=method, beam_size=4, nbest=2 if method != "greedy" else 1, n=6,
                       max_len=4)
    out = decode(counting, state, cfg, bos=BOS, eos=EOS)
    assert len(counting.rows) == 4  # exactly max_len step calls
    for hyps in out:
        assert len(hyps) == cfg.nbest
        assert all(len(h.tokens) == 4 and not h.finished and EOS not in h.tokens for h in hyps)


def test_max_len_one_and_impossible_hypotheses_are_dropped():
    state = position_state(2, seed=4, eos="never")
    out = beam_search(position_step, state, bos=BOS, eos=EOS, max_len=1, beam_size=6, nbest=6)
    assert [len(h) for h in out] == [4, 4]  # only 4 words have non-zero probability
    assert all(len(h.tokens) == 1 and h.logp > -INF for hyps in out for h in hyps)


# ----------------------------------------------------------------------------- sampling

def test_sampling_is_reproducible_and_seeded():
    state = prefix_state(4, seed=8, eos_bias=0.5)
    kw = dict(bos=BOS, eos=EOS, max_len=4, n=12, temperature=0.7, nbest=5)
    a = sample_best_of_n(prefix_step, state, seed=3, **kw)
    assert a == sample_best_of_n(prefix_step, state, seed=3, **kw)
    assert a != sample_best_of_n(prefix_step, state, seed=4, **kw)
    for hyps in a:  # distinct, best first by model log-probability
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        assert [h.logp for h in hyps] == sorted((h.logp for h in hyps), reverse=True)


def test_sampling_keeps_the_sample_most_probable_under_the_model():
    state = prefix_state(3, seed=9, eos_bias=1.0)
    kw = dict(bos=BOS, eos=EOS, max_len=3, n=40, temperature=0.5, seed=1)
    every = sample_best_of_n(prefix_step, state, nbest=40, **kw)  # all distinct samples drawn
    best = sample_best_of_n(prefix_step, state, nbest=1, **kw)
    for b in range(3):
        assert best[b] == [max(every[b], key=lambda h: h.logp)] and len(every[b]) > 3
        for h in every[b]:
            s = score_sequences(prefix_step, row(state, b), torch.tensor([h.tokens + [0]]),
                                [len(h.tokens)], bos=BOS, eos=EOS, with_eos=h.finished)
            assert float(s) == pytest.approx(h.logp, rel=1e-9)


@pytest.mark.parametrize("temperature", [1e6, 1e300, INF])
def test_sampling_with_huge_temperature_equals_greedy(temperature):
    state = prefix_state(6, seed=12, eos_bias=0.5)
    g = greedy(prefix_step, state, bos=BOS, eos=EOS, max_len=5)
    s = sample_best_of_n(prefix_step, state, bos=BOS, eos=EOS, max_len=5, n=7,
                         temperature=temperature, chunk=3)
    assert [as_tuples(x) for x in s] == [as_tuples(x) for x in g]


def test_sample_tokens_follows_softmax_of_t_times_logits():
    logp = torch.log_softmax(torch.tensor([[1.0, 0.0, -1.0, -INF, 2.0]]), dim=1)
    gen = torch.Generator().manual_seed(0)
    draws = sample_tokens(logp.expand(40000, -1), 1.5, gen)
    freq = torch.bincount(draws, minlength=5).double() / draws.numel()
    want = torch.softmax(1.5 * logp[0].double(), dim=0)
    assert freq[3] == 0 and torch.allclose(freq, want, atol=0.01)


def test_sampling_chunks_bound_the_rows_per_step():
    state = prefix_state(3, seed=13, eos_bias=0.5)
    counting = Counting(prefix_step)
    out = sample_best_of_n(counting, state, bos=BOS, eos=EOS, max_len=4, n=10, temperature=1.0,
                           chunk=4)
    assert counting.rows[0] == 3 and max(counting.rows[1:]) <= 3 * 4  # shared first step, chunks
    assert all(len(h) == 1 for h in out)


# ----------------------------------------------------------------------------- scoring

def test_score_sequences_equals_the_sum_of_step_logps():
    B = 4
    state = prefix_state(B, seed=14)
    gen = torch.Generator().manual_seed(0)
    seqs = torch.randint(2, V, (B, 5), generator=gen)  # (B, L) ids other than BOS/EOS
    lengths = torch.tensor([5, 0, 3, 1])
    for with_eos in (True, torch.tensor([True, True, False, False])):
        got = score_sequences(prefix_step, state, seqs, lengths, bos=BOS, eos=EOS,
                              with_eos=with_eos)
        want = []
        for b in range(B):
            toks = seqs[b, : lengths[b]].tolist()
            total = sum(replay(prefix_step, row(state, b), tuple(toks[:i]))[toks[i]]
                        for i in range(len(toks)))
            if with_eos is True or bool(with_eos[b]):
                total += replay(prefix_step, row(state, b), tuple(toks))[EOS]
            want.append(total)
        assert got.tolist() == pytest.approx(want, rel=1e-9)
