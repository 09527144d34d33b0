"""Decoding throughput: captions/second for the decoders of LRCN Table 6 (greedy, beam 3/5/10,
best of 100 samples at T = 1.5), batched over a batch of images vs a per-image loop baseline (the same
decoder called with a batch of 1, image after image).

Model: a 1000-unit LRCN-2f (``captionkit.recurrent``) with a 10k-word vocabulary and 1280-d visual
features, random weights, eval mode, under ``torch.inference_mode()``. Random weights almost never
emit EOS (p ~ 1e-4 per step), so the step is wrapped to add +12 to EOS's logit once a caption has as
many words as its image's target length (8-12, mean 10): captions then end after ~10 words, as real
ones do, instead of all running to max_len. The wrapper carries its counters in the state, like any
model would.

    python eval/bench_decoding.py [--batch 64] [--max-len 20] [--threads N] [--quick]
                                  [--out eval/results/bench_decoding.json]

Prints a Markdown table and writes JSON. The issue asks for batched beam-5 >= 5x the per-image loop
on CPU with a batch of 64.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from captionkit.decoding import DecodeConfig, decode, select_state
from captionkit.recurrent import LRCNStack, RecurrentConfig

BOS, EOS = 1, 2  # 0 is the embedding's padding id
VOCAB, HIDDEN, VISUAL = 10_000, 1000, 1280
EOS_BOOST = 12.0  # e^12 * 1e-4 -> p(EOS) ~ 0.95 once a caption reaches its target length


def with_eos_after_target(step):
    """Wrap ``step`` so EOS becomes likely at each image's target length.

    state = (*model state, pos (B,) words generated so far, target (B,) target length).
    """
    def wrapped(tokens, state):
        *inner, pos, target = state
        logp, inner = step(tokens, tuple(inner))  # (R, V)
        logits = logp.clone()
        logits[:, EOS] += (pos >= target).to(logp.dtype) * EOS_BOOST
        return torch.log_softmax(logits, dim=1), (*inner, pos + 1, target)

    return wrapped


def build(device: torch.device, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = RecurrentConfig(variant="2f", hidden=HIDDEN, embed=HIDDEN, dropout=0.0)
    core = LRCNStack(cfg, vocab_size=VOCAB, visual_dim=VISUAL).to(device).eval()
    visual = torch.randn(batch, VISUAL, device=device)  # (B, D)
    target = 8 + torch.arange(batch, device=device) % 5  # (B,) 8..12 words
    pos = torch.zeros(batch, dtype=torch.long, device=device)
    state = core.init_state(visual) + (pos, target)
    return with_eos_after_target(core.step), state


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def run_method(step, state, cfg: DecodeConfig, device: torch.device, batch: int) -> dict:
    """Time one batched call and the per-image loop; compare their best captions."""
    decode(step, select_state(state, torch.arange(2, device=device)), cfg, bos=BOS, eos=EOS)  # warm
    batched_s, batched = timed(lambda: decode(step, state, cfg, bos=BOS, eos=EOS), device)

    def loop():
        return [decode(step, select_state(state, torch.tensor([i], device=device)), cfg,
                       bos=BOS, eos=EOS)[0] for i in range(batch)]

    loop_s, looped = timed(loop, device)
    # Sampling draws a different random stream per batch composition, so only the deterministic
    # decoders can be compared caption for caption.
    same = None if cfg.method == "sample" else \
        sum(a[0].tokens == b[0].tokens for a, b in zip(batched, looped)) / batch
    return {"batched_s": batched_s, "loop_s": loop_s,
            "batched_captions_per_s": batch / batched_s, "loop_captions_per_s": batch / loop_s,
            "speedup": loop_s / batched_s,
            "mean_words": sum(len(h[0].tokens) for h in batched) / batch,
            "finished": sum(h[0].finished for h in batched) / batch,
            "same_best_caption": same}


def methods(args) -> dict[str, DecodeConfig]:
    n = 20 if args.quick else 100
    return {"greedy": DecodeConfig(method="greedy", max_len=args.max_len),
            "beam 3": DecodeConfig(method="beam", beam_size=3, max_len=args.max_len),
            "beam 5": DecodeConfig(method="beam", beam_size=5, max_len=args.max_len),
            "beam 10": DecodeConfig(method="beam", beam_size=10, max_len=args.max_len),
            f"sample {n} (T=1.5)": DecodeConfig(method="sample", n=n, temperature=1.5,
                                                max_len=args.max_len)}


def table(rows: list[dict]) -> str:
    lines = ["| device | method | batched s | loop s | batched captions/s | loop captions/s "
             "| speedup | mean words | same best caption |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        same = "n/a" if r["same_best_caption"] is None else f"{r['same_best_caption']:.0%}"
        lines.append(f"| {r['device']} | {r['method']} | {r['batched_s']:.2f} | {r['loop_s']:.2f} "
                     f"| {r['batched_captions_per_s']:.1f} | {r['loop_captions_per_s']:.1f} "
                     f"| {r['speedup']:.1f}x | {r['mean_words']:.1f} | {same} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default 64)")
    parser.add_argument("--max-len", type=int, default=20, help="max tokens per caption (default 20)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's default)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 8, 20 samples instead of 100")
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even when available")
    parser.add_argument("--out", type=Path, default=Path("eval/results/bench_decoding.json"))
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batch = args.batch or (8 if args.quick else 64)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
    rows = []
    with torch.inference_mode():
        for device in devices:
            step, state = build(device, batch)
            for name, cfg in methods(args).items():
                result = run_method(step, state, cfg, device, batch)
                rows.append({"device": device.type, "method": name, "batch": batch, **result})
                print(f"{device.type} {name}: {result['speedup']:.1f}x", flush=True)
    print(table(rows))
    meta = {"batch": batch, "max_len": args.max_len, "vocab": VOCAB, "hidden": HIDDEN,
            "visual_dim": VISUAL, "variant": "2f", "eos_after": "8-12 words (+12 EOS logit)",
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name() if "cuda" in [d.type for d in devices] else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
