"""The training-run report (``captionkit report runs/NAME``): curves, best epoch, wall time, config.

Reads what ``captionkit.train.fit`` leaves in ``train.out_dir``: ``log.jsonl`` (``{"event": "epoch",
"epoch", "train_loss", "val": {metric: value}, "time"}`` per epoch, where ``time`` is seconds since
that process started, and ``{"event": "train", "epoch", "step", "loss", "lr", "time"}`` every
``train.log_every`` steps), and the config, task and best epoch from ``best.pt`` (else ``last.pt``),
opened with ``weights_only=True``. A resumed run restarts ``time`` at 0: its wall time is the sum of
the segments.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from . import plots
from .page import command_line, esc, kv_table, page, plots_html, table, write_page

MAX_METRIC_PLOTS = 8


def read_log(path: str | Path) -> tuple[list[dict], list[dict]]:
    """log.jsonl -> (epoch records, the last per epoch number; step records)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path.parent}: not a training run folder (no log.jsonl)")
    epochs: dict[int, dict] = {}
    steps: list[dict] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("epoch"), int):
            raise UserError(f"{path}:{n}: expected an object with an integer 'epoch'")
        if rec.get("event") == "epoch":
            if not isinstance(rec.get("train_loss"), (int, float)) or not isinstance(rec.get("val", {}), dict):
                raise UserError(f"{path}:{n}: an epoch record needs a number 'train_loss' and an object 'val'")
            epochs[rec["epoch"]] = rec      # a re-run epoch (crash, then resume) replaces the first
        elif rec.get("event") == "train" and isinstance(rec.get("loss"), (int, float)):
            steps.append(rec)
    if not epochs and not steps:
        raise UserError(f"{path}: no epoch or step records yet")
    return [epochs[k] for k in sorted(epochs)], steps


def wall_seconds(epochs: list[dict]) -> float:
    """Sum over process segments: ``time`` restarts from 0 when a run is resumed."""
    total, last = 0.0, 0.0
    for rec in epochs:
        t = float(rec.get("time", 0.0))
        if t < last:            # a new process: close the previous segment
            total += last
        last = t
    return total + last


def _checkpoint_info(run_dir: Path) -> tuple[dict | None, str]:
    from .. import checkpoint
    for name in ("best.pt", "last.pt"):
        if (run_dir / name).is_file():
            return checkpoint.load(run_dir / name), name
    return None, ""


def best_epoch(epochs: list[dict], metric: str | None, higher: bool) -> tuple[int, float] | None:
    """(epoch, value) of the best validation ``metric`` in the log, or None when never measured."""
    seen = [(r["epoch"], r["val"][metric]) for r in epochs if metric in r.get("val", {})]
    if not seen:
        return None
    return (max if higher else min)(seen, key=lambda ev: ev[1])


def _selection(task: str | None, epochs: list[dict]) -> tuple[str | None, bool]:
    """The task's selection metric and direction; without a checkpoint, the first validation metric."""
    if task is not None:
        from ..tasks import task_class
        cls = task_class(task)
        return cls.selection_metric, cls.higher_is_better
    for r in epochs:
        for k in r.get("val", {}):
            return k, "loss" not in k.lower()
    return None, True


def _curves(epochs: list[dict], steps: list[dict], steps_per_epoch: dict[int, int], mark) -> dict[str, str]:
    xs = [r["epoch"] for r in epochs]
    loss = {"train loss (epoch mean)": (xs, [r["train_loss"] for r in epochs])}
    if steps:
        loss["train loss (logged steps)"] = (
            [s["epoch"] - 1 + s.get("step", 0) / max(1, steps_per_epoch.get(s["epoch"], 1)) for s in steps],
            [s["loss"] for s in steps])
    uris = {"loss": plots.curves(loss, "training loss", "loss", mark)}
    names = [k for r in epochs for k in r.get("val", {})]
    for name in list(dict.fromkeys(names))[:MAX_METRIC_PLOTS]:
        pts = [(r["epoch"], r["val"][name]) for r in epochs if isinstance(r.get("val", {}).get(name), (int, float))]
        if pts:
            uris[f"val {name}"] = plots.curves({name: tuple(map(list, zip(*pts)))},
                                               f"validation {name}", name, mark)
    return uris


def _config_text(config: dict) -> str:
    """A nested config dict -> TOML-like text (one [section] per sub-dict)."""
    top = [f"{k} = {json.dumps(v)}" for k, v in config.items() if not isinstance(v, dict)]
    parts = ["\n".join(top)] if top else []
    for k, v in config.items():
        if isinstance(v, dict):
            parts.append(f"[{k}]\n" + "\n".join(f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()))
    return "\n\n".join(parts)


def run_report_html(run_dir: Path, command: str) -> str:
    """The whole run page as a string."""
    epochs, steps = read_log(run_dir / "log.jsonl")
    ckpt, ckpt_name = _checkpoint_info(run_dir)
    task = ckpt.get("task") if ckpt else None
    metric, higher = _selection(task, epochs)
    best = best_epoch(epochs, metric, higher)
    if ckpt_name == "best.pt" and isinstance(ckpt.get("epoch"), int):
        best = (ckpt["epoch"], ckpt.get("best"))     # the epoch whose weights best.pt holds
    per_epoch = {}
    for s in steps:
        per_epoch[s["epoch"]] = max(per_epoch.get(s["epoch"], 0), s.get("step", 0))
    wall = wall_seconds(epochs)
    rows = [("report command", command), ("run folder", str(run_dir)), ("task", task or "unknown (no checkpoint)"),
            ("epochs logged", len(epochs)),
            ("selection metric", f"{metric} ({'higher' if higher else 'lower'} is better)"),
            ("best epoch", f"{best[0]} ({metric} = {best[1]:.4f})" if best and best[1] is not None else "–"),
            ("wall time", f"{int(wall // 3600)} h {int(wall % 3600 // 60):02d} min {int(wall % 60):02d} s "
                          f"({wall:.0f} s)"),
            ("config from", ckpt_name or "no checkpoint in the folder")]
    mark = best[0] if best else None
    vals = list(dict.fromkeys(k for r in epochs for k in r.get("val", {})))
    epoch_rows = [[r["epoch"], r["train_loss"]] + [r.get("val", {}).get(k) for k in vals]
                  + [round(r["time"]) if isinstance(r.get("time"), (int, float)) else None] for r in epochs]
    sections = [("Summary", kv_table(rows)),
                ("Curves", plots_html(_curves(epochs, steps, per_epoch, mark))),
                ("Epochs", table(["epoch", "train loss"] + [f"val {k}" for k in vals] + ["time (s)"], epoch_rows))]
    if ckpt and isinstance(ckpt.get("config"), dict):
        sections.append(("Recipe (full config)", f"<pre>{esc(_config_text(ckpt['config']))}</pre>"))
    return page(f"captionkit run: {run_dir.name}", sections)


def write_run_report(run_dir: str | Path, path: str | Path | None = None, command: str | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``path``) for a training run folder; returns the page path."""
    run_dir = Path(run_dir)
    text = run_report_html(run_dir, command or command_line())
    return write_page(path or run_dir / "report.html", text)
