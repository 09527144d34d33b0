"""What a task gives the generic training loop (``captionkit.train.fit``).

A task (captioning, activity recognition, video description) owns its config dataclass, its data,
its model construction, its loss and its validation; ``fit`` owns everything else: optimisation,
mixed precision, DDP, checkpoints, resume, logging and early stopping.

Life cycle:
  task = TaskClass(cfg, extra=None)      # no data touched yet
  task.setup(rank, world)                # training only: read data, build vocab, cache features
  model = task.build_model()             # needs only cfg + extra (so checkpoints rebuild it)
  task.begin_epoch(epoch)                # before each epoch's batches (0-based; also when resuming)
  loss_sum, count = task.loss(model, batch, device)
  metrics = task.validate(model, device) # rank 0 only; must contain task.selection_metric
A checkpoint stores ``task.extra_state()``; ``TaskClass(cfg, extra)`` + ``build_model()`` rebuilds.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.utils.data import Dataset


class Task(ABC):
    name: str = "task"
    selection_metric: str = "loss"     # key of validate()'s dict used for best-checkpoint selection
    higher_is_better: bool = True

    def __init__(self, cfg, extra: dict | None = None):
        self.cfg = cfg
        self.extra = dict(extra or {})

    @abstractmethod
    def setup(self, rank: int = 0, world: int = 1) -> None:
        """Read the training and validation data (and build what depends on it, e.g. the vocab)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build the model from ``self.cfg`` and ``self.extra`` alone."""

    @abstractmethod
    def train_dataset(self) -> Dataset:
        """The training set; items are whatever ``collate`` accepts."""

    def data_source(self) -> str:
        """What the run trains on, in a few words (printed before any data is read)."""
        raise NotImplementedError

    def data_sizes(self) -> dict[str, int]:
        """Split sizes printed when training starts (after ``setup``); tasks add their validation split."""
        return {"train items": len(self.train_dataset())}

    def train_lengths(self) -> list[int] | None:
        """Per-item lengths of ``train_dataset()`` for length bucketing (``train.bucket``); None: none."""
        return None

    def collate(self, items: list):
        return torch.utils.data.default_collate(items)

    def begin_epoch(self, epoch: int) -> None:
        """Called before the batches of epoch ``epoch`` (0-based), also when a run resumes mid-epoch;
        a task whose loss changes during training (e.g. cross-entropy, then self-critical) reads it."""

    @abstractmethod
    def loss(self, model: nn.Module, batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (sum of per-item losses, number of items summed), so that DDP can normalise exactly."""

    @abstractmethod
    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Metrics on the validation split (called on rank 0, model in eval mode)."""

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """Optimizer parameter groups (override for e.g. a separate fine-tuning learning rate)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    def load_extra(self, extra: dict) -> None:
        """Adopt a checkpoint's extra state (on --resume: e.g. the vocabulary it was trained with)."""
        self.extra = dict(extra)

    def loaded(self, model: nn.Module) -> None:
        """Called by ``load_trained`` once a checkpoint's weights are in the model (a hook)."""

    def extra_state(self) -> dict:
        """Plain data (str/int/float/list/dict/tensors) needed to rebuild and use the model."""
        return dict(self.extra)
