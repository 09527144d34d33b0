"""An exponential moving average of the trained weights (Polyak averaging), ``train.ema``.

The average follows every optimisation step: avg <- avg + (1 - d_n) (w - avg), with the decay d_n =
min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's ExponentialMovingAverage num_updates
rule), so the average is not dominated by the random initial weights early in a run. Validation,
``best.pt`` and the ``model`` entry of ``last.pt`` hold the averaged weights (what inference loads);
``last.pt`` also keeps the raw weights (``train_model``) and the update count so a run resumes exactly.
Only trainable parameters are averaged; buffers (BatchNorm statistics of a frozen CNN) are the model's.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """The running average of ``model``'s trainable parameters (fp32 copies beside the model)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema must be in (0, 1) (or 0 = off), got {decay}")
        self.decay = decay
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().float().clone() for p in self.params]
        self.updates = 0

    def rate(self) -> float:
        """The decay of the next update (warm-up: (1 + n) / (10 + n) while below ``decay``)."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights into the average (after an optimisation step)."""
        weight = 1.0 - self.rate()
        for avg, p in zip(self.shadow, self.params):
            avg.lerp_(p.detach().float(), weight)
        self.updates += 1

    @torch.no_grad()
    def reset(self) -> None:
        """Restart the average at the model's current weights (after loading ``train.init_from``)."""
        for avg, p in zip(self.shadow, self.params):
            avg.copy_(p.detach())
        self.updates = 0

    def state_dict(self, model: nn.Module) -> dict:
        """``model.state_dict()`` with the averaged weights in place of the trained ones."""
        index = dict(zip(self.names, self.shadow))
        return {k: (index[k].to(v.dtype).clone() if k in index else v) for k, v in model.state_dict().items()}

    @torch.no_grad()
    def load(self, averaged: dict, updates: int) -> None:
        """Restore the average from a ``state_dict``'s averaged weights and the update count."""
        missing = [n for n in self.names if n not in averaged]
        if missing:
            raise KeyError(f"averaged weights lack {missing[0]!r}")
        for n, avg in zip(self.names, self.shadow):
            avg.copy_(averaged[n])
        self.updates = int(updates)

    @contextmanager
    def applied(self):
        """The model holds the averaged weights inside the block, its trained ones again after it."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            for p, avg in zip(self.params, self.shadow):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, saved):
                    p.copy_(w)
