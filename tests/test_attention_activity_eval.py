"""The issue-16 eval scripts on a tiny recipe: the table script reuses a finished run only when it was
trained with the same config, and the sweep's packed grids train and score like the task itself."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from captionkit.errors import UserError
from captionkit.tasks import load_task
from captionkit.train import fit
from test_attention_activity import TINY_RECIPE

EVAL = Path(__file__).resolve().parents[1] / "eval"


def script(name):
    spec = importlib.util.spec_from_file_location(name, EVAL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("attention_eval")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=root, kind="attention").replace("epochs = 2", "epochs = 1"))
    fit(load_task(recipe, ["train.out_dir=" + str(root / "run")]))
    return root, recipe


def test_table_reuses_a_run_only_with_the_same_config(tiny):
    table = script("attention_activity_table")
    root, recipe = tiny
    last = root / "run" / "last.pt"
    assert table.same_config(last, recipe, ["train.out_dir=elsewhere", "train.progress=true"])
    assert not table.same_config(last, recipe, ["model.hidden=16"])
    assert not table.same_config(last, recipe, ["train.lr=1e-3"])


def test_sweep_packs_the_task_grids_and_scores_as_validation(tiny, tmp_path):
    sweep = script("attention_activity_sweep")
    root, recipe = tiny
    packed = tmp_path / "grids.npz"
    torch.manual_seed(0)  # the tiny recipe's CNN has random weights: the same ones both times
    sweep.pack(str(recipe), packed)
    task = load_task(recipe)
    torch.manual_seed(0)
    task.setup()
    data = np.load(packed)
    assert np.array_equal(data["train"], np.stack([np.asarray(g) for g in task._train_grids]))
    assert np.array_equal(data["test_labels"], [v.labels[0] for v in task.test_videos])
    assert data["boxes"].shape[:2] == data["test"].shape[:2] and data["boxes"].shape[2] == 4
    runs = tmp_path / "runs"
    att = sweep.run_one((f"att={recipe}", 0, str(packed), str(runs)))
    cell = sweep.run_one((f"one={recipe}@5,model.kind=avg_lstm", 0, str(packed), str(runs)))
    for name, record in (("att", att), ("one", cell)):
        log = [json.loads(line) for line in (runs / f"{name}_seed0" / "log.jsonl").read_text().splitlines()]
        val = [r["val"]["accuracy"] for r in log if "val" in r]
        assert record["accuracy"] == pytest.approx(val[-1])  # scored as fit's validation scored it
    assert 0 <= att["cell_share"] <= 1 and len(att["per_cell_mass"]) == data["test"].shape[2]
    assert "cell_share" not in cell
    md = sweep.summary([att, cell, att | {"seed": 1}])
    assert f"| `att={recipe}` | 0,1 |" in md and "| `one=" in md


def test_table_refuses_a_run_of_another_config(tiny, monkeypatch):
    table = script("attention_activity_table")
    root, recipe = tiny
    monkeypatch.setitem(table.ROWS, "tiny", (str(recipe)[:-5], "tiny"))
    args = type("Args", (), {"runs": str(root / "other"), "epochs": 0, "overrides": ["model.hidden=4"]})()
    (root / "other" / "tiny_seed0").mkdir(parents=True, exist_ok=True)
    (root / "other" / "tiny_seed0" / "last.pt").write_bytes((root / "run" / "last.pt").read_bytes())
    with pytest.raises(UserError, match="another config"):
        table.run_row("tiny", 0, args)
