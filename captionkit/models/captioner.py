"""LRCN image captioner (Donahue et al., section 5): CNN -> visual feature -> LRCN stack -> words.

``Captioner`` = an ``ImageEncoder`` + an optional visual projection + an ``LRCNStack``. Training with a
frozen, cached encoder passes features straight to ``forward``; fine-tuning passes images through
``encode`` first. Decoders drive ``init_state`` / ``step`` (the shared step contract).

Shapes: B batch, T time, S image side, D encoder feature size, P projected size, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..encoders import ImageEncoder
from ..recurrent import LRCNStack, RecurrentConfig
from .attention_captioner import AttentionConfig

ARCHS = ("lrcn", "attention")


@dataclass
class CaptionModelConfig(RecurrentConfig):
    visual_proj: int = 0        # 0: feed the CNN feature as is (the paper); >0: Linear+ReLU to this size
    visual_dropout: float = 0.0  # dropout on the visual feature
    arch: str = "lrcn"          # "lrcn" (this module) | "attention" (Show, Attend and Tell: attention_captioner.py)
    attention: AttentionConfig = field(default_factory=AttentionConfig)  # arch = "attention" only

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {ARCHS}, got {self.arch!r}")


class Captioner(nn.Module):
    def __init__(self, cfg: CaptionModelConfig, encoder: ImageEncoder, vocab_size: int, pad_id: int):
        super().__init__()
        self.cfg, self.encoder = cfg, encoder
        D = encoder.out_dim
        if cfg.visual_proj:
            self.visual = nn.Sequential(nn.Dropout(cfg.visual_dropout), nn.Linear(D, cfg.visual_proj), nn.ReLU())
            D = cfg.visual_proj
        else:
            self.visual = nn.Dropout(cfg.visual_dropout)
        self.core = LRCNStack(cfg, vocab_size, D, pad_id)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> CNN features (B, D) (no gradient into a frozen encoder)."""
        if self.encoder.frozen:
            with torch.no_grad():
                return self.encoder(images)
        return self.encoder(images)

    def forward(self, visual: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """CNN features (N, D) or images (N, 3, S, S), tokens (B, T) (BOS first) -> logits (B, T, V).

        ``index`` (B,) says which image each caption belongs to (default: N == B, one each), so an
        image with five captions is encoded once. Images are encoded inside ``forward`` so that DDP
        sees every parameter used.
        """
        feats = self.encode(visual) if visual.dim() == 4 else visual  # (N, D)
        if index is not None:
            feats = feats.index_select(0, index)  # (B, D)
        return self.core(tokens, self.visual(feats))

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """CNN features (B, D) -> decoding state for ``step``."""
        return self.core.init_state(self.visual(feats))

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """tokens (B,) -> (logp (B, V), state): the decoders' step contract."""
        return self.core.step(tokens, state)
