"""Image-sentence retrieval: regularised CCA + cosine similarity (Klein et al. CVPR 2015, Lev et al.
ECCV 2016 section 4.2), ranking metrics, and LRCN likelihood retrieval (Donahue et al., LRCN section
5, Tables 4-5: rank by log p(caption | image)).

Ranking conventions (the ones used by Karpathy & Fei-Fei and Klein et al.):
  image annotation  query an image, rank all sentences; the rank of its FIRST correct sentence
  image search      query a sentence, rank all images; the rank of its image
  sentence similarity query a sentence, rank all other sentences; rank of the first of the other 4
                    sentences of its image (in the CCA sentence space)
R@K is the percentage of queries with rank <= K; ranks are 1-based. Ties count against the query (a
wrong item scoring equal to the best correct one is ranked above it), so a constant scorer is not
rewarded. Shape legend: N images, M sentences, Dx image-feature size, Dy sentence-vector size,
k CCA dimensions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass
class CCA:
    mean_x: Tensor      # (Dx,)
    mean_y: Tensor      # (Dy,)
    wx: Tensor          # (Dx, k)
    wy: Tensor          # (Dy, k)
    corr: Tensor        # (k,) canonical correlations, descending
    reg: float
    power: float = 4.0  # each dimension is scaled by corr^power (Gong et al. 2014; Klein et al. 2015)

    def project_x(self, x: Tensor) -> Tensor:
        """x (N, Dx) -> (N, k) in the shared space."""
        return ((x.double() - self.mean_x) @ self.wx * self.corr.pow(self.power)).float()

    def project_y(self, y: Tensor) -> Tensor:
        """y (M, Dy) -> (M, k) in the shared space."""
        return ((y.double() - self.mean_y) @ self.wy * self.corr.pow(self.power)).float()


def _covariances(x: Tensor, y: Tensor, chunk: int = 4096):
    """Means and (cross-)covariances in float64, accumulated over row chunks to bound memory."""
    P = x.size(0)
    mx, my = x.double().mean(0), y.double().mean(0)
    cxx = torch.zeros(x.size(1), x.size(1), dtype=torch.float64)
    cyy = torch.zeros(y.size(1), y.size(1), dtype=torch.float64)
    cxy = torch.zeros(x.size(1), y.size(1), dtype=torch.float64)
    for i in range(0, P, chunk):
        xc, yc = x[i: i + chunk].double() - mx, y[i: i + chunk].double() - my  # (c, Dx), (c, Dy)
        cxx += xc.T @ xc
        cyy += yc.T @ yc
        cxy += xc.T @ yc
    return mx, my, cxx / P, cyy / P, cxy / P


def fit_cca_path(x: Tensor, y: Tensor, regs: list[float], dim: int | None = None) -> list[CCA]:
    """Paired rows x (P, Dx), y (P, Dy) -> one regularised CCA per reg, sharing one eigendecomposition.

    reg is relative: C_xx + reg * mean(diag C_xx) * I (so it does not depend on the features' scale).
    """
    mx, my, cxx, cyy, cxy = _covariances(x, y)
    ex, vx = torch.linalg.eigh(cxx)
    ey, vy = torch.linalg.eigh(cyy)
    sx, sy = ex.clamp(min=0).mean(), ey.clamp(min=0).mean()
    k = min(x.size(1), y.size(1), dim or 10**9)
    # C^{-1/2} = V diag((lambda + r)^{-1/2}) V^T. We never form C_yy^{-1/2} (Dy x Dy, expensive for
    # 5k-20k-d Fisher vectors): svd(C_xx^{-1/2} C_xy V_y diag(d_y)) = U S W^T gives the same U, S as
    # svd(C_xx^{-1/2} C_xy C_yy^{-1/2}) and right vectors V_y W, so w_y = V_y diag(d_y) W.
    cxy_vy = cxy @ vy  # (Dx, Dy), once for all regs
    out = []
    for reg in regs:
        dx = (ex.clamp(min=0) + reg * sx).rsqrt()  # (Dx,)
        dy = (ey.clamp(min=0) + reg * sy).rsqrt()  # (Dy,)
        ix = (vx * dx) @ vx.T  # (Dx, Dx)
        u, s, wh = torch.linalg.svd(ix @ cxy_vy * dy, full_matrices=False)  # (Dx, r), (r,), (r, Dy)
        out.append(CCA(mx, my, ix @ u[:, :k], vy @ (dy.unsqueeze(1) * wh[:k].T), s[:k], reg))
    return out


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """a (N, k), b (M, k) -> (N, M) cosine similarities."""
    a = a / a.norm(dim=1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return a @ b.T


def first_correct_rank(scores: Tensor, correct: Tensor) -> Tensor:
    """scores (Q, C), correct (Q, C) bool -> 1-based rank (Q,) of each query's best-scored correct item.

    Ties with wrong items count against the query.
    """
    best = scores.masked_fill(~correct, float("-inf")).max(1, keepdim=True).values  # (Q, 1)
    wrong_above = ((scores >= best) & ~correct).sum(1)
    return wrong_above + 1


def rank_summary(ranks: Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """ranks (Q,) -> {R@K (%), medr, meanr}."""
    r = ranks.double()
    out = {f"R@{k}": 100.0 * (r <= k).double().mean().item() for k in ks}
    out["medr"] = r.median().item() if r.numel() % 2 else r.quantile(0.5).item()
    out["meanr"] = r.mean().item()
    return out


def retrieval_metrics(sim: Tensor, sent2img: Tensor) -> dict[str, dict[str, float]]:
    """sim (N, M) image-sentence scores, sent2img (M,) image index of each sentence -> annotation + search."""
    N, M = sim.shape
    correct = sent2img.unsqueeze(0) == torch.arange(N).unsqueeze(1)  # (N, M)
    return {"annotation": rank_summary(first_correct_rank(sim, correct)),
            "search": rank_summary(first_correct_rank(sim.T, correct.T))}


def sentence_similarity(sent: Tensor, sent2img: Tensor) -> dict[str, float]:
    """sent (M, k) sentence vectors -> ranks of the other sentences of the same image (first correct)."""
    sim = cosine_similarity(sent, sent)  # (M, M)
    M = sim.size(0)
    self_mask = torch.eye(M, dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))  # a sentence never retrieves itself
    correct = (sent2img.unsqueeze(0) == sent2img.unsqueeze(1)) & ~self_mask  # (M, M)
    return rank_summary(first_correct_rank(sim, correct))


def combine_similarities(sims: list[Tensor], weights: list[float] | None = None) -> Tensor:
    """Average several models' (N, M) similarity matrices (optionally weighted)."""
    w = weights or [1.0] * len(sims)
    return sum(wi * s for wi, s in zip(w, sims)) / sum(w)


def rsum(metrics: dict[str, dict[str, float]]) -> float:
    """R@1 + R@5 + R@10 of both directions: the model-selection criterion."""
    return sum(metrics[d][f"R@{k}"] for d in ("annotation", "search") for k in (1, 5, 10))


def select_cca(img_fit: Tensor, sent_fit: Tensor, fit_s2i: Tensor, img_val: Tensor, sent_val: Tensor,
               val_s2i: Tensor, regs: list[float], powers: list[float], dim: int | None = None, log=print):
    """Fit CCA on (image, sentence) pairs of the fit split for each reg, pick (reg, power) by rsum on val.

    img_* (N, Dx) one row per image, sent_* (M, Dy), *_s2i (M,) -> (best CCA, table of val scores).
    """
    path = fit_cca_path(img_fit[fit_s2i], sent_fit, regs, dim)
    table, best = [], None
    for cca in path:
        for p in powers:
            cca.power = p
            m = retrieval_metrics(cosine_similarity(cca.project_x(img_val), cca.project_y(sent_val)), val_s2i)
            table.append({"reg": cca.reg, "power": p, "rsum": rsum(m),
                          "annotation_R@1": m["annotation"]["R@1"], "search_R@1": m["search"]["R@1"]})
            if best is None or table[-1]["rsum"] > best[0]:
                best = (table[-1]["rsum"], cca.reg, p)
    log(f"  CCA selected on val: reg={best[1]:g} power={best[2]:g} (rsum {best[0]:.1f})")
    return best[1], best[2], table


# ---- LRCN likelihood retrieval ----------------------------------------------------------------

def encode_captions(vocab, captions: list[str]) -> tuple[Tensor, Tensor]:
    """Captions -> word ids (M, L) padded with vocab.pad (no BOS/EOS: the scorer adds them), lengths (M,)."""
    ids = [list(vocab.encode(c)) for c in captions]
    lengths = torch.tensor([len(s) for s in ids])
    seqs = torch.full((len(ids), max(int(lengths.max()), 1)), vocab.pad, dtype=torch.long)
    for i, s in enumerate(ids):
        seqs[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return seqs, lengths


@torch.no_grad()
def likelihood_matrix(captioner, visual: Tensor, captions: list[str], pairs_per_batch: int = 4096,
                      log=print) -> Tensor:
    """log p(caption_j | image_i) for every pair: visual (N, D), M captions -> (N, M).

    Each batch holds a block of images x all captions (or a block of captions), the decoding state
    repeated per pair, so 1000 x 5000 pairs cost 5M sequence scores: subset the images for speed.
    """
    from .decoding import score_sequences
    vocab = captioner.vocab
    seqs, lengths = encode_captions(vocab, captions)  # (M, L), (M,)
    N, M = visual.size(0), seqs.size(0)
    out = torch.empty(N, M)
    cap_block = min(M, pairs_per_batch)
    img_block = max(1, pairs_per_batch // cap_block)
    for i0 in range(0, N, img_block):
        vis = visual[i0: i0 + img_block]  # (n, D)
        for j0 in range(0, M, cap_block):
            s, l = seqs[j0: j0 + cap_block], lengths[j0: j0 + cap_block]  # (m, L), (m,)
            n, m = vis.size(0), s.size(0)
            state = captioner.init_state(vis.repeat_interleave(m, 0))  # (n * m, ...): image-major pairs
            pair_seqs, pair_len = s.repeat(n, 1), l.repeat(n)  # (n * m, L), (n * m,)
            logp = score_sequences(captioner.step, state, pair_seqs, pair_len, bos=vocab.bos, eos=vocab.eos)  # (n * m,)
            out[i0: i0 + n, j0: j0 + m] = logp.view(n, m).float().cpu()
        log(f"  likelihood: {min(i0 + img_block, N)}/{N} images scored")
    return out


def normalise_likelihood(logp: Tensor, lengths: Tensor, how: str = "none") -> Tensor:
    """Optional corrections of raw log-likelihoods (N, M) for annotation: "none", "length" (per token),
    or "prior" (subtract log sum_i p(caption | image_i), i.e. log p(caption) under a uniform image
    prior: a PMI-like score that stops short, generic captions ranking first for every image)."""
    if how == "none":
        return logp
    if how == "length":
        return logp / (lengths + 1).unsqueeze(0)  # per predicted token (words + EOS)
    if how == "prior":
        return logp - torch.logsumexp(logp, dim=0, keepdim=True)
    raise ValueError(f"likelihood normalisation must be none|length|prior, got {how!r}")
