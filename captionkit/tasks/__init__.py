"""Tasks: each pairs a config dataclass with data, model, loss and validation for ``train.fit``.

The recipe's top-level ``task`` key picks one (default "caption"). The table below is the whole
lookup: a task is a module path and a class name, imported only when used. Trained checkpoints
are opened by ``captionkit.tasks.loading`` (the one place that checks a checkpoint's task).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..config import apply_overrides, from_dict, read_recipe
from ..errors import UserError
from .base import Task

TASKS = {
    "caption": ("captionkit.tasks.caption", "CaptionTask"),
    "activity": ("captionkit.tasks.activity", "ActivityTask"),
    "describe": ("captionkit.tasks.describe", "DescribeTask"),
    "attention_activity": ("captionkit.tasks.attention_activity", "AttentionActivityTask"),
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
