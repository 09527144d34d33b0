"""Tasks: each pairs a config dataclass with data, model, loss and validation for ``train.fit``.

The recipe's top-level ``task`` key picks one (default "caption"). The table below is the whole
lookup: a task is a module path and a class name, imported only when used.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..config import apply_overrides, from_dict, read_recipe
from ..errors import UserError
from .base import Task

TASKS = {
    "caption": ("captionkit.tasks.caption", "CaptionTask"),
    "activity": ("captionkit.tasks.activity", "ActivityTask"),
    "describe": ("captionkit.tasks.describe", "DescribeTask"),
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    module, cls = TASKS[name]
    return getattr(importlib.import_module(module), cls)


def config_from_dict(raw: dict, where: str = "config"):
    """A recipe dict -> (task class, config instance)."""
    name = raw.get("task", "caption")
    if not isinstance(name, str):
        raise UserError(f"{where}: task must be a string, got {name!r}")
    cls = task_class(name)
    return cls, from_dict(cls.config_class, raw, where=where)


def load_task(recipe: str | Path | None = None, overrides: list[str] | None = None,
              data: dict | None = None) -> Task:
    """defaults -> recipe -> --set overrides -> a ready (not yet set up) task."""
    raw = read_recipe(recipe) if recipe is not None else dict(data or {})
    apply_overrides(raw, overrides)
    cls, cfg = config_from_dict(raw, where=str(recipe) if recipe is not None else "config")
    return cls(cfg)


def load_trained(checkpoint: dict, device: torch.device | str = "cpu") -> tuple[Task, torch.nn.Module]:
    """A loaded checkpoint dict -> (task, model in eval mode on ``device``), with no other file."""
    cls, cfg = config_from_dict(checkpoint["config"], where="checkpoint config")
    task = cls(cfg, extra=checkpoint.get("extra"))
    model = task.build_model()
    model.load_state_dict(checkpoint["model"])
    task.loaded(model)
    return task, model.to(device).eval()
