"""Ensembles of captioners: one step function whose next-word distribution is the members' mean.

    p(w_t | w_<t, image) = (1/M) * sum_m p_m(w_t | w_<t, image)

(Vinyals et al., Show and Tell, averaged the predictions of several models in the same way.) The
ensemble is a model like any other to the decoders: ``init_state`` and ``step`` keep the step
contract of ``captionkit.decoding``, so greedy, beam search and best-of-N sampling decode an ensemble
unchanged. Every member must use the same vocabulary; members whose frozen CNNs are identical share
one encoder (and its feature cache), otherwise each member encodes the image with its own CNN.

Shape legend: B rows, V vocabulary size, M members, D_m member m's CNN feature size.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import UserError


def _shares_features(a, b) -> bool:
    return a is b or (a.frozen and b.frozen and a.identity == b.identity)


def _preprocessing(enc) -> tuple:
    return enc.cfg.name == "tiny", enc.cfg.image_size


class EnsembleEncoder(nn.Module):
    """Distinct member CNNs side by side: images (B, 3, S, S) -> concatenated features (B, sum D)."""

    def __init__(self, encoders: Sequence[nn.Module]):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.out_dim = sum(e.out_dim for e in encoders)
        self.identity = "ensemble(" + ", ".join(e.identity for e in encoders) + ")"

    @property
    def frozen(self) -> bool:
        return False  # several CNNs: the single-encoder feature cache does not apply

    def preprocess(self, img):
        return self.encoders[0].preprocess(img)  # the Ensemble checked that all members agree

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([e(images) for e in self.encoders], dim=1)  # (B, sum D)


class Ensemble(nn.Module):
    """M captioners with one vocabulary -> one model with ``encoder``, ``init_state`` and ``step``."""

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        names = list(names or [f"member {i}" for i in range(len(members))])
        self.members = nn.ModuleList(members)
        distinct, self._slot = [], []
        for name, m in zip(names, members):
            j = next((k for k, e in enumerate(distinct) if _shares_features(e, m.encoder)), None)
            if j is None:
                if distinct and _preprocessing(m.encoder) != _preprocessing(distinct[0]):
                    raise UserError(f"{name}: its CNN preprocesses images differently from {names[0]} "
                                    f"(image_size {m.encoder.cfg.image_size} vs "
                                    f"{distinct[0].cfg.image_size}); ensemble members must agree")
                distinct.append(m.encoder)
                j = len(distinct) - 1
            self._slot.append(j)
        self.encoder = distinct[0] if len(distinct) == 1 else EnsembleEncoder(distinct)
        ends = torch.tensor([e.out_dim for e in distinct]).cumsum(0).tolist()
        self._cols = [(end - e.out_dim, end) for end, e in zip(ends, distinct)]
        self._sizes: list[int] = []

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """features from ``self.encoder`` (B, sum D) -> the members' states, concatenated."""
        state: list[torch.Tensor] = []
        self._sizes = []
        for m, j in zip(self.members, self._slot):
            lo, hi = self._cols[j]
            s = m.init_state(feats[:, lo:hi])  # member m sees its own CNN's columns (B, D_m)
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


def load_captioner(path: str, device: torch.device | str = "cpu"):
    """A captioner checkpoint -> (task, model in eval mode); any other task is a UserError."""
    from .. import checkpoint
    from ..tasks import load_trained

    ckpt = checkpoint.load(path)
    if ckpt["task"] != "caption":
        raise UserError(f"{path} is a {ckpt['task']!r} checkpoint, not a captioner")
    return load_trained(ckpt, device)


def with_members(task, model, paths: Sequence[str], device: torch.device | str = "cpu"):
    """(task, model) loaded from ``paths[0]`` + the captioners at ``paths[1:]`` -> (task, model).

    One path returns the model itself; more make an Ensemble. Every member must have the first
    checkpoint's vocabulary (a one-line UserError naming the file otherwise); the task (data,
    decoding defaults) stays the first checkpoint's.
    """
    if len(paths) == 1:
        return task, model
    members, words = [model], task.vocab.tok.get_vocab()
    for path in paths[1:]:
        other, member = load_captioner(path, device)
        if other.vocab.tok.get_vocab() != words:
            raise UserError(f"{path}: its vocabulary ({len(other.vocab)} words) differs from {paths[0]}'s "
                            f"({len(task.vocab)} words); ensemble members must share one vocabulary")
        members.append(member)
    return task, Ensemble(members, names=[str(p) for p in paths]).to(device).eval()


def load_captioners(paths: Sequence[str], device: torch.device | str = "cpu"):
    """Checkpoint paths -> (task of the first, model); two or more paths make an Ensemble."""
    task, model = load_captioner(paths[0], device)
    return with_members(task, model, paths, device)
