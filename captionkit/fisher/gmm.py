"""Baseline sentence encoders on the same word vectors as the RNN-FV (Lev et al. section 4 baselines):
mean vector pooling and GMM Fisher vectors (Klein, Lev, Sadeh & Wolf, CVPR 2015; the "improved"
Fisher vector of Perronnin, Sanchez & Mensink, ECCV 2010).

GMM-FV of a sentence X = {x_t}, t = 1..T, under a diagonal GMM (w_k, mu_k, sigma_k), k = 1..K,
with posteriors gamma_t(k):
  G_mu_k    = 1 / (T sqrt(w_k))   sum_t gamma_t(k) (x_t - mu_k) / sigma_k
  G_sigma_k = 1 / (T sqrt(2 w_k)) sum_t gamma_t(k) [((x_t - mu_k) / sigma_k)^2 - 1]
(the gradients w.r.t. means and standard deviations, already scaled by the analytic FIM diagonal),
followed by the same power / L2 / PCA normalisation as the RNN-FV (``fisher.FisherNormalizer`` with
``fim=False``). Shape legend: N word vectors, K components, D vector size, S sentences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class DiagonalGMM:
    weights: torch.Tensor   # (K,)
    means: torch.Tensor     # (K, D)
    sigmas: torch.Tensor    # (K, D) standard deviations

    def log_resp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, D) -> (log posteriors (N, K), per-point log-likelihood (N,))."""
        var = self.sigmas.pow(2)  # (K, D)
        # -1/2 sum_d (x - mu)^2 / var expanded so that no (N, K, D) tensor is formed
        quad = (x.pow(2) @ (1 / var).T) - 2 * x @ (self.means / var).T + (self.means.pow(2) / var).sum(1)  # (N, K)
        logdet = self.sigmas.log().sum(1)  # (K,)
        D = x.size(1)
        logp = self.weights.log() - logdet - 0.5 * quad - 0.5 * D * math.log(2 * math.pi)  # (N, K)
        ll = torch.logsumexp(logp, dim=1)  # (N,)
        return logp - ll.unsqueeze(1), ll


def kmeans_pp(x: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """k-means++ seeding: points x (N, D) -> k centres (k, D); the first random, each next one drawn
    with probability proportional to its squared distance to the nearest centre so far."""
    g = torch.Generator().manual_seed(seed)
    centres = [x[torch.randint(x.size(0), (1,), generator=g)].squeeze(0)]
    d2 = (x - centres[0]).pow(2).sum(1)
    for _ in range(1, k):
        centres.append(x[torch.multinomial(d2 / d2.sum(), 1, generator=g)].squeeze(0))
        d2 = torch.minimum(d2, (x - centres[-1]).pow(2).sum(1))
    return torch.stack(centres)


def fit_gmm(x: torch.Tensor, k: int, iters: int = 50, seed: int = 0, var_floor: float = 1e-3,
            tol: float = 1e-5, log=print) -> DiagonalGMM:
    """Diagonal GMM by EM on points x (N, D) (float64 inside); k-means++-style seeding from the data."""
    x = x.double()
    N, D = x.shape
    floor = var_floor * x.var(0).mean()
    gmm = DiagonalGMM(torch.full((k,), 1.0 / k, dtype=x.dtype), kmeans_pp(x, k, seed),
                      x.std(0).expand(k, D).clone())
    prev = -math.inf
    for it in range(iters):
        lr, ll = gmm.log_resp(x)  # E step
        r = lr.exp()  # (N, K)
        nk = r.sum(0) + 1e-10  # (K,)
        means = (r.T @ x) / nk.unsqueeze(1)  # (K, D)  M step
        var = (r.T @ x.pow(2)) / nk.unsqueeze(1) - means.pow(2)
        gmm = DiagonalGMM(nk / N, means, var.clamp(min=floor).sqrt())
        cur = ll.mean().item()
        if abs(cur - prev) < tol * abs(cur):
            break
        prev = cur
    log(f"  GMM K={k}: {it + 1} EM iterations, mean log-likelihood {cur:.3f}")
    return DiagonalGMM(gmm.weights.float(), gmm.means.float(), gmm.sigmas.float())


def gmm_fisher_vectors(gmm: DiagonalGMM, seqs: list[torch.Tensor], chunk: int = 1000) -> torch.Tensor:
    """Sentences (T_i, D) -> GMM-FVs (S, 2 K D), [G_mu | G_sigma] per component; empty -> zeros."""
    # chunks of sentences bound the (words, K, D) residual tensor's memory
    return torch.cat([_gmm_fv_chunk(gmm, seqs[i: i + chunk]) for i in range(0, len(seqs), chunk)])


def _gmm_fv_chunk(gmm: DiagonalGMM, seqs: list[torch.Tensor]) -> torch.Tensor:
    K, D = gmm.means.shape
    if all(s.size(0) == 0 for s in seqs):
        return torch.zeros(len(seqs), 2 * K * D)
    lengths = torch.tensor([s.size(0) for s in seqs])
    nonempty = lengths > 0
    x = torch.cat([s for s in seqs if s.size(0) > 0])  # (N, D) all words
    sent = torch.repeat_interleave(torch.arange(len(seqs)), lengths)  # (N,) sentence of each word
    gamma = gmm.log_resp(x)[0].exp()  # (N, K)
    u = (x.unsqueeze(1) - gmm.means) / gmm.sigmas  # (N, K, D) standardised residuals
    S = len(seqs)
    g_mu = torch.zeros(S, K, D).index_add_(0, sent, gamma.unsqueeze(-1) * u)  # (S, K, D)
    g_sig = torch.zeros(S, K, D).index_add_(0, sent, gamma.unsqueeze(-1) * (u.pow(2) - 1))  # (S, K, D)
    T = lengths.clamp(min=1).float().view(S, 1, 1)
    g_mu = g_mu / (T * gmm.weights.sqrt().view(1, K, 1))
    g_sig = g_sig / (T * (2 * gmm.weights).sqrt().view(1, K, 1))
    fv = torch.cat([g_mu.flatten(1), g_sig.flatten(1)], dim=1)  # (S, 2 K D)
    fv[~nonempty] = 0
    return fv


def mean_vectors(seqs: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Sentences (T_i, D) -> mean word vector (S, D); empty sentences -> zeros."""
    return torch.stack([s.mean(0) if s.size(0) else torch.zeros(dim) for s in seqs])
