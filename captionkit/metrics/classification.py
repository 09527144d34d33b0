"""Classification scores for activity recognition: accuracy, per-class accuracy, confusion matrix,
mean log-likelihood, and the direction accuracy of time-reversed class pairs (synthetic videos).

Like the caption metrics, a table of small scorer functions ``{name: fn(probs, labels) -> value}``;
``classification_scores`` runs the table. Shape legend: N videos, K classes.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """pred (N,), labels (N,) -> counts (K, K): row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels.numpy(), pred.numpy()), 1)
    return cm


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """probs (N, K), labels (N,) -> fraction of videos whose top class is right."""
    return (probs.argmax(1) == labels).float().mean().item()


def per_class_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> dict[int, float]:
    """probs (N, K), labels (N,) -> {class: accuracy over its videos}, for classes that have videos."""
    correct = (probs.argmax(1) == labels).float()
    return {int(k): correct[labels == k].mean().item() for k in labels.unique(sorted=True)}


def mean_class_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    per = per_class_accuracy(probs, labels)
    return sum(per.values()) / len(per)


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-probability of the true class."""
    return -probs.clamp(min=1e-12).log().gather(1, labels.unsqueeze(1)).mean().item()


def direction_accuracy(probs, labels, pairs: list[tuple[int, int]]) -> float | None:
    """Among videos of the time-reversed pairs: how often the right class of its pair scores higher
    than its reversal (chance = 1/2 whatever happens outside the pair). probs (N, K), labels (N,)."""
    hits, total = 0, 0
    for a, b in pairs:
        for i in range(len(labels)):
            y = int(labels[i])
            if y in (a, b):
                other = b if y == a else a
                hits, total = hits + int(probs[i, y] > probs[i, other]), total + 1
    return hits / total if total else None


SCORERS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": accuracy, "mean_class_accuracy": mean_class_accuracy, "nll": nll}


def classification_scores(probs: torch.Tensor, labels: torch.Tensor,
                          pairs: list[tuple[int, int]] | None = None) -> dict[str, float]:
    """probs (N, K), labels (N,) -> every score of the table (+ direction accuracy when pairs exist)."""
    scores = {name: fn(probs, labels) for name, fn in SCORERS.items()}
    if pairs:
        scores["direction_accuracy"] = direction_accuracy(probs, labels, pairs)
    return scores
