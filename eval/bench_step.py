"""The decoding step against the CPU: captionkit's ``LRCNStack.step`` vs a fused-cell reference.

Three step functions on the SAME weights (LRCN-2f, hidden 1000, vocabulary 10k, 1280-d visual
features, the model of ``eval/bench_decoding.py``, captions ending after 8-12 words):
  ``captionkit``   ``LRCNStack.step`` as shipped (``recurrent.lstm_cell``: two addmm per layer)
  ``reference``    a fused cell written out here, independently: addmm(b, x, W_ih^T), addmm_(h, W_hh^T),
                   the gate nonlinearities, and the output layer; bias sums precomputed once
  ``nn.LSTM call`` the pre-issue-21 step: ``nn.LSTM`` called for one time step per layer
Each decodes the same batch (greedy and beam 5); rounds interleave the three (the cores are shared,
so timings are noisy) and medians are reported, with the ratio captionkit / reference (the issue's
target: <= 1.15) and whether the captions are identical.

CPU "MFU": the step's matmul FLOPs (2 * rows * (sum over layers 4H(in+H) + H*V)) per second, against a
plain fp32 and bf16 matmul of the same shapes measured in the same run (``matmul_peak``).

    python eval/bench_step.py [--batch 64] [--rounds 5] [--threads 2] [--max-len 20]
                              [--step-only] [--out eval/results/bench_step.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench_decoding import BOS, EOS, HIDDEN, VISUAL, VOCAB, with_eos_after_target
from captionkit.decoding import DecodeConfig, decode
from captionkit.recurrent import LRCNStack, RecurrentConfig


def setup(batch: int, seed: int = 0):
    """bench_decoding's model and state: LRCN-2f, random weights, targets of 8-12 words."""
    torch.manual_seed(seed)
    cfg = RecurrentConfig(variant="2f", hidden=HIDDEN, embed=HIDDEN, dropout=0.0)
    core = LRCNStack(cfg, vocab_size=VOCAB, visual_dim=VISUAL).eval()
    visual = torch.randn(batch, VISUAL)  # (B, D)
    target = 8 + torch.arange(batch) % 5  # (B,)
    return core, core.init_state(visual) + (torch.zeros(batch, dtype=torch.long), target)


def reference_step(core):
    """A fused-cell step for an LRCN-2f LSTM stack, from its parameters (state layout as ``core``)."""
    layers = [(layer.weight_ih_l0, layer.weight_hh_l0, (layer.bias_ih_l0 + layer.bias_hh_l0).detach())
              for layer in core.layers]

    def step(tokens, state):
        visual, x, new = state[-1], core.embed(tokens), []  # (B, D), (B, E)
        for i, (w_ih, w_hh, b) in enumerate(layers):
            inp = torch.cat([x, visual], 1) if i == 1 else x  # 2f: the image enters layer 2
            g = torch.addmm(b, inp, w_ih.t()).addmm_(state[2 * i], w_hh.t())  # (B, 4H)
            gi, gf, gg, go = g.chunk(4, 1)
            c = torch.sigmoid(gf) * state[2 * i + 1] + torch.sigmoid(gi) * torch.tanh(gg)
            x = torch.sigmoid(go) * torch.tanh(c)  # (B, H)
            new += [x, c]
        logits = F.linear(x, core.out.weight, core.out.bias)  # (B, V)
        return torch.log_softmax(logits, 1), tuple(new) + (visual,)
    return step


def sequence_call_step(core):
    """The step before issue 21: one ``nn.LSTM`` call per layer for a single time step."""
    def step(tokens, state):
        visual, x, new = state[-1], core.embed(tokens).unsqueeze(1), []  # (B, 1, E)
        for i, layer in enumerate(core.layers):
            h, c = state[2 * i].unsqueeze(0).contiguous(), state[2 * i + 1].unsqueeze(0).contiguous()
            x, (h, c) = layer(core._layer_input(i, x, visual), (h, c))  # (B, 1, H)
            new += [h.squeeze(0), c.squeeze(0)]
        logits = core.out(x.squeeze(1))  # (B, V)
        return torch.log_softmax(logits, -1), tuple(new) + (visual,)
    return step


def step_flops_per_row(core) -> int:
    """Multiply-adds x 2 of one step for one row: every layer's gates and the output layer."""
    total = sum(4 * layer.hidden_size * (layer.input_size + layer.hidden_size) for layer in core.layers)
    return 2 * (total + core.out.in_features * core.out.out_features)


def matmul_peak(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """GFLOP/s of a plain (m, k) @ (k, n) matmul in ``dtype`` on this CPU, now (median of short runs)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b  # warm
    rates, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * m * k * n / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def counting(step, counter: list[int]):
    """Wrap ``step`` to count the rows (hypotheses) it advances."""
    def wrapped(tokens, state):
        counter[0] += tokens.size(0)
        return step(tokens, state)
    return wrapped


def run_round(steps: dict, state, cfg: DecodeConfig, flops_row: int) -> dict[str, dict]:
    out = {}
    for name, step in steps.items():
        rows = [0]
        t0, c0 = time.perf_counter(), time.process_time()
        hyps = decode(counting(step, rows), state, cfg, bos=BOS, eos=EOS)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = {"seconds": seconds, "cpu_seconds": cpu, "gflops": rows[0] * flops_row / seconds / 1e9,
                     "captions": [h[0].tokens for h in hyps]}
    return out


def single_step_ms(steps: dict, state, batch: int, rounds: int = 15) -> dict[str, dict]:
    """One step at batch ``batch`` (words mid-caption), interleaved: median wall and process-CPU ms."""
    tokens = torch.randint(3, VOCAB, (batch,), generator=torch.Generator().manual_seed(0))  # (B,)
    times: dict[str, list] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(3):
                step(tokens, state)
            times[name].append(((time.perf_counter() - t0) / 3e-3, (time.process_time() - c0) / 3e-3))
    return {name: {"wall_ms": statistics.median(w for w, _ in v), "cpu_ms": statistics.median(c for _, c in v)}
            for name, v in times.items()}


def bench_method(steps: dict, state, cfg: DecodeConfig, rounds: int, flops_row: int) -> dict:
    runs = [run_round(steps, state, cfg, flops_row) for _ in range(rounds)]
    result = {}
    for name in steps:
        result[name] = {"median_s": statistics.median(r[name]["seconds"] for r in runs),
                        "median_cpu_s": statistics.median(r[name]["cpu_seconds"] for r in runs),
                        "min_s": min(r[name]["seconds"] for r in runs),  # noise only adds time
                        "gflops": statistics.median(r[name]["gflops"] for r in runs),
                        "same_captions_as_reference":
                            runs[0][name]["captions"] == runs[0]["reference"]["captions"]}
    result["ratio_captionkit_over_reference"] = result["captionkit"]["median_s"] / result["reference"]["median_s"]
    result["min_ratio_captionkit_over_reference"] = result["captionkit"]["min_s"] / result["reference"]["min_s"]
    result["cpu_ratio_captionkit_over_reference"] = \
        result["captionkit"]["median_cpu_s"] / result["reference"]["median_cpu_s"]
    result["speedup_vs_nn_lstm_call"] = result["nn.LSTM call"]["median_s"] / result["captionkit"]["median_s"]
    return result


def table(results: dict, peaks: dict) -> str:
    lines = ["| method | step | median s | ratio to reference | best s | best ratio | CPU s (process) "
             "| CPU ratio | GFLOP/s | MFU vs fp32 matmul | MFU vs bf16 matmul | same captions |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for method, res in results.items():
        for name in ("captionkit", "reference", "nn.LSTM call"):
            r = res[name]
            lines.append(f"| {method} | {name} | {r['median_s']:.2f} "
                         f"| {r['median_s'] / res['reference']['median_s']:.2f}x | {r['min_s']:.2f} "
                         f"| {r['min_s'] / res['reference']['min_s']:.2f}x | {r['median_cpu_s']:.2f} "
                         f"| {r['median_cpu_s'] / res['reference']['median_cpu_s']:.2f}x | {r['gflops']:.1f} "
                         f"| {r['gflops'] / peaks['fp32']:.0%} | {r['gflops'] / peaks['bf16']:.0%} "
                         f"| {'yes' if r['same_captions_as_reference'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=20)
    parser.add_argument("--step-only", action="store_true", help="time single steps only, no decoding")
    parser.add_argument("--out", type=Path, default=Path("eval/results/bench_step.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with torch.inference_mode():
        core, state = setup(args.batch)
        steps = {"captionkit": core.step, "reference": reference_step(core),
                 "nn.LSTM call": sequence_call_step(core)}
        steps = {name: with_eos_after_target(step) for name, step in steps.items()}
        shape = (args.batch, HIDDEN + HIDDEN + VISUAL, 4 * HIDDEN)  # layer 2's fused gate matmul
        peaks = {"fp32": matmul_peak(*shape, torch.float32), "bf16": matmul_peak(*shape, torch.bfloat16)}
        flops_row = step_flops_per_row(core)
        one = single_step_ms(steps, state, args.batch)
        print("one step: " + ", ".join(f"{k} {v['wall_ms']:.0f} ms wall / {v['cpu_ms']:.0f} ms CPU"
                                       for k, v in one.items()), flush=True)
        results = {}
        for name, cfg in {"greedy": DecodeConfig(method="greedy", max_len=args.max_len),
                          "beam 5": DecodeConfig(method="beam", beam_size=5, max_len=args.max_len)}.items():
            if args.step_only:
                break
            results[name] = bench_method(steps, state, cfg, args.rounds, flops_row)
            print(f"{name}: captionkit/reference {results[name]['ratio_captionkit_over_reference']:.2f}x, "
                  f"{results[name]['speedup_vs_nn_lstm_call']:.2f}x faster than the nn.LSTM call", flush=True)
    print(f"matmul {shape}: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")
    print(table(results, peaks))
    meta = {"batch": args.batch, "hidden": HIDDEN, "vocab": VOCAB, "visual_dim": VISUAL, "variant": "2f",
            "rounds": args.rounds, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "matmul_shape": shape,
            "matmul_gflops": peaks, "step_flops_per_row": flops_row, "one_step_ms": one}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(f"`python eval/bench_step.py --batch {args.batch} --rounds "
                                           f"{args.rounds} --threads {args.threads}"
                                           f"{' --step-only' if args.step_only else ''}`\n\n"
                                           f"matmul {shape}: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 "
                                           f"{peaks['bf16']:.1f} GFLOP/s\n\none step (median of 15 "
                                           f"interleaved rounds): {one}\n\n{table(results, peaks)}\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
