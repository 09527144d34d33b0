"""Soft attention over a K x K grid of CNN features, shared by every attention model.

Two ways to score the K^2 = P positions from the recurrent state h (the previous hidden state):
  ``location``  Sharma, Kiros & Salakhutdinov, "Action Recognition using Visual Attention", Eq. 4:
                l_{t,i} = softmax_i(W_i^T h_{t-1}), a linear map of the state to P logits; where to
                look does not depend on what is there.
  ``content``   Xu et al., "Show, Attend and Tell" section 4.2 (and the Sharma et al. authors'
                released code, which looks at the current frame's features): e_i = w^T tanh(W_a a_i +
                W_h h_{t-1} + b), alpha = softmax(e).
Either way the context is the expectation sum_i alpha_i a_i (the "soft" deterministic attention),
trained with the doubly stochastic penalty lambda * sum_i (1 - sum_t alpha_{t,i})^2 (Sharma Eq. 8;
Xu Eq. 14), and the recurrent state starts from MLPs of the mean feature (Sharma Eq. 5; Xu 3.1.2).

For a fixed grid (an image being captioned) ``project`` computes W_a a_i once, so each step costs
one (B, H) x (H, A) matmul plus the tanh and the weighted sum.

Shape legend: B batch, T time steps, P = K*K grid positions, D feature size, H state size,
A attention size.
"""
from __future__ import annotations

import torch
from torch import nn

KINDS = ("location", "content")


class SoftAttention(nn.Module):
    """(grid (B, P, D), h (B, H)) -> (context (B, D), weights (B, P)); weights sum to 1 over P."""

    def __init__(self, kind: str, feature_dim: int, state_dim: int, positions: int, att_dim: int = 256):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"attention kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.positions = kind, positions
        if kind == "location":
            self.state_to_logits = nn.Linear(state_dim, positions)  # W in Sharma Eq. 4
        else:
            self.feature_proj = nn.Linear(feature_dim, att_dim)          # W_a
            self.state_proj = nn.Linear(state_dim, att_dim, bias=False)  # W_h
            self.score = nn.Linear(att_dim, 1)                           # w

    def project(self, grid: torch.Tensor) -> torch.Tensor | None:
        """grid (B, P, D) -> W_a a_i (B, P, A) for ``content``; None for ``location``."""
        return self.feature_proj(grid) if self.kind == "content" else None

    def weights(self, h: torch.Tensor, projected: torch.Tensor | None = None,
                grid: torch.Tensor | None = None) -> torch.Tensor:
        """State (B, H) -> attention weights (B, P)."""
        if self.kind == "location":
            return torch.softmax(self.state_to_logits(h), dim=-1)  # (B, P)
        if projected is None:
            projected = self.project(grid)
        e = self.score(torch.tanh(projected + self.state_proj(h).unsqueeze(1))).squeeze(-1)  # (B, P)
        return torch.softmax(e, dim=-1)

    def forward(self, grid: torch.Tensor, h: torch.Tensor,
                projected: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if grid.dim() != 3 or (self.kind == "location" and grid.shape[1] != self.positions):
            raise ValueError(f"attention expects a grid (B, {self.positions}, D), got {tuple(grid.shape)}")
        alpha = self.weights(h, projected, grid)                  # (B, P)
        context = torch.bmm(alpha.unsqueeze(1), grid).squeeze(1)  # (B, 1, P) @ (B, P, D) -> (B, D)
        return context, alpha


def doubly_stochastic_penalty(weights: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """weights (B, T, P), mask (B, T) of valid steps -> per-sequence sum_i (1 - sum_t w_{t,i})^2 (B,)."""
    if mask is not None:
        weights = weights * mask.unsqueeze(-1).to(weights.dtype)  # padded steps attend nowhere
    return (1.0 - weights.sum(1)).pow(2).sum(-1)  # (B, P) -> (B,)


class StateInit(nn.Module):
    """Mean feature (B, D) -> initial (h, c), each (layers, B, H): one tanh MLP per layer and state."""

    def __init__(self, feature_dim: int, hidden: int, layers: int, cell: bool = True):
        super().__init__()
        self.layers, self.hidden, self.cell = layers, hidden, cell
        outs = 2 if cell else 1
        self.mlp = nn.Sequential(nn.Linear(feature_dim, hidden), nn.Tanh(),
                                 nn.Linear(hidden, outs * layers * hidden), nn.Tanh())

    def forward(self, mean_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        B = mean_feature.shape[0]
        out = self.mlp(mean_feature).view(B, -1, self.layers, self.hidden)  # (B, 1|2, L, H)
        out = out.permute(1, 2, 0, 3).contiguous()                          # (1|2, L, B, H)
        return out[0], (out[1] if self.cell else None)
