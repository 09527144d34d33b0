"""Opening a training run (for ``train.fit``): its folder (``train.out_dir``) is never silently
overwritten, a run is resumed only as itself, and the run says what data it trains on.

Before any data is read, ``prepare`` decides what may happen to the folder:
  - it holds run output (``last.pt``, ``best.pt`` or ``log.jsonl``) and neither ``--resume`` nor
    ``--overwrite`` was given: a one-line error (never appending to another run's log);
  - ``--overwrite``: the old outputs are MOVED aside into ``<out_dir>/replaced-<UTC time>/`` (nothing
    is deleted), then the run starts fresh;
  - ``--resume`` with no ``last.pt``: an error, not a fresh start;
  - ``--resume`` of another task's run, or with a changed recipe: one line naming what differs.
    Only the settings in ``RESUME_MAY_CHANGE`` (how long and where to run, not what is trained)
    may differ from the saved run (``resume_state``; the task check is ``tasks.loading``'s).
``data_line`` prints the data source before any data is read (a recipe without ``[data]`` trains on
built-in synthetic data, and says so), ``sizes_line`` the split sizes once the task is set up.
A run that diverges stops with ``diverged``'s one-line error before it writes a non-finite weight.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .config import to_dict
from .errors import UserError

RUN_OUTPUTS = ("last.pt", "best.pt", "log.jsonl")
RESUME_MAY_CHANGE = frozenset({
    "train.epochs", "train.patience", "train.device", "train.workers", "train.threads", "train.progress",
    "train.log_every", "train.save_every_steps", "train.out_dir", "encoder.batch_size", "data.progress",
})


def prepare(out: Path, resume: bool, overwrite: bool) -> None:
    """Check (and with ``overwrite`` clear) the run folder ``out``; see the module docstring."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other: continue the run, or start again")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"train.out_dir={out}: cannot make the folder ({e.strerror or type(e).__name__})") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"train.out_dir={out}: the folder is not writable")
    if resume:
        if not (out / "last.pt").is_file():
            raise UserError(f"--resume: nothing to resume in {out} (no last.pt); drop --resume to start a run")
        return
    found = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if found and not overwrite:
        raise UserError(f"{out} already holds a run ({', '.join(found)}): pass --resume to continue it, "
                        "--overwrite to start again (the old outputs are moved aside), or set train.out_dir "
                        "to a new folder")
    if found:
        stamp = time.strftime("replaced-%Y%m%d-%H%M%S", time.gmtime())
        aside = next(p for n in range(1000) if not (p := out / (stamp + (f"-{n}" if n else ""))).exists())
        aside.mkdir()
        for name in found:
            os.replace(out / name, aside / name)
        print(f"--overwrite: moved the old {', '.join(found)} to {aside}", flush=True)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def check_resumable(state: dict, path: Path, config: dict, defaults: dict | None = None) -> None:
    """UserError unless the saved run ``state`` (from ``path``, of this task) has this config, up to
    ``RESUME_MAY_CHANGE``; the message lists the differing keys as ``key: saved -> now``. A setting
    the saved config lacks (added to captionkit after the run started) counts as unchanged while it
    keeps its value in ``defaults`` (the task's default config)."""
    if not isinstance(state.get("config"), dict):
        raise UserError(f"{path}: a malformed captionkit checkpoint (no config table)")
    saved, now, default = _flat(state["config"]), _flat(config), _flat(defaults or {})

    def differs(k: str) -> bool:
        if k in RESUME_MAY_CHANGE or (k not in saved and k in default and now.get(k) == default[k]):
            return False
        return saved.get(k, "<unset>") != now.get(k, "<unset>")

    changed = [k for k in sorted(set(saved) | set(now)) if differs(k)]
    if changed:
        shown = "; ".join(f"{k}: {saved.get(k, '<unset>')!r} -> {now.get(k, '<unset>')!r}" for k in changed[:3])
        more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        raise UserError(f"--resume: the recipe differs from the run in {path}: {shown}{more}; resume with "
                        f"the run's settings or start a new run")


def data_line(task) -> str:
    """What the run trains on, printed at its start (before any data is read)."""
    return f"data: {task.data_source()}"


def resume_state(task, last: Path, device) -> dict:
    """The saved run in ``last`` (``last.pt``), checked to be this task with this config."""
    from .tasks.loading import read_checkpoint
    state = read_checkpoint(last, expect=task.name, map_location=device)
    check_resumable(state, last, to_dict(task.cfg), to_dict(type(task).config_class()))
    return state


def adopt_extra(task, ckpt: dict, where) -> None:
    """The task takes a checkpoint's extra state (the vocabulary: never rebuilt on resume or init_from)."""
    try:
        task.load_extra(ckpt.get("extra") or {})
    except Exception as e:  # noqa: BLE001  (a file that loads but lacks what the task needs)
        raise UserError(f"{where}: a malformed captionkit checkpoint ({type(e).__name__}: {str(e)[:200]})") from None


def start_from(run, state: dict | None, init: dict | None, cfg, last: Path) -> None:
    """Load ``train.init_from``'s weights or restore the saved run into ``run``, with one-line errors."""
    if init is not None:
        try:
            run.model.load_state_dict(init["model"])
        except (KeyError, RuntimeError) as e:
            raise UserError(f"train.init_from={cfg.init_from}: its weights do not fit this recipe's model "
                            f"({str(e).splitlines()[0]})") from None
        if run.ema:
            run.ema.reset()  # the average starts at the loaded weights, not the random ones
        if run.rank == 0:
            print(f"starting from the weights of {cfg.init_from}", flush=True)
    if state is not None:
        try:
            run.restore(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise UserError(f"{last}: cannot resume from it ({type(e).__name__}: {first})") from None
        if run.rank == 0:
            print(f"resuming {last}: epoch {run.epoch + 1}, step {run.step_in_epoch}", flush=True)


def non_finite(model) -> str | None:
    """The name of a weight of ``model`` holding NaN or inf, else None."""
    return next((k for k, v in model.state_dict().items() if v.is_floating_point() and not v.isfinite().all()),
                None)


def diverged(run, what: str) -> UserError:
    """The one-line error that stops a diverged run; no file of it is written after ``what``."""
    return UserError(f"training diverged: {what}; {run.out} keeps the last good checkpoint (try a lower "
                     "train.lr or train.clip)")


def sizes_line(task) -> str:
    return "split sizes: " + ", ".join(f"{k} {v}" for k, v in task.data_sizes().items())
