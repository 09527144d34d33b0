"""Ensembles of captioners: one step function whose next-word distribution is the members' mean.

    p(w_t | w_<t, image) = (1/M) * sum_m p_m(w_t | w_<t, image)

(Vinyals et al., Show and Tell, averaged the predictions of several models in the same way.) The
ensemble is a model like any other to the decoders: ``init_state`` and ``step`` keep the step
contract of ``captionkit.decoding``, so greedy, beam search and best-of-N sampling decode an ensemble
unchanged. Every member must use the same vocabulary; members whose frozen CNNs are identical share
one encoder (and its feature cache); otherwise each member encodes the image with its own CNN, at its
own input size, and frozen CNNs still read their own caches (``captionkit.features.frozen_features``).

Shape legend: B rows, V vocabulary size, M members, D_m member m's CNN feature size.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _shares_features(a, b) -> bool:
    return a is b or (a.frozen and b.frozen and a.identity == b.identity)


@torch.no_grad()
def flat_dim(encoder) -> int:
    """Numbers per image in an encoder's output: D for a pooled feature, P*C for a grid (B, P, C)
    (measured on one blank image: P depends on the input size and on where the CNN is cut)."""
    if getattr(encoder.cfg, "pool", "avg") != "grid":
        return encoder.out_dim
    device = next(encoder.parameters()).device
    side = encoder.cfg.image_size
    return encoder(torch.zeros(1, 3, side, side, device=device)).numel()


class EnsembleEncoder(nn.Module):
    """Distinct member CNNs side by side: images -> concatenated features (B, sum D), each CNN's
    output flattened (a grid (B, P, C) as P*C columns) so that pooled and grid members mix.

    The members may preprocess differently (e.g. 224 and 288 pixel inputs): ``preprocess`` returns
    every CNN's input flattened and concatenated, (sum 3*S_i*S_i,), and ``forward`` splits it again.
    """

    def __init__(self, encoders: Sequence[nn.Module]):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.dims = [flat_dim(e) for e in encoders]  # columns of each CNN in the concatenation
        self.out_dim = sum(self.dims)
        self.identity = "ensemble(" + ", ".join(e.identity for e in encoders) + ")"
        self._sides = [e.cfg.image_size for e in encoders]

    @property
    def frozen(self) -> bool:
        return False  # several CNNs: one feature cache cannot hold them (see ``features.frozen_features``)

    def preprocess(self, img) -> torch.Tensor:
        return torch.cat([e.preprocess(img).flatten() for e in self.encoders])  # (sum 3*S_i*S_i,)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``preprocess``'s rows (B, sum 3*S_i*S_i), or (B, 3, S, S) when every CNN takes size S."""
        if images.dim() == 4:
            if len(set(self._sides)) > 1:
                raise ValueError(f"these CNNs take different input sizes {self._sides}: pass preprocess()'s rows")
            return torch.cat([e(images).flatten(1) for e in self.encoders], dim=1)
        parts = images.split([3 * s * s for s in self._sides], dim=1)  # each (B, 3*S_i*S_i)
        return torch.cat([e(x.view(-1, 3, s, s)).flatten(1) for e, x, s in zip(self.encoders, parts, self._sides)],
                         dim=1)


class Ensemble(nn.Module):
    """M captioners with one vocabulary -> one model with ``encoder``, ``init_state`` and ``step``."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        distinct, self._slot = [], []
        for m in members:
            j = next((k for k, e in enumerate(distinct) if _shares_features(e, m.encoder)), None)
            if j is None:
                distinct.append(m.encoder)
                j = len(distinct) - 1
            self._slot.append(j)
        self.encoder = distinct[0] if len(distinct) == 1 else EnsembleEncoder(distinct)
        dims = self.encoder.dims if len(distinct) > 1 else [distinct[0].out_dim]
        ends = torch.tensor(dims).cumsum(0).tolist()
        self._cols = [(end - d, end) for end, d in zip(ends, dims)]
        self._sizes: list[int] = []

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """features from ``self.encoder`` (B, sum D) -> the members' states, concatenated."""
        state: list[torch.Tensor] = []
        self._sizes = []
        for m, j in zip(self.members, self._slot):
            lo, hi = self._cols[j]
            # member m sees its own CNN's columns (B, D_m) (flattened grids: the member reshapes them);
            # one shared CNN: its features as they are
            s = m.init_state(feats[:, lo:hi] if len(self._cols) > 1 else feats)
            self._sizes.append(len(s))
            state += s
        return tuple(state)

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """tokens (B,) -> (log of the members' mean next-word probability (B, V), state)."""
        if not self._sizes:
            raise RuntimeError("Ensemble.step before init_state")
        logps, new, at = [], [], 0
        for m, n in zip(self.members, self._sizes):
            logp, s = m.step(tokens, state[at:at + n])  # (B, V)
            logps.append(logp)
            new += s
            at += n
        return torch.logsumexp(torch.stack(logps), 0) - math.log(len(logps)), tuple(new)
