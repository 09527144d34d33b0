"""RNN Fisher Vectors (Lev, Sadeh, Klein & Wolf, "RNN Fisher Vectors for Action Recognition and
Image Annotation", ECCV 2016, section 3).

A language model over a sequence of word vectors x_1..x_T is trained on the training sentences; a
sentence is then represented by the gradient of its LM loss w.r.t. the parameters of the LM's output
layer (the "RNN Fisher Vector"). Two LMs (section 3.1):
  regression      input x_t -> LSTM(100) -> linear predicting the next word vector v_t,
                  loss L = sum_t 1/2 ||x_{t+1} - v_t||^2
  classification  input x_t -> LSTM(512) -> linear -> softmax over the vocabulary, cross-entropy
The input sequence starts from a zero start vector, so position t (0-based) sees x_0..x_{t-1} and
predicts x_t. ``reverse=True`` reads each sentence backwards (within its own length).

Because the output layer is linear, its gradient has a closed form for a whole padded batch:
  dL/dW = sum_t m_t g_t h_t^T,  dL/db = sum_t m_t g_t,   g_t = dL/dz_t (z_t the layer's output)
with g_t = v_t - x_t (regression) or softmax(z_t) - onehot(y_t) (classification), m_t the padding
mask. We lay W and b out as one augmented matrix [W | b] of shape (O, H + 1), flattened row-major,
so the closed form is a single einsum of g with [h, 1]. The classification gradient is V x (H + 1)
(millions of values): ``sample_coords`` keeps a fixed random subset of its coordinates and computes
only those (section 3.3's sub-sampling).

Normalisation (section 3.2, as for image FVs): optional division by the square root of the Fisher
information matrix's diagonal (estimated as E[g^2] on training sentences), power normalisation
sign(x)|x|^alpha with alpha = 1/2, L2 normalisation, and optional PCA (fit on training data only).

Shape legend: B batch, T time steps, D word-vector size, H LSTM size, O output size (D for regression,
V for classification), F Fisher-vector size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("regression", "classification")


@dataclass
class SentenceLMConfig:
    kind: str = "regression"        # "regression" | "classification" (Lev et al. section 3.1)
    hidden: int = 100               # the paper: 100 for regression, 512 for classification
    reverse: bool = False           # read sentences backwards
    epochs: int = 10
    lr: float = 1e-3                # Adam
    batch_size: int = 128
    grad_clip: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"lm.kind must be one of {KINDS}, got {self.kind!r}")
        if self.hidden <= 0 or self.epochs < 0 or self.batch_size <= 0:
            raise ValueError("lm.hidden and lm.batch_size must be positive, lm.epochs >= 0")


class SentenceLM(nn.Module):
    """LSTM language model over word vectors; ``out`` is the layer whose gradient is the RNN-FV."""

    def __init__(self, cfg: SentenceLMConfig, in_dim: int, vocab_size: int | None = None):
        super().__init__()
        if cfg.kind == "classification" and not vocab_size:
            raise ValueError("a classification LM needs vocab_size")
        self.cfg, self.in_dim = cfg, in_dim
        self.lstm = nn.LSTM(in_dim, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, in_dim if cfg.kind == "regression" else vocab_size)

    @property
    def out_dim(self) -> int:
        return self.out.out_features

    @property
    def fv_dim(self) -> int:
        return self.out.out_features * (self.out.in_features + 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        """x (B, T, D) padded, lengths (B,) -> (hidden states h (B, T, H), outputs z (B, T, O), x as read).

        The returned x is the sequence in reading order (reversed within each length if cfg.reverse):
        the regression target of position t is x[:, t].
        """
        if self.cfg.reverse:
            x = reverse_padded(x, lengths)
        start = x.new_zeros(x.size(0), 1, x.size(2))
        inp = torch.cat([start, x[:, :-1]], dim=1)  # (B, T, D): zero start vector, then x_1..x_{T-1}
        h, _ = self.lstm(inp)  # (B, T, H); causal, so padding never reaches valid positions
        return h, self.out(h), x

    def loss_per_sequence(self, x, lengths, targets=None) -> torch.Tensor:
        """Per-sentence LM loss (B,): sum over valid steps of 1/2||x_t - v_t||^2 or -log p(y_t)."""
        h, z, xr = self(x, lengths)
        mask = length_mask(lengths, x.size(1)).to(z.dtype)  # (B, T)
        if self.cfg.kind == "regression":
            per_step = 0.5 * (z - xr).pow(2).sum(-1)  # (B, T)
        else:
            y = reverse_padded(targets, lengths) if self.cfg.reverse else targets  # (B, T)
            per_step = nn.functional.cross_entropy(z.transpose(1, 2), y.clamp(min=0), reduction="none")
        return (per_step * mask).sum(1)

    def output_grad(self, z, xr, y, mask) -> torch.Tensor:
        """dL/dz (B, T, O), zeroed at padding, for outputs z, reading-order inputs xr, targets y."""
        if self.cfg.kind == "regression":
            g = z - xr  # (B, T, D)
        else:
            g = torch.softmax(z, dim=-1)  # (B, T, V)
            g = g.scatter_add(-1, y.clamp(min=0).unsqueeze(-1), -torch.ones_like(g[..., :1]))
        return g * mask.unsqueeze(-1)


def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """lengths (B,) -> bool mask (B, T), True at valid steps."""
    return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a padded batch (B, T, ...) within its own length; padding stays put."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    L = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    idx = torch.where(t < L, L - 1 - t, t)  # (B, T)
    idx = idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


def pad_sequences(seqs: list[torch.Tensor], targets: list[torch.Tensor] | None = None):
    """Variable-length (T_i, D) tensors -> x (B, T, D), lengths (B,), and targets (B, T) padded with -1."""
    lengths = torch.tensor([s.size(0) for s in seqs], dtype=torch.long)
    T, D = max(int(lengths.max()), 1), seqs[0].size(1)
    x = seqs[0].new_zeros(len(seqs), T, D)
    for i, s in enumerate(seqs):
        x[i, : s.size(0)] = s
    if targets is None:
        return x, lengths, None
    y = torch.full((len(seqs), T), -1, dtype=torch.long)
    for i, t in enumerate(targets):
        y[i, : t.numel()] = t
    return x, lengths, y


def _batches(n: int, size: int, generator: torch.Generator | None = None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, size):
        yield order[i: i + size].tolist()


def train_lm(model: SentenceLM, seqs: list[torch.Tensor], targets: list[torch.Tensor] | None = None,
             log=print) -> list[float]:
    """Fit the LM on training sentences (each (T_i, D), targets (T_i,) for classification) with Adam.

    Returns the mean per-token loss of each epoch. Empty sentences are skipped.
    """
    cfg = model.cfg
    keep = [i for i, s in enumerate(seqs) if s.size(0) > 0]
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history = []
    model.train()
    for epoch in range(cfg.epochs):
        t0, total, tokens = time.time(), 0.0, 0
        for idx in _batches(len(keep), cfg.batch_size, g):
            ids = [keep[i] for i in idx]
            x, lengths, y = pad_sequences([seqs[i] for i in ids], [targets[i] for i in ids] if targets else None)
            loss = model.loss_per_sequence(x, lengths, y).sum()
            opt.zero_grad()
            (loss / lengths.sum()).backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total, tokens = total + loss.item(), tokens + int(lengths.sum())
        history.append(total / max(tokens, 1))
        log(f"  LM epoch {epoch + 1}/{cfg.epochs}: loss/token {history[-1]:.4f} ({time.time() - t0:.1f}s)")
    model.eval()
    return history


def sample_coordinates(model: SentenceLM, k: int, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of k coordinates (sorted flat indices into [W | b]) of the FV."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(model.fv_dim, generator=g)[:k].sort().values


@torch.no_grad()
def fisher_vectors_batch(model: SentenceLM, x, lengths, y=None, coords: torch.Tensor | None = None) -> torch.Tensor:
    """Closed-form RNN-FV of a padded batch: x (B, T, D), lengths (B,) -> (B, F) (F = len(coords) if given)."""
    h, z, xr = model(x, lengths)
    mask = length_mask(lengths, x.size(1)).to(z.dtype)  # (B, T)
    if y is not None and model.cfg.reverse:
        y = reverse_padded(y, lengths)
    g = model.output_grad(z, xr, y, mask)  # (B, T, O)
    h1 = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)  # (B, T, H + 1): the bias as a unit input
    if coords is None:
        return torch.einsum("bto,bth->boh", g, h1).flatten(1)  # (B, O * (H + 1))
    rows, cols = coords // h1.size(-1), coords % h1.size(-1)  # (K,) each
    # gather whole rows of feature-major copies (contiguous blocks) rather than strided last-dim picks
    B, T = h1.shape[:2]
    gT = g.reshape(B * T, -1).T.contiguous()  # (O, B*T)
    hT = h1.reshape(B * T, -1).T.contiguous()  # (H + 1, B*T)
    prod = gT[rows] * hT[cols]  # (K, B*T): g_t[r_k] h1_t[c_k] for every step
    return prod.view(-1, B, T).sum(2).T  # (B, K): only the sampled entries of sum_t g_t h1_t^T


def fisher_vectors(model: SentenceLM, seqs: list[torch.Tensor], targets: list[torch.Tensor] | None = None,
                   coords: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
    """Sentences (T_i, D) -> raw RNN-FVs (N, F). Empty sentences get a zero vector."""
    model.eval()
    F = model.fv_dim if coords is None else coords.numel()
    # bound the (B, O, H + 1) outer products / (B, T, K) gathers to ~2^25 floats (T <= 32 assumed)
    batch_size = max(1, min(batch_size, 2**25 // (F if coords is None else 32 * F)))
    out = torch.zeros(len(seqs), F)
    nonempty = [i for i, s in enumerate(seqs) if s.size(0) > 0]
    order = sorted(nonempty, key=lambda i: seqs[i].size(0))  # similar lengths together: less padding
    for i in range(0, len(order), batch_size):
        ids = order[i: i + batch_size]
        x, lengths, y = pad_sequences([seqs[j] for j in ids], [targets[j] for j in ids] if targets else None)
        out[ids] = fisher_vectors_batch(model, x, lengths, y, coords)
    return out


def fisher_vectors_autograd(model: SentenceLM, seqs, targets=None, coords=None) -> torch.Tensor:
    """Reference: one backward pass per sentence through autograd -> (N, F). For tests and benchmarks."""
    model.eval()
    rows = []
    for i, s in enumerate(seqs):
        x, lengths, y = pad_sequences([s], [targets[i]] if targets else None)
        loss = model.loss_per_sequence(x, lengths, y).sum()
        gW, gb = torch.autograd.grad(loss, [model.out.weight, model.out.bias])
        fv = torch.cat([gW, gb.unsqueeze(1)], dim=1).flatten()  # [W | b] row-major, as the closed form
        rows.append(fv if coords is None else fv[coords])
    return torch.stack(rows)


class FisherNormalizer:
    """FIM-diagonal scaling -> power normalisation -> L2 -> optional PCA; fit on training vectors only."""

    def __init__(self, fim: bool = True, alpha: float = 0.5, l2: bool = True, pca_dim: int | None = None,
                 eps: float = 1e-8):
        self.fim, self.alpha, self.l2, self.pca_dim, self.eps = fim, alpha, l2, pca_dim, eps
        self.scale = self.mean = self.components = None

    def _pre_pca(self, fv: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            fv = fv * self.scale  # (N, F)
        if self.alpha != 1.0:
            fv = fv.sign() * fv.abs().pow(self.alpha)
        if self.l2:
            fv = fv / fv.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return fv

    def fit(self, fv: torch.Tensor) -> "FisherNormalizer":
        """fv (N, F) training Fisher vectors -> self."""
        if self.fim:
            # empirical FIM diagonal E[g^2]; the eps floor keeps never-active coordinates from exploding
            diag = fv.double().pow(2).mean(0)
            self.scale = (diag + self.eps * diag.mean()).rsqrt().float()
        if self.pca_dim:
            self.mean, self.components = pca_fit(self._pre_pca(fv), self.pca_dim)
        return self

    def transform(self, fv: torch.Tensor) -> torch.Tensor:
        """fv (N, F) -> normalised (N, F) or (N, pca_dim)."""
        fv = self._pre_pca(fv)
        if self.components is not None:
            fv = (fv - self.mean) @ self.components  # (N, pca_dim)
        return fv


def pca_fit(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, F) -> (mean (F,), components (F, dim)) of the top principal directions."""
    mean = x.mean(0)
    xc = (x - mean).double()
    if x.size(1) <= 2 * x.size(0):
        evals, evecs = torch.linalg.eigh(xc.T @ xc)  # (F, F) covariance: cheaper when F is moderate
        comps = evecs[:, evals.argsort(descending=True)[:dim]]
    else:
        _, _, vh = torch.linalg.svd(xc, full_matrices=False)
        comps = vh[:dim].T
    return mean, comps.float()


def describe(model: SentenceLM, coords: torch.Tensor | None) -> str:
    """One line naming the LM and the FV size."""
    F = model.fv_dim if coords is None else coords.numel()
    return (f"{model.cfg.kind} LM (LSTM {model.cfg.hidden}, out {model.out_dim}"
            f"{', reversed' if model.cfg.reverse else ''}): FV {F} of {model.fv_dim} "
            f"({100.0 * F / model.fv_dim:.{1 if F < model.fv_dim else 0}f}%); "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M LM parameters")
