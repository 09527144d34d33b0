"""Training throughput of a recipe: optimisation steps/s and captions (or clips)/s per precision.

Builds the recipe's task exactly as ``captionkit train`` does (vocabulary, feature cache, data
loader, optimiser, schedule, clipping, GradScaler), runs ``--warmup`` steps untimed, then times
``--steps`` more through the same ``train_one_epoch`` the trainer uses, and reports the peak GPU
memory. Validation is not included (``captionkit train``'s log.jsonl gives whole-epoch times).

    python eval/bench_train.py RECIPE.toml [--set KEY=VALUE ...] [--amp off,bf16,fp16]
                               [--device auto|cpu|cuda] [--warmup 20] [--steps 200]
                               [--out eval/results/bench_train.json]

On CPU ``--amp`` runs "off" (fp32) and "bf16" (CPU autocast, issue 21); fp16 is CUDA-only. For LRCN
captioners the table also gives the achieved GFLOP/s (3 x the forward matmul FLOPs of the recurrent
layers and the word classifier per padded token, the FLOPs of nearly the whole step) and, on CPU, the
"MFU" against a plain fp32 and bf16 matmul of the model's layer shape measured in the same run.
Prints a Markdown table and writes JSON (appending a run to the file's list, so several recipes and
machines share one file).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from bench_step import matmul_peak, step_flops_per_row
from captionkit.tasks import load_task
from captionkit.train import Run, resolve_device, train_one_epoch


def count_tokens(task) -> list[int]:
    """Wrap ``task.loss`` to count the padded caption positions it trains on (captioning tasks)."""
    counter, loss = [0], task.loss

    def counted(model, batch, device):
        if "inp" in batch:
            counter[0] += batch["inp"].numel()
        return loss(model, batch, device)
    task.loss = counted
    return counter


def bench(recipe: str, overrides: list[str], amp: str, device_name: str, warmup: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        task = load_task(recipe, overrides + [f"train.amp={amp!r}", f"train.out_dir={tmp!r}",
                                              "train.progress=false"])
        cfg = task.cfg.train
        device = resolve_device(device_name if device_name != "auto" else cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        task.setup(0, 1)
        run = Run(task, cfg, device, 0, 1)
        if run.order.steps() < warmup + steps:
            raise SystemExit(f"{recipe}: an epoch has {run.order.steps()} steps, fewer than "
                             f"--warmup {warmup} + --steps {steps}")
        cfg.max_steps_per_epoch = warmup
        train_one_epoch(run)  # (warm-up: allocator, cuDNN plans, DataLoader workers)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        cfg.max_steps_per_epoch = warmup + steps
        tokens = count_tokens(task)
        t0 = time.perf_counter()
        loss = train_one_epoch(run)  # continues from step `warmup`
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)")
        core = getattr(run.model, "core", None)
        flops = 3 * step_flops_per_row(core) * tokens[0] if hasattr(core, "layers") else None
        return {"recipe": recipe, "overrides": overrides, "device": str(device), "device_name": name,
                "gflops_per_s": flops / seconds / 1e9 if flops else None,
                "matmul_shape": (cfg.batch_size * 16, core.layers[-1].input_size + core.cfg.hidden,
                                 4 * core.cfg.hidden) if flops else None,
                "amp": "off" if not run.use_amp else str(run.amp_dtype).removeprefix("torch."),
                "batch_size": cfg.batch_size, "steps": steps, "seconds": seconds,
                "steps_per_s": steps / seconds, "items_per_s": steps * cfg.batch_size / seconds,
                "peak_gpu_mib": peak, "steps_per_epoch": run.order.steps(),
                "epoch_s_estimate": run.order.steps() * seconds / steps, "mean_loss": loss,
                "torch": torch.__version__}


def table(rows: list[dict]) -> str:
    lines = ["| recipe | device | amp | batch | steps/s | items/s | train s/epoch (est.) | peak GPU MiB "
             "| GFLOP/s | MFU vs fp32 matmul | MFU vs bf16 matmul |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        peak = f"{r['peak_gpu_mib']:.0f}" if r["peak_gpu_mib"] is not None else "-"
        gf, mm = r.get("gflops_per_s"), r.get("matmul_gflops") or {}
        cells = [f"{gf:.1f}" if gf else "-"] + [f"{gf / mm[k]:.0%}" if gf and k in mm else "-"
                                               for k in ("fp32", "bf16")]
        lines.append(f"| {Path(r['recipe']).stem} | {r['device_name']} | {r['amp']} | {r['batch_size']} "
                     f"| {r['steps_per_s']:.1f} | {r['items_per_s']:.0f} | {r['epoch_s_estimate']:.0f} | {peak} "
                     f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--amp", default="off,bf16,fp16", help="comma-separated: off, bf16, fp16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="eval/results/bench_train.json")
    args = parser.parse_args(argv)
    amps = [a.strip() for a in args.amp.split(",") if a.strip()]
    bad = [a for a in amps if a not in ("off", "bf16", "fp16")]
    if bad:
        parser.error(f"--amp: unknown precision {bad[0]!r} (use off, bf16, fp16)")
    cuda = (args.device == "auto" and torch.cuda.is_available()) or args.device.startswith("cuda")
    rows = [bench(args.recipe, args.overrides, a, args.device, args.warmup, args.steps)
            for a in (amps if cuda else [a for a in amps if a != "fp16"])]
    for r in rows:  # the CPU's matmul throughput at the model's layer shape, in this run
        if r["device"] == "cpu" and r["matmul_shape"]:
            r["matmul_gflops"] = {"fp32": matmul_peak(*r["matmul_shape"], torch.float32),
                                  "bf16": matmul_peak(*r["matmul_shape"], torch.bfloat16)}
    print(table(rows))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(previous + rows, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(previous + rows) + "\n")  # every run in the file
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
