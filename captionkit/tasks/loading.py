"""The one way to open a trained checkpoint: read it safely, check its task, rebuild task and model.

Every command, ensemble, eval script and two-stage recipe (``train.init_from``) goes through
``read_checkpoint`` (file -> checked dict) and ``load_checkpoint`` (file -> task, model), so a
checkpoint of the wrong task gives the same one-line error everywhere:

    runs/x/best.pt: a 'activity' checkpoint; expected a captioner ('caption')

and a checkpoint that loads but does not rebuild (a missing key, a wrong shape) is a one-line
error too, never a traceback.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .. import checkpoint as ckpt_io
from ..config import apply_overrides
from ..errors import UserError
from . import config_from_dict

WHAT = {"caption": "a captioner", "activity": "an activity recogniser", "describe": "a video describer",
        "attention_activity": "a soft-attention activity recogniser"}


def check_task(ckpt: dict, path: str | Path, expect: str | Sequence[str] | None) -> None:
    """UserError unless ``ckpt``'s task is ``expect`` (a name or several); None accepts any."""
    if expect is None:
        return
    expect = (expect,) if isinstance(expect, str) else tuple(expect)
    if ckpt.get("task") not in expect:
        wanted = " or ".join(f"{WHAT.get(e, e)} ({e!r})" for e in expect)
        raise UserError(f"{path}: a {ckpt.get('task')!r} checkpoint; expected {wanted}")


def read_checkpoint(path: str | Path, expect: str | Sequence[str] | None = None,
                    map_location="cpu") -> dict:
    """A checkpoint file -> its dict (weights_only), checked to be of task ``expect``."""
    ckpt = ckpt_io.load(path, map_location=map_location)
    check_task(ckpt, path, expect)
    return ckpt


def load_trained(ckpt: dict, device: torch.device | str = "cpu", where: str = "checkpoint"):
    """A loaded checkpoint dict -> (task, model in eval mode on ``device``), with no other file."""
    try:
        cls, cfg = config_from_dict(ckpt["config"], where=f"{where} config")
        task = cls(cfg, extra=ckpt.get("extra"))
        model = task.build_model()
        model.load_state_dict(ckpt["model"])
        task.loaded(model)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  (a file that loads but does not rebuild: missing keys, wrong
        # shapes, a vocabulary the tokenizer library rejects with a bare Exception)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{where}: a malformed captionkit checkpoint ({type(e).__name__}: {first[:200]})") from None
    return task, model.to(device).eval()


def data_overrides(ckpt: dict, data_root: str | None = None, overrides: Sequence[str] = ()) -> dict:
    """Point a checkpoint at other data: ``--data-root`` and ``--set data.*=...`` only (the model,
    encoder and training settings are what was trained, and changing them would not load)."""
    bad = [o for o in overrides if not o.strip().startswith("data.")]
    if bad:
        raise UserError(f"--set {bad[0]}: only data.* settings of a trained checkpoint can be changed")
    if data_root is not None:
        ckpt["config"].setdefault("data", {})["root"] = data_root
    apply_overrides(ckpt["config"], list(overrides))
    return ckpt


def load_checkpoint(path: str | Path, expect: str | Sequence[str] | None = None,
                    device: torch.device | str = "cpu", data_root: str | None = None,
                    overrides: Sequence[str] = ()):
    """A checkpoint file -> (task, model in eval mode), checked to be of task ``expect``."""
    ckpt = data_overrides(read_checkpoint(path, expect), data_root, overrides)
    return load_trained(ckpt, device, where=str(path))


def load_captioners(paths: Sequence[str | Path], device: torch.device | str = "cpu",
                    data_root: str | None = None, overrides: Sequence[str] = ()):
    """Captioner checkpoints -> (task of the first, model); two or more make an ``Ensemble``.

    Every member must have the first checkpoint's vocabulary (a one-line UserError naming the file
    otherwise); the task (data, decoding defaults) is the first checkpoint's."""
    from ..models.ensemble import Ensemble

    ckpts = [read_checkpoint(p, "caption") for p in paths]  # every member's task before any build
    task, model = load_trained(data_overrides(ckpts[0], data_root, overrides), device, where=str(paths[0]))
    if len(paths) == 1:
        return task, model
    members, words = [model], task.vocab.tok.get_vocab()
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        other, member = load_trained(ckpt, device, where=str(path))
        if other.vocab.tok.get_vocab() != words:
            raise UserError(f"{path}: its vocabulary ({len(other.vocab)} words) differs from {paths[0]}'s "
                            f"({len(task.vocab)} words); ensemble members must share one vocabulary")
        members.append(member)
    return task, Ensemble(members).to(device).eval()
