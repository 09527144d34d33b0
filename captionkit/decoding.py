"""Caption decoders: greedy, beam search and best-of-N sampling (Donahue et al., LRCN, sec. 5, Table 6).

Every decoder is a free function over the one step contract shared by all models:

    step(tokens (R,) long, state) -> (logp (R, V) log-probabilities, new_state)

``state`` is a tuple of batch-first tensors (dim 0 = R rows). Decoders never look inside it: they
repeat, reorder and shrink it with ``index_select`` on dim 0 of every tensor. All decoders are batched:
one step call per time step for every input, beam and sample together, and rows whose hypothesis has
finished are dropped from later step calls (so a decoder costs what its unfinished rows cost).

LRCN's Table 6 compares greedy decoding, beam search (width 1-10) and the best of N samples drawn from
softmax(T * logits), where T is an *inverse* temperature (T > 1 is greedier, T = inf is greedy);
N = 100, T = 1.5 was the best sampling setting.

Shape legend: B inputs, K beam width, R rows in a step call, A alive (unfinished) rows, V vocabulary
size, L max_len.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

from .decode_config import MAX_LEN_LIMIT, METHODS, DecodeConfig  # noqa: F401  (the decoders' settings)

State = tuple[torch.Tensor, ...]
StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]
PAD = -1  # filler in token buffers; never passed to step
SAMPLE_BUDGET = 1 << 24  # automatic chunk: at most this many (row, word) entries per sampling step


@dataclass
class Hypothesis:
    tokens: list[int]   # generated ids, without BOS and without the final EOS
    logp: float         # total log-probability under the model (T=1), EOS step included when finished
    finished: bool      # True if it ended with EOS, False if it hit max_len


# ----------------------------------------------------------------------------- state helpers

def select_state(state: State, index: torch.Tensor) -> State:
    """Gather rows of every state tensor: index (R',) long -> state with R' rows."""
    return tuple(s.index_select(0, index) for s in state)


def check_state(state: State) -> int:
    """Validate the batch-first contract and return the batch size B = state[0].size(0)."""
    if not isinstance(state, tuple) or not state or not all(torch.is_tensor(s) for s in state):
        raise ValueError("state must be a non-empty tuple of tensors")
    B = state[0].size(0) if state[0].dim() else -1
    if B < 1 or any(s.dim() == 0 or s.size(0) != B for s in state):
        raise ValueError(f"every state tensor must be batch-first with the same B >= 1, got shapes "
                         f"{[tuple(s.shape) for s in state]}")
    return B


def check_max_len(max_len: int) -> None:
    if not isinstance(max_len, int) or not 1 <= max_len <= MAX_LEN_LIMIT:
        raise ValueError(f"max_len must be an integer in [1, {MAX_LEN_LIMIT}], got {max_len!r}")


def call_step(step: StepFn, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """One step call, checking that logp is (R, V) for the R rows that went in."""
    logp, state = step(tokens, state)
    if logp.dim() != 2 or logp.size(0) != tokens.size(0):
        raise ValueError(f"step returned logp of shape {tuple(logp.shape)} for {tokens.size(0)} rows; "
                         "expected (rows, V)")
    return logp, state


def top_tokens(logp: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logp (R, V) -> the k best (values (R, k), ids (R, k)); shared so beam 1 ties break as greedy."""
    return logp.topk(min(k, logp.size(1)), dim=1)


# ----------------------------------------------------------------------------- greedy / rollouts

def rollout(step: StepFn, state: State, logp: torch.Tensor, *, eos: int, max_len: int,
            choose: Callable[[torch.Tensor], torch.Tensor]):
    """Extend R rows one token at a time until EOS or max_len, dropping finished rows from the batch.

    ``logp`` (R, V) is the first step's output, already computed by the caller (and ``state`` the state
    after it), so that inputs sharing a first step (samples of one image) pay for it once.
    ``choose`` maps logp (A, V) -> token ids (A,). Returns tokens (R, L) padded with PAD, total logp
    (R,) float64, finished (R,) bool and length (R,) long (generated tokens, EOS included).
    """
    R, dev = logp.size(0), logp.device
    tokens = torch.full((R, max_len), PAD, dtype=torch.long, device=dev)
    score = torch.zeros(R, dtype=torch.float64, device=dev)
    finished = torch.zeros(R, dtype=torch.bool, device=dev)
    alive = torch.arange(R, device=dev)  # (A,) rows still generating, in state order
    for t in range(max_len):
        tok = choose(logp)  # (A,)
        score[alive] += logp.gather(1, tok.unsqueeze(1)).squeeze(1).double()
        tokens[alive, t] = tok
        done = tok == eos
        finished[alive[done]] = True
        if t == max_len - 1:
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)  # (A',)
            if keep.numel() == 0:
                break
            alive, tok, state = alive[keep], tok[keep], select_state(state, keep)
        logp, state = call_step(step, tok, state)
    length = (tokens != PAD).sum(dim=1)  # (R,)
    return tokens, score, finished, length


def to_hypothesis(tokens: list[int], logp: float, finished: bool, length: int) -> Hypothesis:
    """A Hypothesis from a row of a token buffer: drop the padding and the final EOS."""
    return Hypothesis(tokens=tokens[: length - int(finished)], logp=logp, finished=finished)


def greedy(step: StepFn, state: State, *, bos: int, eos: int, max_len: int) -> list[list[Hypothesis]]:
    """Greedy (argmax) decoding: state with B rows -> B lists of one Hypothesis."""
    check_max_len(max_len)
    B = check_state(state)
    bos_tokens = torch.full((B,), bos, dtype=torch.long, device=state[0].device)  # (B,)
    logp, state = call_step(step, bos_tokens, state)  # (B, V)
    tokens, score, finished, length = rollout(
        step, state, logp, eos=eos, max_len=max_len, choose=lambda lp: top_tokens(lp, 1)[1][:, 0])
    rows = zip(tokens.tolist(), score.tolist(), finished.tolist(), length.tolist())
    return [[to_hypothesis(*row)] for row in rows]


# ----------------------------------------------------------------------------- beam search

def beam_search(step: StepFn, state: State, *, bos: int, eos: int, max_len: int, beam_size: int,
                nbest: int = 1, length_norm: float = 0.0) -> list[list[Hypothesis]]:
    """Batched beam search: state with B rows -> B lists of up to nbest Hypotheses, best first.

    As in LRCN's decoder, a hypothesis that emits EOS stays in its beam slot with its score frozen and
    competes with the unfinished ones; the search stops when every slot is finished or after max_len
    steps (unfinished slots are returned with finished=False). With length_norm alpha > 0 hypotheses
    are ranked by logp / len**alpha (len counts generated tokens, EOS included); ``logp`` stays the
    total log-probability. Width 1 equals ``greedy``. Fewer than nbest hypotheses come back only when
    fewer have non-zero probability. Like any beam search it is exact only while no prefix of the
    best sequences is pruned (e.g. when K covers every prefix).
    """
    check_max_len(max_len)
    B, K = check_state(state), beam_size
    if not (isinstance(K, int) and K >= 1):
        raise ValueError(f"beam_size must be an integer >= 1, got {K!r}")
    if not 1 <= nbest <= K:
        raise ValueError(f"nbest must be in [1, beam_size={K}], got {nbest}")
    if not (length_norm >= 0 and math.isfinite(length_norm)):
        raise ValueError(f"length_norm must be a finite number >= 0, got {length_norm}")
    dev = state[0].device
    offset = (torch.arange(B, device=dev) * K).unsqueeze(1)  # (B, 1) first slot of each input
    # Slots are flat (B*K,). Only slot 0 of each input starts alive; the others start "dead"
    # (finished, score -inf), so the first step runs on B rows, not B*K identical ones.
    score = torch.full((B * K,), -math.inf, dtype=torch.float64, device=dev)
    score[offset.squeeze(1)] = 0.0
    finished = torch.ones(B * K, dtype=torch.bool, device=dev)
    finished[offset.squeeze(1)] = False
    ntok = torch.zeros(B * K, dtype=torch.long, device=dev)  # generated tokens, EOS included
    history = torch.empty(B * K, 0, dtype=torch.long, device=dev)  # (B*K, t)
    alive = offset.squeeze(1)  # (A,) alive slots, ascending; row i of state belongs to alive[i]
    tokens = torch.full((B,), bos, dtype=torch.long, device=dev)
    for t in range(max_len):
        logp, state = call_step(step, tokens, state)  # (A, V)
        # A row can place at most K extensions in its input's top K, so rank only its top kk tokens.
        top_logp, top_tok = top_tokens(logp, K)  # (A, kk)
        kk = top_tok.size(1)
        cand = torch.full((B * K, kk), -math.inf, dtype=torch.float64, device=dev)
        cand_tok = torch.full((B * K, kk), PAD, dtype=torch.long, device=dev)
        cand[alive] = score[alive].unsqueeze(1) + top_logp.double()  # (A, kk)
        cand_tok[alive] = top_tok
        cand[:, 0] = torch.where(finished, score, cand[:, 0])  # a finished slot carries itself over
        cand_len = ntok + (~finished).long()  # (B*K,) length of each slot's candidates
        rank = cand if length_norm == 0 else cand / cand_len.double().pow(length_norm).unsqueeze(1)
        idx = rank.view(B, K * kk).topk(K, dim=1).indices  # (B, K), best first
        src = (idx // kk + offset).view(-1)  # (B*K,) source slot of each new slot
        new_tok = cand_tok.view(B, K * kk).gather(1, idx).view(-1)  # (B*K,)
        score = cand.view(B, K * kk).gather(1, idx).view(-1)  # (B*K,)
        was_finished = finished[src]
        history = torch.cat([history[src], new_tok.unsqueeze(1)], dim=1)  # (B*K, t+1)
        ntok = ntok[src] + (~was_finished).long()
        finished = was_finished | (new_tok == eos) | (score == -math.inf)
        next_alive = (~finished).nonzero().squeeze(1)  # (A',)
        if next_alive.numel() == 0 or t == max_len - 1:
            break
        row_of_slot = torch.full((B * K,), -1, dtype=torch.long, device=dev)
        row_of_slot[alive] = torch.arange(alive.numel(), device=dev)
        state = select_state(state, row_of_slot[src[next_alive]])  # reorder + shrink, (A', ...)
        tokens, alive = new_tok[next_alive], next_alive
    return _beam_output(history, score, finished, ntok, K, nbest)


def _beam_output(history, score, finished, ntok, K: int, nbest: int) -> list[list[Hypothesis]]:
    """Slots are already in rank order within each input; keep the first nbest that are possible."""
    out: list[list[Hypothesis]] = []
    rows = zip(history.tolist(), score.tolist(), finished.tolist(), ntok.tolist())
    for i, (toks, logp, fin, n) in enumerate(rows):
        if i % K == 0:
            out.append([])
        if len(out[-1]) < nbest and logp != -math.inf:
            out[-1].append(to_hypothesis(toks, logp, fin, n))
    return out


# ----------------------------------------------------------------------------- best-of-N sampling

def sample_tokens(logp: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Draw one token per row from softmax(temperature * logp): logp (A, V) -> ids (A,)."""
    if temperature > torch.finfo(torch.float32).max:  # inf, or inf once cast: the greedy limit
        return top_tokens(logp, 1)[1][:, 0]
    # softmax(T * logp) == softmax(T * logits): log_softmax only shifts each row. Subtracting the row
    # max before scaling keeps any finite T from overflowing. Inverse-CDF sampling needs one uniform
    # per row (Gumbel-max would need one per word: twice as slow for V = 10k on CPU).
    x = logp.to(torch.promote_types(logp.dtype, torch.float32))  # (A, V), cumsum needs >= fp32
    x = (x - x.amax(dim=1, keepdim=True)).mul_(temperature)  # (A, V), max 0
    cdf = x.exp_().cumsum_(dim=1)  # (A, V) unnormalised
    total = cdf[:, -1:].contiguous()  # (A, 1)
    u = torch.rand(total.shape, generator=generator, device=cdf.device, dtype=cdf.dtype) * total
    tok = torch.searchsorted(cdf, u, right=True)  # (A, 1) first word whose cdf exceeds u
    last = torch.searchsorted(cdf, total, right=False)  # (A, 1) last word with non-zero mass
    return torch.minimum(tok, last).squeeze(1)  # guards u rounding up to the total


def sample_best_of_n(step: StepFn, state: State, *, bos: int, eos: int, max_len: int, n: int,
                     temperature: float, seed: int = 0, chunk: int = 0, nbest: int = 1
                     ) -> list[list[Hypothesis]]:
    """Best of N samples: state with B rows -> B lists of up to nbest distinct Hypotheses, best first.

    Draws n samples per input from softmax(temperature * logits) (LRCN's inverse temperature T; T > 1
    is greedier, T = inf is greedy) and keeps the sample(s) with the highest log-probability under the
    model itself (T = 1), not under the tempered distribution; unfinished samples compete on the same
    score. The samples run ``chunk`` per input at a time (B*chunk rows per step; 0 = automatic, about
    2**24 row-word entries) and share the first step. A torch.Generator on the state's device, seeded
    with ``seed``, makes the result reproducible for the same inputs, batch and chunk.
    """
    if not (isinstance(n, int) and n >= 1 and 1 <= nbest <= n):
        raise ValueError(f"need integers n >= 1 and 1 <= nbest <= n, got n={n!r}, nbest={nbest!r}")
    tokens, score, finished = sample_n(step, state, bos=bos, eos=eos, max_len=max_len, n=n,
                                       temperature=temperature, seed=seed, chunk=chunk)
    return _best_samples(tokens, score, finished, nbest)


def sample_n(step: StepFn, state: State, *, bos: int, eos: int, max_len: int, n: int,
             temperature: float, seed: int = 0, chunk: int = 0):
    """n samples per input, all kept: -> tokens (B, n, L) (PAD after the end; EOS included when
    finished), logp under the model (B, n) float64, finished (B, n) bool. See ``sample_best_of_n``."""
    check_max_len(max_len)
    B = check_state(state)
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"need an integer n >= 1, got n={n!r}")
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0 (inf = greedy), got {temperature}")
    dev = state[0].device
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    bos_tokens = torch.full((B,), bos, dtype=torch.long, device=dev)  # (B,)
    logp, state = call_step(step, bos_tokens, state)  # (B, V): the same for all samples of an input
    c = chunk if chunk > 0 else max(1, min(n, SAMPLE_BUDGET // (B * logp.size(1))))
    choose = partial(sample_tokens, temperature=temperature, generator=gen)
    tokens = torch.full((B, n, max_len), PAD, dtype=torch.long, device=dev)
    score = torch.empty(B, n, dtype=torch.float64, device=dev)
    finished = torch.empty(B, n, dtype=torch.bool, device=dev)
    for start in range(0, n, c):
        m = min(c, n - start)
        rows = torch.arange(B, device=dev).repeat_interleave(m)  # (B*m,) the input of each sample
        out = rollout(step, select_state(state, rows), logp[rows], eos=eos, max_len=max_len,
                      choose=choose)
        tokens[:, start:start + m] = out[0].view(B, m, max_len)
        score[:, start:start + m] = out[1].view(B, m)
        finished[:, start:start + m] = out[2].view(B, m)
    return tokens, score, finished


def _best_samples(tokens, score, finished, nbest: int) -> list[list[Hypothesis]]:
    """tokens (B, N, L), score (B, N), finished (B, N) -> the nbest distinct samples per input."""
    order = score.argsort(dim=1, descending=True, stable=True)  # (B, N)
    tokens = tokens.gather(1, order.unsqueeze(2).expand_as(tokens))  # (B, N, L) best first
    score, finished = score.gather(1, order), finished.gather(1, order)
    length = (tokens != PAD).sum(dim=2)  # (B, N)
    out: list[list[Hypothesis]] = []
    for rows in zip(tokens.tolist(), score.tolist(), finished.tolist(), length.tolist()):
        best, seen = [], set()
        for row in zip(*rows):
            hyp = to_hypothesis(*row)
            if tuple(hyp.tokens) not in seen:  # equal tokens imply equal finished (by length)
                seen.add(tuple(hyp.tokens))
                best.append(hyp)
                if len(best) == nbest:
                    break
        out.append(best)
    return out


# ----------------------------------------------------------------------------- scoring, dispatch

def score_sequences(step: StepFn, state: State, sequences: torch.Tensor, lengths, *, bos: int,
                    eos: int, with_eos: bool | torch.Tensor = True) -> torch.Tensor:
    """Teacher-forced total log p: sequences (B, L) padded, lengths (B,) -> (B,) float64.

    Each row scores BOS -> its first lengths[b] tokens, then EOS (where ``with_eos``, a bool or a (B,)
    bool tensor; unfinished hypotheses are scored without it). Padding is never fed to ``step``.
    """
    B = check_state(state)
    dev = state[0].device
    if sequences.dim() != 2 or sequences.size(0) != B:
        raise ValueError(f"sequences must be (B={B}, L), got {tuple(sequences.shape)}")
    sequences = sequences.to(dev).long()
    lengths = torch.as_tensor(lengths, device=dev).long().view(-1)  # (B,)
    L = sequences.size(1)
    if lengths.numel() != B or bool((lengths < 0).any()) or bool((lengths > L).any()):
        raise ValueError(f"lengths must be B={B} integers in [0, {L}], got {lengths.tolist()}")
    n_steps = lengths + torch.as_tensor(with_eos, device=dev).bool().expand(B).long()  # (B,)
    inputs = torch.cat([sequences.new_full((B, 1), bos), sequences], dim=1)  # (B, L+1)
    targets = torch.cat([sequences, sequences.new_full((B, 1), eos)], dim=1)  # (B, L+1)
    targets.scatter_(1, lengths.unsqueeze(1), eos)  # EOS right after each row's last token
    total = torch.zeros(B, dtype=torch.float64, device=dev)
    rows = torch.arange(B, device=dev)  # (A,) rows still scoring, in state order
    for t in range(int(n_steps.max())):
        keep = n_steps[rows] > t  # (A,)
        if not bool(keep.all()):
            idx = keep.nonzero().squeeze(1)
            rows, state = rows[idx], select_state(state, idx)
        logp, state = call_step(step, inputs[rows, t], state)  # (A, V)
        total[rows] += logp.gather(1, targets[rows, t].unsqueeze(1)).squeeze(1).double()
    return total


def banning(step: StepFn, banned: list[int]) -> StepFn:
    """``step`` whose log-probabilities of the ``banned`` ids are -inf: no decoder picks them. The
    other words keep the model's log-probabilities (not renormalised), so a hypothesis' ``logp`` is
    still its probability under the model."""
    def masked(tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        logp, state = step(tokens, state)
        logp = logp.clone()
        logp[:, banned] = -math.inf  # (R, V)
        return logp, state
    return masked


def no_repeat(step: StepFn, state: State, n: int) -> tuple[StepFn, State]:
    """``step`` and ``state`` for decoding without repeated n-grams ("a man on a skateboard on a
    skateboard" cannot come out with n = 3): the word that would complete an n-gram already in the
    row's caption gets log-probability -inf, as ``banning`` does for fixed ids.

    Each row's words so far ride in the state as one more batch-first tensor, placed first, so every
    decoder reorders, repeats and shrinks them with the hypotheses it keeps (the model's own state
    stays where the model expects it, ``state[-1]`` included). The first call's token (BOS) is not a
    word of the caption: it is kept as -1, which no word equals."""
    check_state(state)
    history = torch.empty(state[0].size(0), 0, dtype=torch.long, device=state[0].device)  # (B, 0)

    def blocked(tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        words = tokens if state[0].size(1) else torch.full_like(tokens, -1)  # (R,)
        hist, inner = torch.cat([state[0], words.unsqueeze(1)], dim=1), state[1:]  # (R, t+1)
        logp, inner = step(tokens, inner)  # (R, V)
        L = hist.size(1)
        if L > n:  # windows j = 1..L-n (0 is BOS) whose first n-1 words equal the last n-1 words
            same = torch.ones(hist.size(0), L - n, dtype=torch.bool, device=hist.device)  # (R, L-n)
            for k in range(n - 1):
                same &= hist[:, 1 + k:L - n + 1 + k] == hist[:, L - n + 1 + k:L - n + 2 + k]
            banned = torch.zeros_like(logp).scatter_add_(1, hist[:, n:], same.to(logp.dtype)) > 0
            logp = logp.masked_fill(banned, -math.inf)  # (R, V)
        return logp, (hist, *inner)
    return blocked, (history, *state)


def decode(step: StepFn, state: State, cfg: DecodeConfig, *, bos: int, eos: int, unk: int | None = None
           ) -> list[list[Hypothesis]]:
    """Decode B inputs with the method in ``cfg``: state with B rows -> B lists of Hypotheses.

    With ``unk`` given, that id is never generated unless ``cfg.allow_unk``; with
    ``cfg.no_repeat_ngram`` = n > 0 no hypothesis repeats an n-gram."""
    if unk is not None and not cfg.allow_unk:
        step = banning(step, [unk])
    if cfg.no_repeat_ngram:
        step, state = no_repeat(step, state, cfg.no_repeat_ngram)
    if cfg.method == "greedy":
        return greedy(step, state, bos=bos, eos=eos, max_len=cfg.max_len)
    if cfg.method == "beam":
        return beam_search(step, state, bos=bos, eos=eos, max_len=cfg.max_len, beam_size=cfg.beam_size,
                           nbest=cfg.nbest, length_norm=cfg.length_norm)
    return sample_best_of_n(step, state, bos=bos, eos=eos, max_len=cfg.max_len, n=cfg.n,
                            temperature=cfg.temperature, seed=cfg.seed, chunk=cfg.chunk,
                            nbest=cfg.nbest)
