"""Partial end-to-end CNN tuning on a CPU: a frozen, cached lower CNN and trainable upper blocks.

LRCN (Donahue et al., section 5) gained from fine-tuning the CNN with the captioner. On a CPU the
whole CNN per training step is too slow, so the MobileNetV2 is cut at block ``tune_from``: the
activations of ``features[:tune_from]`` are computed once per image and cached on disk (fp16, as
grids (P', C') like any grid feature), and ``features[tune_from:]`` trains with the captioner, run on
the cached activations at every step. The upper blocks keep their ImageNet BatchNorm statistics
(eval-mode BatchNorm: training batches of a few images would give noisy statistics); their weights
and BatchNorm affine parameters learn. Full end-to-end tuning (``encoder.finetune = true``) stays
the path for a GPU.

Shapes: B batch, P' / C' positions / channels of the cut, P / C those of the last map.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..encoders import ImageEncoder, Pool
from ..errors import UserError


class UpperBlocks(nn.Module):
    """Cached lower activations (B, P', C') -> the CNN's last map as a grid (B, P, C)."""

    def __init__(self, blocks: nn.Sequential, in_dim: int, out_dim: int):
        super().__init__()
        self.blocks, self.in_dim, self.out_dim = blocks, in_dim, out_dim

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():  # frozen BatchNorm statistics (see the module docstring)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        B, P, C = feats.shape
        k = math.isqrt(P)
        if k * k != P or C != self.in_dim:
            raise ValueError(f"upper blocks expect a square grid of {self.in_dim} channels, got {tuple(feats.shape)}")
        x = feats.transpose(1, 2).reshape(B, C, k, k)  # (B, C', k, k)
        return self.blocks(x).flatten(2).transpose(1, 2)  # (B, P, C)


def split_mobilenet(encoder: ImageEncoder, tune_from: int) -> tuple[ImageEncoder, UpperBlocks]:
    """A frozen MobileNetV2 grid encoder -> (frozen lower encoder (B, P', C'), trainable upper blocks).

    The lower encoder's identity (its feature-cache key) is the full encoder's + ``:lower{tune_from}``.
    """
    cfg = encoder.cfg
    if cfg.name != "mobilenet_v2" or cfg.pool != "grid" or cfg.finetune:
        raise UserError("model.attention.tune_from needs encoder.name = 'mobilenet_v2', encoder.pool = "
                         f"'grid' and encoder.finetune = false (got {cfg.name!r}, {cfg.pool!r}, {cfg.finetune})")
    features = encoder.net[0]  # nn.Sequential(features, Pool("grid"))
    if not 1 <= tune_from < len(features):
        raise UserError(f"model.attention.tune_from must be in [1, {len(features) - 1}], got {tune_from}")
    lower_blocks = copy.deepcopy(features[:tune_from])
    upper_blocks = copy.deepcopy(features[tune_from:]).requires_grad_(True)
    cut = features[tune_from - 1].out_channels
    lower = ImageEncoder(cfg, nn.Sequential(lower_blocks, Pool("grid")), cut,
                         f"{encoder.identity}:lower{tune_from}", encoder.report)
    return lower, UpperBlocks(upper_blocks, cut, encoder.out_dim)
