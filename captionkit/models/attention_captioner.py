"""Soft-attention image captioner: Xu et al. 2015, "Show, Attend and Tell", sections 3.1 and 4.2.

At word t the LSTM state h_{t-1} scores the K x K grid a_1..a_P of the CNN's last feature map
(``captionkit.attention.SoftAttention`` kind "content", Xu's f_att), the context is
z_t = beta_t * sum_i alpha_{t,i} a_i with the optional gating scalar beta_t = sigmoid(f_beta(h_{t-1}))
(section 4.2.1), and
    LSTM input      [E y_{t-1}; z_t]                                           (Eq. 1-3)
    deep output     p(y_t) = softmax(L_o tanh(E y_{t-1} + L_h h_t + L_z z_t))  (Eq. 7)
    initial state   h_0, c_0 = MLPs of the mean grid feature                   (section 3.1.2)
    penalty         lambda * sum_i (1 - sum_t alpha_{t,i})^2                    (Eq. 14)
The grid may first pass a Linear+ReLU (``attention.grid_proj``; a learned 1x1 convolution that makes
the LSTM input smaller on a CPU) and, for partial end-to-end tuning, the upper blocks of the CNN
(``attention.tune_from``; see ``captionkit.models.cnn_split``), whose input is then the cached
activation of a lower block.

Decoding keeps the step contract of ``captionkit.decoding``: the state is (h, c, grid, projected
grid, alpha), all batch-first, so beam search repeats and reorders the grid with the hypotheses and
the last attention weights come out of any decoder in ``state[-1]``.

Shapes: B batch, T time, P = K*K grid positions, C raw grid channels, D grid feature size (after
the optional projection), A attention size, H hidden size, E embedding size, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..attention import SoftAttention, StateInit, doubly_stochastic_penalty
from ..recurrent import lstm_cell, lstm_cell_split, split_input


@dataclass
class AttentionConfig:
    att_dim: int = 256          # A: size of the attention MLP (Xu's f_att)
    grid_proj: int = 0          # 0: attend over the CNN's C-d grid (the paper); >0: Linear+ReLU to this size
    gate: bool = True           # the gating scalar beta (Xu 4.2.1)
    penalty: float = 1.0        # lambda of the doubly stochastic penalty (Xu Eq. 14); 0 = off
    tune_from: int = 0          # >0: cache the CNN stages [:tune_from] and train the stages above

    def __post_init__(self) -> None:
        for name, least in (("att_dim", 1), ("grid_proj", 0), ("tune_from", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"model.attention.{name} must be an integer >= {least}, got {value!r}")
        if not self.penalty >= 0:
            raise ValueError(f"model.attention.penalty must be >= 0, got {self.penalty!r}")


class AttentionCaptioner(nn.Module):
    """Grid features (B, P, C) [or lower-block activations when tuning] + words -> next-word logits."""

    def __init__(self, cfg, encoder: nn.Module, vocab_size: int, pad_id: int, upper: nn.Module | None = None):
        super().__init__()
        a = cfg.attention
        self.cfg, self.encoder, self.upper = cfg, encoder, upper
        self.in_dim = upper.out_dim if upper is not None else encoder.out_dim  # C
        H, E = cfg.hidden, cfg.embed
        self.visual_drop = nn.Dropout(cfg.visual_dropout)
        self.grid_proj = nn.Sequential(nn.Linear(self.in_dim, a.grid_proj), nn.ReLU()) if a.grid_proj else nn.Identity()
        D = a.grid_proj or self.in_dim
        self.feature_dim = D
        self.embed = nn.Embedding(vocab_size, E, padding_idx=pad_id)
        self.attend = SoftAttention("content", D, H, 0, a.att_dim)  # content scores any grid size P
        self.gate = nn.Linear(H, 1) if a.gate else None
        self.init = StateInit(D, H, layers=1)
        self.cell = nn.LSTM(E + D, H)  # run one step at a time by recurrent.lstm_cell (fused math)
        self.out_h, self.out_z = nn.Linear(H, E), nn.Linear(D, E)  # L_h, L_z
        self.out = nn.Linear(E, vocab_size)                        # L_o
        self.drop = nn.Dropout(cfg.dropout)

    # ------------------------------------------------------------------ features
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> encoder output (B, P', C') (no gradient into a frozen encoder)."""
        if self.encoder.frozen:
            with torch.no_grad():
                return self.encoder(images)
        return self.encoder(images)

    def grid(self, feats: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, P', C') (or flattened (B, P'*C'), as ensembles pass it) -> grid (B, P, D)."""
        feats = feats.float()
        if feats.dim() == 2:
            feats = feats.view(feats.size(0), -1, self.upper.in_dim if self.upper is not None else self.in_dim)
        if self.upper is not None:
            feats = self.upper(feats)  # lower-block activations -> (B, P, C)
        return self.grid_proj(self.visual_drop(feats))  # (B, P, D)

    def _context(self, grid, projected, h):
        """-> (z (B, D), alpha (B, P)) from the previous hidden state h (B, H)."""
        z, alpha = self.attend(grid, h, projected)
        if self.gate is not None:
            z = torch.sigmoid(self.gate(h)) * z  # beta_t (B, 1)
        return z, alpha

    def _logits(self, emb: torch.Tensor, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Deep output (Xu Eq. 7): emb (.., E), h (.., H), z (.., D) -> logits (.., V)."""
        return self.out(self.drop(torch.tanh(emb + self.out_h(h) + self.out_z(z))))

    # ------------------------------------------------------------------ teacher forcing
    def run(self, feats: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor | None = None,
            lengths: torch.Tensor | None = None):
        """feats (N, ...) as in ``grid``, tokens (B, T) -> (logits (B, T, V), alpha (B, T, P)).

        With ``lengths`` (B,) (the real steps of each caption, a prefix) the captions are sorted by
        length and step t runs only those still going (``active_rows``): the same values at the real
        steps, about a quarter less work on Flickr8k, where a batch is padded to its longest caption.
        Steps past a caption's length then give h = z = 0 and alpha = 0 (the loss ignores them)."""
        grid = self.grid(feats)  # (N, P, D)
        projected = self.attend.project(grid)  # (N, P, A): once per image, not per caption
        B, T = tokens.shape
        emb = self.drop(self.embed(tokens))  # (B, T, E)
        order = active = None
        if lengths is not None:
            lengths, order = lengths.sort(descending=True, stable=True)
            active = active_rows(lengths, T)
            index = order if index is None else index.index_select(0, order)
        if index is not None:
            grid, projected = grid.index_select(0, index), projected.index_select(0, index)  # (B, P, *)
        h, c = (s[0] for s in self.init(grid.mean(1)))  # (B, H) each
        # the words' share of the gates, all steps at once (B, T, 4H), in the running order
        pre, weight = split_input(emb if order is None else emb.index_select(0, order), self.cell)
        hs, zs, alphas = [], [], []
        for t in range(T):
            n = B if active is None else active[t]  # the first n (sorted) captions are still going
            if n == 0 and hs:
                break
            grid, projected, h, c = grid[:n], projected[:n], h[:n], c[:n]
            z, alpha = self._context(grid, projected, h)
            h, c = lstm_cell_split(pre[:n, t], z, h, c, weight)  # == lstm_cell(cat([emb_t, z]), h, c)
            hs.append(h)
            zs.append(z)
            alphas.append(alpha)
        hs, zs, alphas = (_pad_steps(x, B, T) for x in (hs, zs, alphas))  # (B, T, *)
        if order is not None:
            back = order.argsort()
            hs, zs, alphas = (x.index_select(0, back) for x in (hs, zs, alphas))
        return self._logits(emb, self.drop(hs), zs), alphas  # (B, T, V), (B, T, P)

    def forward(self, visual: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor | None = None,
                mask: torch.Tensor | None = None):
        """Features or images (N, 3, S, S), tokens (B, T) (BOS first), ``mask`` (B, T) of real steps
        -> (logits (B, T, V), lambda * doubly stochastic penalty per caption (B,))."""
        feats = self.encode(visual) if visual.dim() == 4 else visual
        logits, alpha = self.run(feats, tokens, index, prefix_lengths(mask))
        penalty = doubly_stochastic_penalty(alpha, mask) * self.cfg.attention.penalty  # (B,)
        return logits, penalty

    # ------------------------------------------------------------------ step contract
    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Features (B, ...) -> state (h (B, H), c (B, H), grid (B, P, D), projected (B, P, A),
        alpha (B, P)); alpha is the attention of the last step (uniform before the first)."""
        grid = self.grid(feats)
        projected = self.attend.project(grid)
        h, c = (s[0] for s in self.init(grid.mean(1)))
        alpha = grid.new_full(grid.shape[:2], 1.0 / grid.size(1))
        return h, c, grid, projected, alpha

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """tokens (B,) -> (logp (B, V), new state); state[-1] holds this word's attention (B, P)."""
        h, c, grid, projected, _ = state
        emb = self.drop(self.embed(tokens))  # (B, E)
        z, alpha = self._context(grid, projected, h)
        h, c = lstm_cell(torch.cat([emb, z], dim=1), h, c, self.cell)
        logits = self._logits(emb, self.drop(h), z)
        return torch.log_softmax(logits.float(), dim=-1), (h, c, grid, projected, alpha)

    @torch.no_grad()
    def attention_maps(self, feats: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced attention of captions: feats (B, ...), tokens (B, T) (BOS first; word t
        was predicted at step t, EOS at the last) -> alpha (B, T, P)."""
        return self.run(feats, tokens)[1]


def prefix_lengths(mask: torch.Tensor | None) -> torch.Tensor | None:
    """mask (B, T) of real steps -> lengths (B,) when every row is a prefix (real steps first, as
    teacher forcing and sampling give), else None (then every step runs for every caption)."""
    if mask is None:
        return None
    lengths = mask.sum(1)  # (B,)
    steps = torch.arange(mask.size(1), device=mask.device)
    return lengths if torch.equal(steps.unsqueeze(0) < lengths.unsqueeze(1), mask.bool()) else None


def active_rows(sorted_lengths: torch.Tensor, steps: int) -> list[int]:
    """Lengths sorted in descending order (B,) -> for each step t, how many captions have length > t."""
    t = torch.arange(steps, device=sorted_lengths.device)
    return (sorted_lengths.unsqueeze(0) > t.unsqueeze(1)).sum(1).tolist()  # (T,)


def _pad_steps(rows: list[torch.Tensor], B: int, T: int) -> torch.Tensor:
    """Per-step outputs of the running captions, (n_t, F) with n_t non-increasing, -> (B, T, F) with
    zeros where a caption had ended (and for steps never run)."""
    out = [torch.nn.functional.pad(x, (0, 0, 0, B - x.size(0))) if x.size(0) < B else x for x in rows]
    out += [rows[0].new_zeros(B, rows[0].size(1))] * (T - len(rows))
    return torch.stack(out, 1)

