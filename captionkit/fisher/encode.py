"""Descriptor sets -> one normalised vector per set, with FV-VAE or a baseline (Qiu, Yao & Mei, "Deep
Quantization", sections 4-5): the shared pipeline behind the image side of Flickr8k retrieval and
the video side of activity recognition.

  sets (N, T, C) -> descriptor normalisation (``descriptors.normalise``) -> PCA of descriptors
  (fit on training descriptors only) -> encoder (``pooling``: average / concat / bilinear / vlad /
  gmmfv, or ``vae``: fvvae) -> [FV-VAE: Fisher-information normalisation] -> signed sqrt + L2

Sizes for a descriptor size C (after PCA), K centres / components, d latent:
  average C, concat T C, bilinear C^2, vlad K C, gmmfv 2 K C, fvvae C (d + 1).
Everything that is fit (PCA, k-means, GMM, VAE, Fisher information) sees the training sets only;
PCA, k-means and EM see ``fit_points`` descriptors sampled from them.

Shape legend: N sets, T descriptors per set, C channels, P PCA size, F output size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from . import pooling
from .descriptors import NORMS, DescriptorPCA, normalise, sample_descriptors
from .vae import FIMS, FVNormalizer, FVVAE, VAEConfig, fisher_vectors, train_vae
from .video import power_l2

KINDS = ("average", "concat", "bilinear", "vlad", "gmmfv", "fvvae")


@dataclass
class SetEncoderConfig:
    kind: str = "fvvae"         # one of KINDS
    norm: str = "l2"            # descriptor normalisation: "l2" (the paper) | "map" (the release) | "none"
    pca_dim: int = 64           # PCA of descriptors (0 = keep all C channels)
    fit_points: int = 100000    # descriptors sampled from the training sets for PCA / k-means / EM
    k: int = 64                 # VLAD centres / GMM components
    iters: int = 30             # k-means / EM iterations
    fim: str = "diag"           # FV-VAE Fisher information: "full" (mean G G^T, Eq. 12) | "diag" | "none"
    alpha: float = 0.5          # power normalisation exponent (signed square root)
    seed: int = 0
    vae: VAEConfig = field(default_factory=VAEConfig)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.fim not in FIMS:
            raise ValueError(f"fim must be one of {FIMS}, got {self.fim!r}")
        if self.pca_dim < 0 or self.k < 1 or self.fit_points < 0:
            raise ValueError("pca_dim and fit_points must be >= 0 and k >= 1")


def output_dim(cfg: SetEncoderConfig, T: int, C: int) -> int:
    """The encoded size for sets of T descriptors of C channels (before PCA)."""
    c = min(cfg.pca_dim, C) if cfg.pca_dim else C
    return {"average": c, "concat": T * c, "bilinear": c * c, "vlad": cfg.k * c, "gmmfv": 2 * cfg.k * c,
            "fvvae": c * (cfg.vae.latent + 1)}[cfg.kind]


class SetEncoder:
    """fit(training sets, optional labels) then encode(sets) -> (N, F), normalised."""

    def __init__(self, cfg: SetEncoderConfig):
        self.cfg = cfg
        self.pca = DescriptorPCA(cfg.pca_dim)
        self.inner = self.vae = self.fv_norm = None

    def prepare(self, sets: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """(N, T, C) (any float dtype, e.g. an fp16 cache) -> normalised, PCA-projected (N, T, P) float32."""
        return torch.cat([self.pca.transform(normalise(sets[i: i + chunk], self.cfg.norm))
                          for i in range(0, sets.size(0), chunk)])

    def fit(self, sets: torch.Tensor, labels: torch.Tensor | None = None, progress: bool = True,
            log=print) -> "SetEncoder":
        """sets (N, T, C) training sets; labels (N,) or (N, K) (FV-VAE with lambda_cls > 0 only)."""
        cfg, t0 = self.cfg, time.time()
        points = sample_descriptors(sets, cfg.fit_points, cfg.norm, cfg.seed)  # (M, C) normalised
        self.pca.fit(points)
        if cfg.kind == "fvvae":
            x = self.prepare(sets)  # (N, T, P): the VAE takes whole sets per minibatch
            num_classes = 0 if labels is None or cfg.vae.lambda_cls == 0 else (
                labels.size(1) if labels.dim() == 2 else int(labels.max()) + 1)
            self.vae = FVVAE(cfg.vae, x.size(2), num_classes)
            train_vae(self.vae, x, labels if num_classes else None, progress=progress, log=log)
            self.fv_norm = FVNormalizer(cfg.fim, cfg.alpha).fit(fisher_vectors(self.vae, x))
        else:
            self.inner = {"average": lambda: pooling.Pooling(pooling.average_pool),
                          "concat": lambda: pooling.Pooling(pooling.concat_pool),
                          "bilinear": lambda: pooling.Pooling(pooling.bilinear_pool),
                          "vlad": lambda: pooling.VLAD(cfg.k, cfg.iters, cfg.seed),
                          "gmmfv": lambda: pooling.GMMFV(cfg.k, cfg.iters, cfg.seed)}[cfg.kind]()
            self.inner.fit(self.pca.transform(points.unsqueeze(1)).squeeze(1), log=log)
        log(f"  set encoder {describe(cfg)}: fit in {time.time() - t0:.1f}s")
        return self

    def encode(self, sets: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """sets (N, T, C) -> normalised vectors (N, F)."""
        out = []
        for i in range(0, sets.size(0), chunk):
            x = self.prepare(sets[i: i + chunk])  # (B, T, P)
            if self.vae is not None:
                out.append(self.fv_norm.transform(fisher_vectors(self.vae, x)))
            else:
                out.append(power_l2(self.inner.encode(x), self.cfg.alpha))
        return torch.cat(out)


def describe(cfg: SetEncoderConfig) -> str:
    """One line naming the encoder and its settings."""
    pca = f"PCA {cfg.pca_dim}" if cfg.pca_dim else "no PCA"
    extra = {"vlad": f"K={cfg.k}", "gmmfv": f"K={cfg.k}",
             "fvvae": f"d={cfg.vae.latent}, {cfg.vae.decoder} decoder, lambda3={cfg.vae.lambda_cls}, "
                      f"FIM {cfg.fim}"}.get(cfg.kind, "")
    return f"{cfg.kind} ({cfg.norm}-normalised descriptors, {pca}{', ' + extra if extra else ''})"
