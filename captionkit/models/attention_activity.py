"""Soft-attention LSTM for action recognition and its baselines (Sharma, Kiros & Salakhutdinov,
"Action Recognition using Visual Attention", section 3 and the Table 1 baselines of section 4.2.1).

Every frame is a K x K x D feature cube X_t (P = K*K slices) of a frozen CNN. The models:
  attention   l_t = softmax over the P positions from the top LSTM layer's h_{t-1} (Eq. 4; or the
              ``content`` variant of the authors' code, which also looks at X_t); x_t = sum_i l_{t,i}
              X_{t,i} (Eq. 5); a stacked LSTM (Eqs. 1-3, paper: 3 layers) and a tanh hidden layer
              predict the class at every step; h_0 and c_0 come from MLPs of the mean of X over
              frames and positions (Eq. 6)
  avg_lstm    the same LSTM on the average of the P slices (no attention)
  max_lstm    the same LSTM on the element-wise maximum of the P slices
  softmax     softmax regression on the whole cube of each frame (no recurrence)
Dropout sits at every non-recurrent connection (input, between layers, classifier). Two options
from Show, Attend and Tell (Xu et al. 4.2.1), both off by default: ``gate`` scales x_t by a learned
beta_t = sigmoid(f_beta(h_{t-1})), and ``uniform_init`` zeroes the attention's last scoring layer so
that every l_t starts exactly uniform.

One module, two entry points: ``forward`` runs a whole window (the content projections of all
frames in one matmul, the baselines' LSTM in one fused call) and ``step`` runs one frame; a test
proves they agree. Inference (``window_scores``) averages the per-step class probabilities over a
window and then over windows (or takes a majority vote of the windows).

Shape legend: B windows, T frames, P = K*K grid positions, D feature size, H hidden size, L LSTM
layers, A attention size, C classes, W windows of a video.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..attention import KINDS as ATTENTION_KINDS
from ..attention import SoftAttention, StateInit

KINDS = ("attention", "avg_lstm", "max_lstm", "softmax")
VOTES = ("mean", "majority")


@dataclass
class AttentionActivityConfig:
    kind: str = "attention"     # "attention" | the Table 1 baselines "avg_lstm" | "max_lstm" | "softmax"
    attention: str = "location"  # "location" (the paper's Eq. 4) | "content" (the authors' code)
    hidden: int = 512           # LSTM, cell and tanh-layer size (paper: 512; 1024 for HMDB-51)
    layers: int = 3             # stacked LSTM layers (paper: 3)
    att_dim: int = 256          # content attention only: size of the tanh scoring layer
    dropout: float = 0.5        # at all non-recurrent connections (paper: 0.5)
    penalty: float = 1.0        # lambda of the doubly stochastic attention penalty (Eq. 7; paper 0 / 1 / 10)
    gate: bool = False          # scale x_t by beta_t = sigmoid(w^T h_{t-1} + b) (Show, Attend and Tell 4.2.1)
    uniform_init: bool = False  # zero the attention's last scoring layer: l_t starts exactly uniform

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model.kind must be one of {KINDS}, got {self.kind!r}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"model.attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.hidden < 1 or self.layers < 1 or self.att_dim < 1:
            raise ValueError("model.hidden, model.layers and model.att_dim must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.penalty < 0:
            raise ValueError(f"model.penalty must be >= 0, got {self.penalty}")


State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, L, H): batch first, as decoders expect


class AttentionActivity(nn.Module):
    """grids (B, T, P, D) -> per-step logits (B, T, C) and attention weights (B, T, P) (None: no attention).

    ``encoder`` (optional) is the frozen CNN that made the grids; it travels in the checkpoint so
    that new videos get the same features, and is never trained here.
    """

    def __init__(self, cfg: AttentionActivityConfig, feature_dim: int, positions: int, num_classes: int,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.cfg, self.feature_dim, self.positions, self.num_classes = cfg, feature_dim, positions, num_classes
        self.encoder = encoder
        self.drop = nn.Dropout(cfg.dropout)
        D, H, L = feature_dim, cfg.hidden, cfg.layers
        if cfg.kind == "softmax":
            self.classifier = nn.Linear(positions * D, num_classes)
            return
        self.init = StateInit(D, H, L)  # Eq. 6: f_init,h and f_init,c
        self.lstm = nn.LSTM(D, H, num_layers=L, batch_first=True, dropout=cfg.dropout if L > 1 else 0.0)
        self.attention = (SoftAttention(cfg.attention, D, H, positions, cfg.att_dim)
                          if cfg.kind == "attention" else None)
        self.gate = nn.Linear(H, 1) if cfg.gate and self.attention is not None else None
        if cfg.uniform_init and self.attention is not None:
            last = self.attention.state_to_logits if cfg.attention == "location" else self.attention.score
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.classifier = nn.Sequential(nn.Linear(H, H), nn.Tanh(), nn.Dropout(cfg.dropout),
                                        nn.Linear(H, num_classes))  # the extra tanh layer of Fig. 2b

    # ------------------------------------------------------------------ state and one step
    def init_state(self, grids: torch.Tensor) -> State:
        """grids (B, T, P, D) -> (h_0, c_0), each (B, L, H), from the mean over frames and positions."""
        h, c = self.init(grids.mean((1, 2)))  # (L, B, H) each
        return h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()

    def pool(self, grid: torch.Tensor) -> torch.Tensor:
        """Baseline input of one or more frames: grid (..., P, D) -> (..., D)."""
        return grid.mean(-2) if self.cfg.kind == "avg_lstm" else grid.amax(-2)

    def step(self, grid: torch.Tensor, state: State | None = None,
             projected: torch.Tensor | None = None) -> tuple[torch.Tensor, State | None, torch.Tensor | None]:
        """One frame: grid (B, P, D), state -> (logits (B, C), new state, weights l_t (B, P) or None)."""
        if self.cfg.kind == "softmax":
            return self.classifier(self.drop(grid.flatten(1))), state, None  # (B, P*D) -> (B, C)
        h, c = state
        weights = None
        if self.attention is not None:
            x, weights = self.attention(grid, h[:, -1], projected)  # top layer's h_{t-1}: (B, D), (B, P)
            if self.gate is not None:
                x = torch.sigmoid(self.gate(h[:, -1])) * x  # beta_t (B, 1) * (B, D)
        else:
            x = self.pool(grid)  # (B, D)
        hx = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())  # (L, B, H): cuDNN wants contiguous
        out, (h2, c2) = self.lstm(self.drop(x).unsqueeze(1), hx)
        logits = self.classifier(self.drop(out[:, 0]))  # (B, H) -> (B, C)
        return logits, (h2.transpose(0, 1), c2.transpose(0, 1)), weights

    # ------------------------------------------------------------------ whole windows
    def forward(self, grids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, P, D = grids.shape
        if P != self.positions or D != self.feature_dim:
            raise ValueError(f"expected grids (B, T, {self.positions}, {self.feature_dim}), got {tuple(grids.shape)}")
        if self.cfg.kind == "softmax":
            return self.classifier(self.drop(grids.flatten(2))), None  # (B, T, P*D) -> (B, T, C)
        h, c = self.init_state(grids)
        if self.attention is None:  # inputs do not depend on the state: one fused LSTM call
            out, _ = self.lstm(self.drop(self.pool(grids)), (h.transpose(0, 1).contiguous(),
                                                              c.transpose(0, 1).contiguous()))  # (B, T, H)
            return self.classifier(self.drop(out)), None
        projected = self.attention.project(grids.flatten(0, 1))  # content: (B*T, P, A) in one matmul
        if projected is not None:
            projected = projected.view(B, T, P, -1)  # (B, T, P, A)
        logits, weights, state = [], [], (h, c)
        for t in range(T):
            lt, state, wt = self.step(grids[:, t], state, None if projected is None else projected[:, t])
            logits.append(lt)
            weights.append(wt)
        return torch.stack(logits, 1), torch.stack(weights, 1)  # (B, T, C), (B, T, P)


def window_scores(model: AttentionActivity, windows: torch.Tensor, vote: str = "mean",
                  batch: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A video's windows (W, T, P, D) -> (video scores (C,), per-window probabilities (W, C),
    attention weights (W, T, P) or None).

    Per-step probabilities are averaged over each window; the video score is their mean over windows
    (``mean``, the paper) or the share of windows voting for each class (``majority``).
    """
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {VOTES}, got {vote!r}")
    probs, weights = [], []
    for i in range(0, windows.shape[0], batch):
        logits, w = model(windows[i:i + batch])  # (b, T, C), (b, T, P) | None
        probs.append(logits.float().softmax(-1).mean(1))  # (b, C)
        weights.append(w)
    per_window = torch.cat(probs)  # (W, C)
    att = None if weights[0] is None else torch.cat(weights)  # (W, T, P)
    if vote == "mean":
        return per_window.mean(0), per_window, att
    votes = torch.bincount(per_window.argmax(1), minlength=per_window.shape[1]).float()  # (C,)
    return votes / votes.sum(), per_window, att
