"""Configuration: dataclass defaults -> TOML recipe -> ``--set key=value`` overrides.

A recipe lists only what differs from the defaults. Unknown keys and wrong types are errors that
name the recipe file and the dotted key, and so are numbers no setting can take: every float must be
finite (TOML's ``inf`` / ``nan`` are refused) and every number >= 0 (except the few in ``SIGNED``);
a config's ``__post_init__`` narrows its own ranges further (``require``). No registries of options,
no inheritance chains, no exec.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from .errors import UserError, read_utf8

SIGNED = frozenset({"forget_bias"})  # the numeric settings that may be negative


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str, where: str):
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{where}: {key} has the wrong type")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: [{key}] must be a table, got {type(value).__name__}")
        return from_dict(tp, value, where, prefix=key + ".")
    if origin in (list, tuple):
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: {key} must be a list, got {value!r}")
        items = [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: {key} must be a table, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise UserError(f"{where}: {key} must be {_type_name(tp)}, got {value!r}")
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: {key} must be a finite number, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise UserError(f"{where}: {key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls, data: dict, where: str = "config", prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict; unknown keys and wrong types raise UserError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"{where}: unknown key '{prefix}{unknown[0]}' (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], prefix + k, where) for k, v in data.items()}
    for k, v in kwargs.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0 and k not in SIGNED:
            raise UserError(f"{where}: {prefix}{k} must be >= 0, got {v!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: {e}") from None


def require(cfg, section: str, positive: tuple[str, ...] = (), fraction: tuple[str, ...] = (),
            at_most: dict[str, float] | None = None) -> None:
    """For a config's ``__post_init__``: ValueError naming ``section.key`` and its value for the first
    setting out of range (``positive``: > 0; ``fraction``: in [0, 1); ``at_most``: <= its bound)."""
    for name in positive:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{section}.{name} must be > 0, got {getattr(cfg, name)!r}")
    for name in fraction:
        if not 0 <= getattr(cfg, name) < 1:
            raise ValueError(f"{section}.{name} must be in [0, 1), got {getattr(cfg, name)!r}")
    for name, bound in (at_most or {}).items():
        if not getattr(cfg, name) <= bound:
            raise ValueError(f"{section}.{name} must be at most {bound}, got {getattr(cfg, name)!r}")


def to_dict(cfg) -> dict:
    """Dataclass -> plain nested dict (TOML/JSON/checkpoint friendly)."""
    return dataclasses.asdict(cfg)


def read_recipe(path: str | Path) -> dict:
    """Read a TOML recipe into a dict, with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe not found: {path}")
    try:
        return tomllib.loads(read_utf8(path))  # TOML is UTF-8 by definition
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001). Values are TOML literals, else plain strings."""
    if "=" not in text:
        raise UserError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set: bad key {key!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``--set`` overrides to a recipe dict (in place) and return it."""
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {text}: {part!r} is not a table")
        node[path[-1]] = value
    return data


def load_config(cls, recipe: str | Path | None = None, overrides: list[str] | None = None,
                data: dict | None = None):
    """defaults (cls) -> recipe file -> overrides; returns an instance of ``cls``."""
    raw = dict(data or {})
    if recipe is not None:
        raw = read_recipe(recipe)
    apply_overrides(raw, overrides)
    return from_dict(cls, raw, where=str(recipe) if recipe is not None else "config")
