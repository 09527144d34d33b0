"""Partial end-to-end CNN tuning on a CPU: a frozen, cached lower CNN and trainable upper blocks.

LRCN (Donahue et al., section 5) gained from fine-tuning the CNN with the captioner. On a CPU the
whole CNN per training step is too slow, so the CNN is cut before stage ``tune_from``: the
activations of ``stages[:tune_from]`` are computed once per image and cached on disk (fp16, as grids
(P', C') like any grid feature), and ``stages[tune_from:]`` trains with the captioner, run on the
cached activations at every step. The stages: MobileNetV2's ``features`` (19: the stem, 17 inverted
residual blocks, the 1x1 head convolution); EfficientNet-Lite's stem, MBConv blocks and head
(``efficientnet_lite.lite_stages``: 23 for Lite2, whose blocks keep their drop-connect rates). The
upper stages keep their ImageNet BatchNorm statistics (eval-mode BatchNorm: training batches of a few
images would give noisy statistics); their weights and BatchNorm affine parameters learn. Full
end-to-end tuning (``encoder.finetune = true``) stays the path for a GPU.

Shapes: B batch, P' / C' positions / channels of the cut, P / C those of the last map.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..efficientnet_lite import LITE, lite_stages
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


def cnn_stages(encoder: ImageEncoder) -> nn.Sequential:
    """The stages of a frozen grid encoder's CNN, in order (the modules themselves, not copies)."""
    cfg = encoder.cfg
    if cfg.name not in ("mobilenet_v2", *LITE) or cfg.pool != "grid" or cfg.finetune:
        raise UserError("model.attention.tune_from needs encoder.name = 'mobilenet_v2' or 'efficientnet_lite0/1/2', "
                        f"encoder.pool = 'grid' and encoder.finetune = false (got {cfg.name!r}, {cfg.pool!r}, "
                        f"{cfg.finetune})")
    cnn = encoder.net[0]  # nn.Sequential(MobileNetV2 features or LiteFeatures, Pool("grid"))
    return cnn if cfg.name == "mobilenet_v2" else lite_stages(cnn.model)


def split_encoder(encoder: ImageEncoder, tune_from: int) -> tuple[ImageEncoder, UpperBlocks]:
    """A frozen grid encoder -> (frozen lower encoder (B, P', C'), trainable upper stages (B, P, C)).

    The lower encoder's identity (its feature-cache key) is the full encoder's + ``:lower{tune_from}``.
    """
    stages = cnn_stages(encoder)
    if not 1 <= tune_from < len(stages):
        raise UserError(f"model.attention.tune_from must be in [1, {len(stages) - 1}] for {encoder.cfg.name}, "
                        f"got {tune_from}")
    lower_stages = copy.deepcopy(stages[:tune_from])
    upper_stages = copy.deepcopy(stages[tune_from:]).requires_grad_(True)
    cut = stages[tune_from - 1].out_channels
    lower = ImageEncoder(encoder.cfg, nn.Sequential(lower_stages, Pool("grid")), cut,
                         f"{encoder.identity}:lower{tune_from}", encoder.report)
    return lower, UpperBlocks(upper_stages, cut, encoder.out_dim)
