from pathlib import Path

import pytest

from captionkit.config import apply_overrides, from_dict, parse_override
from captionkit.errors import UserError
from captionkit.tasks import config_from_dict, load_task
from captionkit.tasks.caption import CaptionConfig

# training recipes (retrieve_*.toml are `captionkit retrieve` recipes, loaded in test_retrieval.py)
RECIPES = sorted(r for r in (Path(__file__).resolve().parents[1] / "recipes").glob("*.toml")
                 if not r.name.startswith("retrieve_"))


def test_defaults_and_nested_values():
    cfg = from_dict(CaptionConfig, {"model": {"variant": "1u", "hidden": 8}, "train": {"lr": 1}})
    assert cfg.model.variant == "1u" and cfg.model.hidden == 8
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # int accepted for float
    assert cfg.data.source == "synth"


@pytest.mark.parametrize("raw, message", [
    ({"model": {"hiden": 8}}, "unknown key 'model.hiden'"),
    ({"modle": {}}, "unknown key 'modle'"),
    ({"model": {"hidden": "big"}}, "model.hidden must be int"),
    ({"train": {"progress": 1}}, "train.progress must be bool"),
    ({"model": {"variant": "3x"}}, "model.variant must be one of"),
    ({"model": 3}, "[model] must be a table"),
])
def test_unknown_keys_and_wrong_types_are_errors(raw, message):
    with pytest.raises(UserError, match=None) as e:
        from_dict(CaptionConfig, raw, where="r.toml")
    assert message in str(e.value) and "r.toml" in str(e.value)


def test_overrides():
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 0.001)
    assert parse_override("data.source=coco") == (["data", "source"], "coco")
    assert parse_override("train.progress=false") == (["train", "progress"], False)
    raw = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=0.5", "model.hidden=7"])
    assert raw == {"train": {"lr": 0.5}, "model": {"hidden": 7}}
    with pytest.raises(UserError):
        parse_override("nokeyvalue")


def test_unknown_task_is_an_error():
    with pytest.raises(UserError, match="unknown task"):
        config_from_dict({"task": "painting"})


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_recipe_loads(recipe):
    task = load_task(recipe)
    assert task.cfg.train.out_dir.startswith("runs/")


def test_recipe_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nvariant = \"2f\"\nlayers = 3\n")
    with pytest.raises(UserError, match=r"bad.toml: unknown key 'model.layers'"):
        load_task(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_task(broken)
    with pytest.raises(UserError, match="recipe not found"):
        load_task(tmp_path / "missing.toml")
