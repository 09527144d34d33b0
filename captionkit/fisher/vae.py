"""FV-VAE: Fisher vectors of local descriptors from a variational auto-encoder (Qiu, Yao & Mei,
"Deep Quantization", CVPR 2017, sections 3.2-3.4 and 4; Algorithm 1; Eqs. 8-13).

The VAE (section 3.3, Eq. 10):
  encoder   x (C) -> dropout(0.5) -> Linear C->C -> ReLU -> Linear C->d = mu_z; sigma_z (d,) is one
            learned vector shared by every descriptor; z = mu_z + eps * sigma_z while training
  decoder   mu_x = ReLU(W z + b) (C); sigma_x learned and shared (one scalar, as Algorithm 1's
            sigma_x^2 I, or one per channel)
  loss      lambda1 * L_rec + lambda2 * L_reg + lambda3 * L_cls, per descriptor, with
            L_rec = -log N(x; mu_x, sigma_x^2 I)   (x the CLEAN input: a denoising auto-encoder)
            L_reg = 1/2 sum_k (mu_z,k^2 + sigma_z,k^2 - 1 - log sigma_z,k^2)   (the KL to N(0, I); the
                    paper prints the norms unsquared, which is not the KL of its Eq. 6)
            L_cls = softmax cross-entropy of a linear layer on z against the set's label (a class id,
                    or a multi-hot row used as a normalised target distribution); lambda3 = 0 is FV-VAE-
The Fisher vector (section 3.4, Eqs. 11-13) is the gradient of sum_t L_rec(x_t) w.r.t. the DECODER's
weight and bias (the text says encoder, the equations and the release use the decoder), with
z_t = mu_z (no sampling). In closed form, for a whole batch of sets at once:
  delta_t = (mu_x,t - x_t) / sigma_x^2 * [mu_x,t > 0]       (C,)
  G(X)    = flatten(sum_t delta_t [z_t; 1]^T)                (C * (d + 1),  [W | b] row-major)
(Eq. 13's leading minus sign is dropped: every later step is odd-symmetric or sign-free.) Then
Fisher-information normalisation: F = mean over training sets of G G^T (the paper, Eq. 12) -> F^(-1/2) G,
or the released diagonal F = mean of G^2; then signed square root and L2 (``FVNormalizer``).
``decoder = "linear"`` (mask 1) is for PCA-reduced, signed descriptors that a ReLU cannot reconstruct.

Training (``train_vae``) is its own small loop, like ``rnn.train_lm``, not ``train.fit``: the VAE is
fit inside an encoder's ``fit(training sets)`` on an in-memory descriptor tensor, with no DataLoader,
validation metric, checkpoint or resume for the Task protocol to drive; the encoder it belongs to is
refit by each experiment (seconds to minutes). It is seeded (``seed``) and shows tqdm progress.

Shape legend: N sets, T descriptors per set, C descriptor size, d latent size, F = C (d + 1), K classes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from .video import power_l2

DECODERS = ("relu", "linear")
OPTIMIZERS = {"adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam}
FIMS = ("full", "diag", "none")


@dataclass
class VAEConfig:
    latent: int = 63            # d; FV size C * (d + 1) (the paper: 255 -> 256 C)
    decoder: str = "relu"       # "relu" (Eq. 10) | "linear" (PCA-reduced signed descriptors)
    sigma_x: str = "scalar"     # "scalar": N(x; mu_x, sigma_x^2 I) as Algorithm 1 writes it | "channel":
                                # one sigma per channel (on PCA-decorrelated descriptors this makes z useless)
    dropout: float = 0.5        # input dropout; the clean input is reconstructed (section 5.2)
    lambda_rec: float = 1.0     # lambda1 (the paper fixes lambda1 = lambda2 = 1)
    lambda_reg: float = 1.0     # lambda2
    lambda_cls: float = 0.0     # lambda3; 0 = FV-VAE- (unsupervised)
    steps: int = 2000           # minibatches (the paper: 5,000 of 128 images / frames)
    batch_sets: int = 128       # sets per minibatch; all their (sampled) descriptors are used
    optimizer: str = "adadelta"  # "adadelta" (the paper, base learning rate 1) | "adam"
    lr: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"vae.decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.sigma_x not in ("scalar", "channel"):
            raise ValueError(f"vae.sigma_x must be scalar or channel, got {self.sigma_x!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"vae.optimizer must be one of {tuple(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.latent < 1 or self.steps < 0 or self.batch_sets < 1 or not 0 <= self.dropout < 1:
            raise ValueError("vae.latent and vae.batch_sets must be positive, vae.steps >= 0, 0 <= vae.dropout < 1")


class FVVAE(nn.Module):
    """The VAE of Algorithm 1; ``decoder`` is the layer whose gradient is the Fisher vector."""

    def __init__(self, cfg: VAEConfig, in_dim: int, num_classes: int = 0):
        super().__init__()
        self.cfg, self.in_dim = cfg, in_dim
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(), nn.Linear(in_dim, cfg.latent))
        self.decoder = nn.Linear(cfg.latent, in_dim)
        self.log_sigma_z = nn.Parameter(torch.zeros(cfg.latent))  # shared across descriptors
        self.log_sigma_x = nn.Parameter(torch.zeros(in_dim if cfg.sigma_x == "channel" else 1))
        self.classifier = nn.Linear(cfg.latent, num_classes) if num_classes else None

    @property
    def fv_dim(self) -> int:
        return self.in_dim * (self.cfg.latent + 1)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., d) -> (mu_x (..., C), the mask of active outputs (..., C))."""
        pre = self.decoder(z)
        if self.cfg.decoder == "relu":
            return pre.clamp(min=0), (pre > 0).to(pre.dtype)
        return pre, torch.ones_like(pre)

    def rec_loss(self, x: torch.Tensor, mu_x: torch.Tensor) -> torch.Tensor:
        """-log N(x; mu_x, sigma_x^2 I) per descriptor: x, mu_x (..., C) -> (...)."""
        var = (2 * self.log_sigma_x).exp()
        return 0.5 * ((x - mu_x).pow(2) / var + 2 * self.log_sigma_x + math.log(2 * math.pi)).sum(-1)

    def reg_loss(self, mu_z: torch.Tensor) -> torch.Tensor:
        """KL(N(mu_z, sigma_z^2) || N(0, I)) per descriptor: mu_z (..., d) -> (...)."""
        var = (2 * self.log_sigma_z).exp()
        return 0.5 * (mu_z.pow(2) + var - 1 - 2 * self.log_sigma_z).sum(-1)

    def loss(self, x: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training loss of descriptors x (M, C) with the targets of their sets (M,) or (M, K)."""
        mu_z = self.encoder(self.drop(x))  # (M, d); dropout on the input only
        z = mu_z + torch.randn_like(mu_z) * self.log_sigma_z.exp()  # one-step Monte Carlo
        mu_x, _ = self.decode(z)  # (M, C)
        parts = {"rec": self.rec_loss(x, mu_x).mean(), "reg": self.reg_loss(mu_z).mean()}
        c = self.cfg
        total = c.lambda_rec * parts["rec"] + c.lambda_reg * parts["reg"]
        if self.classifier is not None and target is not None and c.lambda_cls > 0:
            logits = self.classifier(z)  # (M, K)
            if target.dim() == 2:  # multi-hot -> a target distribution
                target = target.float() / target.float().sum(1, keepdim=True).clamp(min=1)
            parts["cls"] = nn.functional.cross_entropy(logits, target)
            total = total + c.lambda_cls * parts["cls"]
        parts["total"] = total
        return parts


def train_vae(model: FVVAE, sets: torch.Tensor, labels: torch.Tensor | None = None, progress: bool = True,
              log=print) -> list[float]:
    """Fit on training descriptor sets (N, T, C), labels (N,) class ids or (N, K) multi-hot.

    Each step takes ``batch_sets`` random sets and all of their descriptors (the paper: 128 images or
    frames a batch). Returns the total loss logged every 10% of the steps."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout and the Monte Carlo noise
    N, T, C = sets.shape
    init_from_data(model, sets)
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr)
    model.train()
    history, t0, every = [], time.time(), max(1, cfg.steps // 10)
    for step in tqdm(range(cfg.steps), desc="FV-VAE", disable=not progress, leave=False):
        pick = torch.randint(N, (min(cfg.batch_sets, N),), generator=g)  # (B,)
        target = labels[pick].repeat_interleave(T, dim=0) if labels is not None else None  # (B*T, ...)
        parts = model.loss(sets[pick].float().reshape(-1, C), target)
        opt.zero_grad()
        parts["total"].backward()
        opt.step()
        if (step + 1) % every == 0 or step + 1 == cfg.steps:
            history.append(parts["total"].item())
            log(f"  FV-VAE step {step + 1}/{cfg.steps}: " + ", ".join(
                f"{k} {v.item():.3f}" for k, v in parts.items()) + f" ({time.time() - t0:.0f}s)")
    model.eval()
    return history


@torch.no_grad()
def init_from_data(model: FVVAE, sets: torch.Tensor, max_points: int = 100000) -> None:
    """Start sigma_x at the descriptors' standard deviation (per channel, or the root mean variance)
    and the decoder bias at their mean. L2-normalised (and PCA-reduced) descriptors have channel
    variances far below 1; from sigma_x = 1 the reconstruction term is too weak against the KL term
    at first and the encoder collapses to the prior (KL = 0, z ignored)."""
    x = sets.reshape(-1, sets.size(-1))[:max_points].float()  # (M, C)
    var = x.var(0) if model.log_sigma_x.numel() > 1 else x.var(0).mean(0, keepdim=True)
    model.log_sigma_x.copy_(0.5 * var.clamp(min=1e-12).log())
    model.decoder.bias.copy_(x.mean(0))


@torch.no_grad()
def fisher_vectors(model: FVVAE, sets: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Closed-form FV-VAE gradients (Eq. 11 summed over each set): sets (N, T, C) -> (N, C * (d + 1))."""
    model.eval()
    var = (2 * model.log_sigma_x).exp()  # (C,)
    out = []
    for i in range(0, sets.size(0), batch_size):
        x = sets[i: i + batch_size].float()  # (B, T, C)
        z = model.encoder(x)  # (B, T, d): z_t = mu_z, no sampling, no dropout
        mu_x, active = model.decode(z)  # (B, T, C) each
        delta = (mu_x - x) / var * active  # (B, T, C)
        z1 = torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)  # (B, T, d + 1): the bias as a unit input
        out.append(torch.einsum("btc,btd->bcd", delta, z1).flatten(1))  # (B, C * (d + 1))
    return torch.cat(out)


def fisher_vectors_autograd(model: FVVAE, sets: torch.Tensor) -> torch.Tensor:
    """Reference: autograd of sum_t L_rec(x_t) w.r.t. [W | b] of the decoder, one set at a time."""
    model.eval()
    rows = []
    for x in sets.float():  # (T, C)
        mu_x, _ = model.decode(model.encoder(x).detach())
        gW, gb = torch.autograd.grad(model.rec_loss(x, mu_x).sum(), [model.decoder.weight, model.decoder.bias])
        rows.append(torch.cat([gW, gb.unsqueeze(1)], dim=1).flatten())  # (C, d + 1) row-major
    return torch.stack(rows)


class FVNormalizer:
    """Fisher-information normalisation (full: mean G G^T, Eq. 12; diag: mean G^2) -> signed sqrt -> L2."""

    def __init__(self, fim: str = "diag", alpha: float = 0.5, eps: float = 1e-6):
        if fim not in FIMS:
            raise ValueError(f"fim must be one of {FIMS}, got {fim!r}")
        self.fim, self.alpha, self.eps = fim, alpha, eps
        self.whiten = None  # (F, F) F^(-1/2) or (F,) diag^(-1/2)

    def fit(self, fv: torch.Tensor) -> "FVNormalizer":
        """fv (N, F) training Fisher vectors -> self."""
        g = fv.double()
        if self.fim == "diag":
            diag = g.pow(2).mean(0)  # (F,)
            self.whiten = (diag + self.eps * diag.mean()).rsqrt().float()
        elif self.fim == "full":
            evals, evecs = torch.linalg.eigh(g.T @ g / g.size(0))  # (F,), (F, F)
            evals = evals.clamp(min=0) + self.eps * evals.clamp(min=0).mean()  # ridge: F is rank <= N
            self.whiten = ((evecs * evals.rsqrt()) @ evecs.T).float()
        return self

    def transform(self, fv: torch.Tensor) -> torch.Tensor:
        """fv (N, F) -> normalised (N, F)."""
        if self.whiten is not None:
            fv = fv * self.whiten if self.whiten.dim() == 1 else fv @ self.whiten
        return power_l2(fv, self.alpha)
