"""Baseline encoders of local-descriptor sets, the ones FV-VAE is compared with (Qiu, Yao & Mei,
"Deep Quantization", section 5.1 and Table 1):

  average    global average pooling: mean_t x_t                                 (C)
  concat     the descriptors in grid order, concatenated (fixed-size sets only)  (T C)
  bilinear   bilinear pooling, one descriptor paired with itself (Lin et al., ICCV 2015):
             mean_t x_t x_t^T, flattened                                        (C^2)
  vlad       VLAD (Jegou et al., CVPR 2010): per k-means centre, the sum of the residuals x_t - c_k
             of the descriptors assigned to it                                  (K C)
  gmmfv      the improved Fisher vector of a diagonal GMM (``fisher.gmm``)      (2 K C)
All of them are then power (signed square root) + L2 normalised, as in the paper (``fisher.encode``).
Every encoder has one shape: ``fit(points (M, C))`` on sampled training descriptors (a no-op where
nothing is learned), then ``encode(sets (N, T, C)) -> (N, F)``.

Shape legend: N sets, T descriptors per set, C descriptor size, K centres / components, M points.
"""
from __future__ import annotations

import torch

from .gmm import fit_gmm, gmm_fisher_vectors, kmeans_pp


def average_pool(sets: torch.Tensor) -> torch.Tensor:
    """(N, T, C) -> (N, C)."""
    return sets.float().mean(1)


def concat_pool(sets: torch.Tensor) -> torch.Tensor:
    """(N, T, C) -> (N, T * C), position-major."""
    return sets.float().flatten(1)


def bilinear_pool(sets: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(N, T, C) -> mean_t x_t x_t^T flattened (N, C * C)."""
    T = sets.size(1)
    return torch.cat([torch.einsum("ntc,ntd->ncd", x, x).flatten(1) / T
                      for x in (sets[i: i + chunk].float() for i in range(0, sets.size(0), chunk))])


def kmeans(x: torch.Tensor, k: int, iters: int = 30, seed: int = 0, log=print) -> torch.Tensor:
    """Lloyd's k-means on points x (M, C) from k-means++ seeds -> centres (k, C) (float64 inside).

    An empty cluster is re-seeded at the point farthest from its centre."""
    x = x.double()
    centres = kmeans_pp(x, k, seed)
    x2 = x.pow(2).sum(1, keepdim=True)  # (M, 1)
    for it in range(iters):
        d2 = x2 - 2 * x @ centres.T + centres.pow(2).sum(1)  # (M, k)
        assign = d2.argmin(1)  # (M,)
        counts = torch.bincount(assign, minlength=k)  # (k,)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        new = sums / counts.clamp(min=1).unsqueeze(1).to(x.dtype)
        empty = counts == 0
        if empty.any():
            far = d2.gather(1, assign.unsqueeze(1)).squeeze(1).topk(int(empty.sum())).indices
            new[empty] = x[far]
        moved = (new - centres).abs().max().item()
        centres = new
        if moved == 0:
            break
    log(f"  k-means K={k}: {it + 1} iterations on {x.size(0)} points")
    return centres.float()


def vlad(sets: torch.Tensor, centres: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(N, T, C) with centres (K, C) -> (N, K * C): sum over each centre's descriptors of x_t - c_k."""
    K, C = centres.shape
    out = []
    for i in range(0, sets.size(0), chunk):
        x = sets[i: i + chunk].float()  # (B, T, C)
        d2 = x.pow(2).sum(-1, keepdim=True) - 2 * x @ centres.T + centres.pow(2).sum(1)  # (B, T, K)
        onehot = torch.nn.functional.one_hot(d2.argmin(-1), K).float()  # (B, T, K) hard assignment
        # sum_t a_tk (x_t - c_k) = (A^T X)_k - (sum_t a_tk) c_k
        out.append((onehot.transpose(1, 2) @ x - onehot.sum(1).unsqueeze(-1) * centres).flatten(1))
    return torch.cat(out)


class Pooling:
    """A parameter-free pooling (average, concat, bilinear) in the shared fit / encode shape."""

    def __init__(self, fn):
        self.fn = fn

    def fit(self, points: torch.Tensor, log=print) -> "Pooling":
        return self

    def encode(self, sets: torch.Tensor) -> torch.Tensor:
        return self.fn(sets)


class VLAD:
    def __init__(self, k: int = 64, iters: int = 30, seed: int = 0):
        self.k, self.iters, self.seed = k, iters, seed
        self.centres = None

    def fit(self, points: torch.Tensor, log=print) -> "VLAD":
        self.centres = kmeans(points, self.k, self.iters, self.seed, log=log)  # (K, C)
        return self

    def encode(self, sets: torch.Tensor) -> torch.Tensor:
        return vlad(sets, self.centres)


class GMMFV:
    def __init__(self, k: int = 32, iters: int = 30, seed: int = 0):
        self.k, self.iters, self.seed = k, iters, seed
        self.gmm = None

    def fit(self, points: torch.Tensor, log=print) -> "GMMFV":
        self.gmm = fit_gmm(points, self.k, self.iters, self.seed, log=log)
        return self

    def encode(self, sets: torch.Tensor) -> torch.Tensor:
        # chunks of 100 sets keep the (points, K, C) residual tensor near 100 MB for 49 x 32 x 64
        return gmm_fisher_vectors(self.gmm, list(sets.float()), chunk=100)  # (N, 2 K C)
