"""The training loop shared by every task: fit / train_one_epoch / evaluate.

Teacher-forced batches come from the task; this module owns the optimiser and schedule, gradient
clipping, CUDA mixed precision, DistributedDataParallel under ``torchrun`` (NCCL on GPUs, gloo on
CPUs), per-epoch validation with best-checkpoint selection and early stopping, a JSONL log, tqdm
progress, and checkpoints that resume exactly (mid-epoch too: the data order is a function of
(seed, epoch), so resuming skips the batches already seen and restores every RNG).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import checkpoint as ckpt_io
from . import run_folder
from .averaging import WeightAverage
from .epoch_order import EpochOrder
from .config import require, to_dict
from .errors import UserError
from .tasks.base import Task


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"   # checkpoints (last.pt, best.pt) and log.jsonl go here
    epochs: int = 10
    batch_size: int = 64            # GLOBAL batch: split evenly over DDP processes
    optimizer: str = "adam"         # "adam" | "adamw" | "sgd"
    lr: float = 4e-4
    weight_decay: float = 0.0
    momentum: float = 0.9           # sgd only
    schedule: str = "constant"      # "constant" | "step" | "cosine" (per optimisation step)
    warmup_steps: int = 0
    step_epochs: int = 10           # "step": multiply lr by gamma every step_epochs epochs
    gamma: float = 0.5
    clip: float = 5.0               # max global gradient norm; 0 = off
    label_smoothing: float = 0.0    # for cross-entropy losses over words
    ema: float = 0.0                # decay of an exponential moving average of the weights, updated
                                    # every step (``averaging.py``): validation, best.pt and inference
                                    # use the average; 0 = off (e.g. 0.999: about the last 1,000 steps)
    amp: str = "auto"               # "auto" (bf16/fp16 on CUDA, off on CPU) | "off" | "bf16" (CUDA, or
                                    # CPU autocast: fast only with native bf16, see README "CPU
                                    # performance") | "fp16" (CUDA only; off on CPU)
    device: str = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
    seed: int = 0
    workers: int = 0                # DataLoader worker processes
    threads: int = 0                # CPU threads for torch (0 = torch's default); small models on
                                    # a busy CPU often run fastest with 1
    patience: int = 0               # early stopping: epochs without improvement; 0 = off
    val_every: int = 1              # validate every N epochs (and after the last)
    save_every_steps: int = 0       # also checkpoint mid-epoch every N steps; 0 = epoch ends only
    log_every: int = 50
    max_steps_per_epoch: int = 0    # cap steps per epoch (smoke tests); 0 = whole epoch
    init_from: str = ""             # start from this checkpoint's weights and vocabulary (a fresh
                                    # optimizer and schedule): a second stage, e.g. self-critical
                                    # training after cross-entropy; "" = random initialisation
    bucket: int = 0                 # length bucketing: sort each window of bucket*batch_size shuffled
                                    # items by length, then shuffle the batches; 0 = off. Less padding,
                                    # same items per epoch (tasks without lengths ignore it)
    progress: bool = True           # tqdm bars on rank 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"train.optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in ("constant", "step", "cosine"):
            raise ValueError(f"train.schedule must be constant, step or cosine, got {self.schedule!r}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"train.amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        require(self, "train", positive=("batch_size", "epochs", "lr", "val_every", "log_every", "step_epochs",
                                         "gamma"), fraction=("label_smoothing",), at_most={"momentum": 1.0})
        if self.bucket < 0:
            raise ValueError(f"train.bucket must be >= 0, got {self.bucket}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"train.ema must be in [0, 1) (0 = off), got {self.ema}")


# ----------------------------------------------------------------------------- distributed

def dist_info() -> tuple[int, int, int]:
    """(rank, world, local_rank) from torchrun's environment; (0, 1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name!r} but CUDA is not available on this machine")
    return torch.device(name)


def init_distributed(device: torch.device) -> None:
    if dist_info()[1] > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


# ----------------------------------------------------------------------------- optimisation

def build_optimizer(cfg: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_schedule(cfg: TrainConfig, opt, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "step":
            return cfg.gamma ** ((step // steps_per_epoch) // max(1, cfg.step_epochs))
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
        return 1.0
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def amp_settings(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    if cfg.amp == "off":
        return False, torch.float32
    if device.type != "cuda":  # CPU autocast only when asked for: "auto" keeps fp32 on CPUs
        return (True, torch.bfloat16) if cfg.amp == "bf16" else (False, torch.float32)
    if cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return True, torch.float16
    return True, torch.bfloat16


# ----------------------------------------------------------------------------- the loop

class Run:
    """The mutable state of one training run (what a checkpoint captures)."""

    def __init__(self, task: Task, cfg: TrainConfig, device: torch.device, rank: int, world: int):
        self.task, self.cfg, self.device, self.rank, self.world = task, cfg, device, rank, world
        self.model = task.build_model().to(device)
        self.opt = build_optimizer(cfg, task.param_groups(self.model, cfg.lr))
        self.order = EpochOrder(len(task.train_dataset()), cfg.batch_size, cfg.seed, rank, world,
                                task.train_lengths() if cfg.bucket else None, cfg.bucket)
        self.sched = build_schedule(cfg, self.opt, self.order.steps())
        self.use_amp, self.amp_dtype = amp_settings(cfg, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.net = DistributedDataParallel(self.model) if world > 1 else self.model
        self.ema = WeightAverage(self.model, cfg.ema) if cfg.ema else None
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_loss = 0.0           # running sum of this epoch's batch losses (for exact resume)
        self.best: float | None = None
        self.bad_epochs = 0
        self.history: list[dict] = []
        self.out = Path(cfg.out_dir)

    def state(self, with_training: bool = True) -> dict:
        model = self.ema.state_dict(self.model) if self.ema else self.model.state_dict()
        state = {"format": ckpt_io.FORMAT, "task": self.task.name, "config": to_dict(self.task.cfg),
                 "extra": self.task.extra_state(), "model": model,
                 "epoch": self.epoch, "step": self.step_in_epoch, "global_step": self.global_step,
                 "epoch_loss": self.epoch_loss,
                 "best": self.best, "bad_epochs": self.bad_epochs, "history": self.history}
        if with_training:
            state |= {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                      "scaler": self.scaler.state_dict(), "rng": ckpt_io.rng_state()}
            if self.ema:  # "model" holds the average: the trained weights resume from here
                state |= {"train_model": self.model.state_dict(), "ema_updates": self.ema.updates}
        return state

    def restore(self, state: dict) -> None:
        if self.ema:
            self.model.load_state_dict(state["train_model"])
            self.ema.load(state["model"], state["ema_updates"])
        else:
            self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step"]
        self.global_step, self.best = state["global_step"], state["best"]
        self.epoch_loss = state["epoch_loss"]
        self.bad_epochs, self.history = state["bad_epochs"], list(state["history"])
        ckpt_io.set_rng_state(state["rng"])

    def log(self, record: dict) -> None:
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def save(self, name: str, with_training: bool = True) -> None:
        """Write a checkpoint (rank 0); weights that are not all finite stop the run instead, so the
        file on disk stays the last good one."""
        if self.rank == 0:
            if (bad := run_folder.non_finite(self.model)) is not None:
                raise run_folder.diverged(self, f"non-finite weights ({bad}) after step {self.global_step}, "
                                                f"{name} not written")
            ckpt_io.save_atomic(self.state(with_training), self.out / name)


def train_one_epoch(run: Run) -> float:
    """One pass over the training order (from run.step_in_epoch); returns the mean batch loss."""
    cfg, task = run.cfg, run.task
    run.order.epoch, run.order.start = run.epoch, run.step_in_epoch
    task.begin_epoch(run.epoch)
    loader = torch.utils.data.DataLoader(
        task.train_dataset(), batch_size=cfg.batch_size // run.world, sampler=run.order,
        collate_fn=task.collate, num_workers=cfg.workers, drop_last=False,
        # its own generator: creating the iterator must not draw from the global RNG, or a run
        # resumed mid-epoch would see different dropout masks than an uninterrupted one
        generator=torch.Generator().manual_seed(cfg.seed * 7919 + run.epoch))
    steps = run.order.steps()
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    run.net.train()
    bar = tqdm(total=steps, initial=run.step_in_epoch, desc=f"epoch {run.epoch + 1}/{cfg.epochs}",
               disable=not (cfg.progress and run.rank == 0), leave=False, dynamic_ncols=True)
    for batch in loader:
        if run.step_in_epoch >= steps:
            break
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            loss_sum, count = task.loss(run.net, batch, run.device)
        count = torch.as_tensor(count, dtype=torch.float32, device=run.device)
        if run.world > 1:  # normalise by the GLOBAL count; DDP averages gradients over ranks
            dist.all_reduce(count)
        loss = loss_sum.float() / count.clamp(min=1) * run.world
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.clip > 0:
            run.scaler.unscale_(run.opt)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip)
        run.scaler.step(run.opt)
        run.scaler.update()
        run.sched.step()
        if run.ema:
            run.ema.update()
        value_t = loss.detach() / run.world
        if run.world > 1:  # the global mean loss, for logging
            dist.all_reduce(value_t)
        value = value_t.item()
        run.epoch_loss += value
        run.step_in_epoch += 1
        run.global_step += 1
        if not math.isfinite(value):
            raise run_folder.diverged(run, f"loss {value} at step {run.global_step} (epoch {run.epoch + 1}, "
                                           f"step {run.step_in_epoch})")
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        if run.global_step % cfg.log_every == 0:
            run.log({"event": "train", "epoch": run.epoch + 1, "step": run.step_in_epoch,
                     "loss": value, "lr": run.sched.get_last_lr()[0], "time": time.time()})
        if cfg.save_every_steps and run.global_step % cfg.save_every_steps == 0:
            run.save("last.pt")
    bar.close()
    return run.epoch_loss / max(1, run.step_in_epoch)


def evaluate(run: Run) -> dict[str, float]:
    """Validate on rank 0 (others wait); returns the task's metrics."""
    metrics: dict[str, float] = {}
    if run.rank == 0:
        run.model.eval()
        with torch.no_grad(), (run.ema.applied() if run.ema else nullcontext()):
            metrics = run.task.validate(run.model, run.device)
    return metrics


def _improved(run: Run, value: float) -> bool:
    if not math.isfinite(value):
        print(f"warning: validation {run.task.selection_metric}={value}: never a best checkpoint", file=sys.stderr)
        return False
    if run.best is None:
        return True
    return value > run.best if run.task.higher_is_better else value < run.best


def _broadcast_stop(stop: bool, run: Run) -> bool:
    if run.world == 1:
        return stop
    flag = torch.tensor([int(stop)], device=run.device)
    dist.broadcast(flag, 0)
    return bool(flag.item())


def _init_checkpoint(task: Task, cfg: TrainConfig) -> dict:
    """The checkpoint named by train.init_from (weights only), checked to be of this task."""
    from .tasks.loading import read_checkpoint
    return read_checkpoint(cfg.init_from, expect=task.name)


def _open_run(task: Task, cfg: TrainConfig, resume: bool, overwrite: bool) -> Run:
    """The run folder checked (``run_folder``), the task set up, and a Run: fresh, initialised from
    ``train.init_from``, or restored from ``last.pt``."""
    rank, world, local_rank = dist_info()
    device = resolve_device(cfg.device, local_rank)
    init_distributed(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    last = Path(cfg.out_dir) / "last.pt"
    if rank == 0:
        run_folder.prepare(Path(cfg.out_dir), resume, overwrite)
        print(run_folder.data_line(task), flush=True)
    if world > 1:
        dist.barrier()
    state = run_folder.resume_state(task, last, device) if resume else None
    init = _init_checkpoint(task, cfg) if state is None and cfg.init_from else None
    if state is not None or init is not None:
        run_folder.adopt_extra(task, state or init, last if state is not None else cfg.init_from)
    task.setup(rank, world)
    run = Run(task, cfg, device, rank, world)
    if rank == 0:
        print(run_folder.sizes_line(task), flush=True)
    run_folder.start_from(run, state, init, cfg, last)
    return run


def fit(task: Task, resume: bool = False, overwrite: bool = False) -> dict:
    """Train ``task`` per ``task.cfg.train``; returns a summary (best metric, checkpoint paths).
    ``resume`` continues the run in ``train.out_dir``; ``overwrite`` moves its old outputs aside."""
    cfg: TrainConfig = task.cfg.train
    run = _open_run(task, cfg, resume, overwrite)
    rank, world, out, last = run.rank, run.world, run.out, run.out / "last.pt"
    t0 = time.time()
    while run.epoch < cfg.epochs:
        train_loss = train_one_epoch(run)
        run.epoch, run.step_in_epoch, run.epoch_loss = run.epoch + 1, 0, 0.0
        record = {"event": "epoch", "epoch": run.epoch, "train_loss": train_loss, "time": time.time() - t0}
        stop = False
        if run.epoch % cfg.val_every == 0 or run.epoch == cfg.epochs:
            metrics = evaluate(run)
            record["val"] = metrics
            if rank == 0:
                value = metrics[task.selection_metric]
                if _improved(run, value):
                    run.best, run.bad_epochs = value, 0
                    run.save("best.pt", with_training=False)
                else:
                    run.bad_epochs += 1
                stop = bool(cfg.patience) and run.bad_epochs >= cfg.patience and run.epoch < cfg.epochs
        run.history.append(record)
        run.log(record)
        if rank == 0:
            shown = " ".join(f"{k}={v:.4f}" for k, v in record.get("val", {}).items())
            print(f"epoch {run.epoch}/{cfg.epochs}  train_loss={train_loss:.4f}  {shown}", flush=True)
        run.save("last.pt")
        if _broadcast_stop(stop, run):
            if rank == 0:
                print(f"early stop: no {task.selection_metric} improvement for {cfg.patience} epochs")
            break
    if world > 1:
        dist.barrier()
    return {"best": run.best, "metric": task.selection_metric, "epochs": run.epoch,
            "best_checkpoint": str(out / "best.pt"), "last_checkpoint": str(last),
            "seconds": time.time() - t0, "history": run.history}
