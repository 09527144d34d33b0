"""Shared fixtures: small CPU-only settings and the location of ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CAPTIONKIT_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(1)  # tiny models: threads only add contention on a 2-core machine


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set CAPTIONKIT_SHARED_DATA)")
    return SHARED_DATA


def tiny_caption_recipe(out_dir, **sections) -> dict:
    """A captioning recipe small enough for unit tests (seconds on one CPU core)."""
    recipe = {
        "task": "caption",
        "data": {"source": "synth", "synth_train": 16, "synth_val": 8, "synth_test": 8, "min_count": 1,
                 "synth_size": 32},
        "encoder": {"name": "tiny", "finetune": True, "image_size": 32},
        "model": {"variant": "2f", "hidden": 32, "embed": 16, "dropout": 0.0},
        "train": {"out_dir": str(out_dir), "epochs": 1, "batch_size": 8, "lr": 3e-3, "progress": False,
                  "log_every": 1},
        "decode": {"max_len": 12},
    }
    for name, values in sections.items():
        recipe[name].update(values)
    return recipe
