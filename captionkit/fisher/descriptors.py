"""Local descriptors from a CNN's last convolutional map (Qiu, Yao & Mei, "Deep Quantization", CVPR
2017, section 4 and 5.2), their normalisation, and PCA of descriptors.

  image        the K x K positions of the last map: (K*K, C) descriptors (the paper: 28 x 28 of
               VGG-19 conv5_4 at 448 px; here MobileNetV2's 7 x 7 x 1280 at 224 px, ``encoder.pool =
               "grid"``, cached by ``captionkit.features``)
  video frame  spatial-pyramid max pooling of the map into 6x6 + 3x3 + 2x2 + 1x1 = 50 descriptors
               (section 4, following Xu et al. CVPR 2015), averaged over the frames of a video
Normalisation (section 5.2): "l2" divides each descriptor by its L2 norm (the paper's text);
"map" divides the whole map of one image / frame by its Frobenius norm and rescales it by
sqrt(number of descriptors), so that descriptors have unit mean squared norm (the released
extraction code's variant); "none" keeps the raw activations. PCA of descriptors is fit on
training descriptors only.

Shape legend: N sets (images or videos), T descriptors per set, C channels, P PCA size, F frames.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SPP_LEVELS = (6, 3, 2, 1)
NORMS = ("l2", "map", "none")


def grid_to_maps(grid: torch.Tensor) -> torch.Tensor:
    """Grid features (B, K*K, C) (``encoder.pool = "grid"``, row-major) -> maps (B, C, K, K)."""
    B, T, C = grid.shape
    K = math.isqrt(T)
    if K * K != T:
        raise ValueError(f"a grid of {T} positions is not square")
    return grid.transpose(1, 2).reshape(B, C, K, K)


def spp_descriptors(maps: torch.Tensor, levels: tuple[int, ...] = SPP_LEVELS) -> torch.Tensor:
    """Spatial-pyramid max pooling: maps (B, C, h, w) -> (B, sum(l^2), C), coarse levels last,
    row-major cells inside a level (50 descriptors for the paper's 6, 3, 2, 1)."""
    cells = [nn.functional.adaptive_max_pool2d(maps, lv).flatten(2) for lv in levels]  # [(B, C, l*l)]
    return torch.cat(cells, dim=2).transpose(1, 2)  # (B, 50, C)


def video_descriptors(frame_maps: torch.Tensor, levels: tuple[int, ...] = SPP_LEVELS) -> torch.Tensor:
    """The maps of one video's frames (F, C, h, w) -> SPP descriptors averaged over frames (50, C)."""
    return spp_descriptors(frame_maps, levels).mean(0)


def normalise(x: torch.Tensor, how: str = "l2") -> torch.Tensor:
    """Descriptor sets (N, T, C) -> normalised (N, T, C) in float32 (see the module doc)."""
    if how not in NORMS:
        raise ValueError(f"descriptor normalisation must be one of {NORMS}, got {how!r}")
    x = x.float()
    if how == "l2":
        return x / x.norm(dim=2, keepdim=True).clamp(min=1e-12)
    if how == "map":
        frob = x.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)  # (N, 1, 1)
        return x / frob * math.sqrt(x.size(1))
    return x


class DescriptorPCA:
    """PCA of descriptors: fit on (sampled) training descriptors, project any set (N, T, C) -> (N, T, P).

    ``dim = 0`` keeps the descriptors as they are (only the normalisation applies)."""

    def __init__(self, dim: int = 0):
        self.dim = dim
        self.mean = self.components = None

    def fit(self, points: torch.Tensor) -> "DescriptorPCA":
        """points (M, C) training descriptors -> self."""
        if self.dim and self.dim < points.size(1):
            if self.dim > points.size(0):
                raise ValueError(f"PCA to {self.dim} dimensions needs at least as many descriptors, "
                                 f"got {points.size(0)}")
            x = points.double()
            self.mean = x.mean(0)  # (C,)
            evals, evecs = torch.linalg.eigh((x - self.mean).T @ (x - self.mean))  # (C,), (C, C)
            self.components = evecs[:, evals.argsort(descending=True)[: self.dim]]  # (C, P)
        return self

    def transform(self, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """(N, T, C) -> (N, T, P) float32, in chunks of sets (fp16 caches are cast chunk by chunk)."""
        if self.components is None:
            return x.float()
        mean, comps = self.mean.float(), self.components.float()
        return torch.cat([(x[i: i + chunk].float() - mean) @ comps for i in range(0, x.size(0), chunk)])


def sample_descriptors(sets: torch.Tensor, k: int, how: str = "l2", seed: int = 0,
                       chunk: int = 512) -> torch.Tensor:
    """Up to k descriptors drawn without replacement from sets (N, T, C), normalised with their own
    set (so "map" sees the whole map) -> (k, C) float32; all of them when k = 0 or k >= N*T."""
    N, T, C = sets.shape
    idx = torch.arange(N * T)
    if 0 < k < N * T:
        idx = torch.randperm(N * T, generator=torch.Generator().manual_seed(seed))[:k].sort().values
    parts = []
    for i in range(0, N, chunk):
        lo, hi = torch.searchsorted(idx, torch.tensor([i * T, (i + chunk) * T])).tolist()
        if hi > lo:
            parts.append(normalise(sets[i: i + chunk], how).reshape(-1, C)[idx[lo:hi] - i * T])
    return torch.cat(parts)


@torch.no_grad()
def encoder_maps(encoder, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Preprocessed images (B, 3, S, S) through a grid encoder (``pool = "grid"``) -> maps (B, C, K, K),
    ``batch_size`` images at a time (the frozen CNN is in eval mode: the result does not depend on it)."""
    encoder.eval()
    parts = [grid_to_maps(encoder(images[i: i + batch_size])) for i in range(0, images.size(0), batch_size)]
    return torch.cat(parts)


def frames_to_input(encoder, frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (F, H, W, 3) -> the encoder's normalised input (F, 3, S, S) (bilinear resize)."""
    S = encoder.cfg.image_size
    x = frames.permute(0, 3, 1, 2).float().div(255)  # (F, 3, H, W)
    x = nn.functional.interpolate(x, size=(S, S), mode="bilinear", align_corners=False)
    return (x - encoder.mean) / encoder.std


def videos_descriptors(encoder, videos: list[torch.Tensor], frames: int = 0,
                       batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """Whole videos [uint8 (F_i, H, W, 3)] -> SPP descriptors averaged over frames (N, 50, C).

    ``frames`` > 0 samples that many frames uniformly from each video (the paper: 25)."""
    from tqdm import tqdm

    out = []
    for v in tqdm(videos, desc="video descriptors", disable=not progress, leave=False):
        if frames and v.size(0) > frames:
            v = v[torch.linspace(0, v.size(0) - 1, frames).round().long()]
        out.append(video_descriptors(encoder_maps(encoder, frames_to_input(encoder, v), batch_size)))
    return torch.stack(out)  # (N, 50, C)
