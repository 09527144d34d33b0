"""Activity recognition models of LRCN (Donahue et al., section 4 and Table 1).

  single frame   every frame goes through the CNN and a linear classifier; the clip's prediction is
                 the average of the per-frame predictions (the paper's baseline)
  LRCN           CNN fc-level features of every frame -> dropout -> LSTM -> linear classifier at every
                 time step; the video's label is the average of the per-step probabilities

Both return per-frame logits (B, T, K): the loss (``tasks.activity``) is the frame-averaged
cross-entropy, and prediction averages the softmax over frames (and over a video's clips). The CNN
is an ``ImageEncoder`` (``captionkit.encoders``), frozen (features only) or fine-tuned end to end.

Shape legend: B clips, T frames per clip, C channels, S crop size, D CNN feature size, H LSTM
size, K classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..recurrent import run_layer

KINDS = ("lrcn", "single")


@dataclass
class ActivityModelConfig:
    kind: str = "lrcn"          # "lrcn" | "single" (single-frame baseline), LRCN Table 1 rows
    hidden: int = 0             # LSTM size; 0 = the paper's default: 256 for RGB, 1024 for flow
    dropout: float = 0.5        # on the CNN features entering the LSTM / classifier (the paper: 0.9)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model.kind must be one of {KINDS}, got {self.kind!r}")
        if self.hidden < 0:
            raise ValueError(f"model.hidden must be >= 0, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


def default_hidden(modality: str) -> int:
    """LRCN's LSTM sizes: 256 hidden units for RGB, 1024 for flow."""
    return 1024 if modality == "flow" else 256


class ActivityRecognizer(nn.Module):
    """frames uint8 or float (B, T, C, S, S) -> per-frame logits (B, T, K)."""

    def __init__(self, cfg: ActivityModelConfig, encoder: nn.Module, num_classes: int, hidden: int):
        super().__init__()
        self.cfg, self.num_classes = cfg, num_classes
        self.encoder = encoder  # images (N, C, S, S) -> (N, D); has .out_dim, .mean, .std, .frozen
        D = encoder.out_dim
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(D, hidden, batch_first=True) if cfg.kind == "lrcn" else None
        self.classifier = nn.Linear(hidden if cfg.kind == "lrcn" else D, num_classes)

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 0..255 (N, C, S, S) -> the encoder's normalised float input (N, C, S, S)."""
        x = frames.float().div(255.0) if frames.dtype == torch.uint8 else frames.float()
        return (x - self.encoder.mean) / self.encoder.std

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, C, S, S) -> CNN features (B, T, D) (no gradient when the CNN is frozen)."""
        B, T = frames.shape[:2]
        x = self.normalise(frames.flatten(0, 1))  # (B*T, C, S, S)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder.frozen):
            feats = self.encoder(x)  # (B*T, D)
        return feats.view(B, T, -1)  # (B, T, D)

    def classify_features(self, feats: torch.Tensor) -> torch.Tensor:
        """feats (B, T, D) -> per-step logits (B, T, K)."""
        x = self.drop(feats)
        if self.lstm is not None:
            x, _ = run_layer(self.lstm, x)  # (B, T, H): step t has seen frames 0..t
        return self.classifier(x)  # (B, T, K)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.classify_features(self.features(frames))


def clip_probabilities(model: ActivityRecognizer, clips: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """One video's test clips (N, T, C, S, S) -> class probabilities (K,) averaged over frames and clips."""
    total = None
    for i in range(0, clips.size(0), batch):
        logits = model(clips[i:i + batch])  # (b, T, K)
        p = logits.float().softmax(-1).sum((0, 1))  # (K,)
        total = p if total is None else total + p
    return total / (clips.size(0) * clips.size(1))


def late_fusion(p_rgb: torch.Tensor, p_flow: torch.Tensor, rgb_weight: float = 0.5) -> torch.Tensor:
    """Weighted average of an RGB and a flow model's probabilities (..., K): LRCN uses 1/2 and 1/3."""
    if not 0.0 <= rgb_weight <= 1.0:
        raise ValueError(f"rgb_weight must be in [0, 1], got {rgb_weight}")
    return rgb_weight * p_rgb + (1.0 - rgb_weight) * p_flow
