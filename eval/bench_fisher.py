"""Benchmark RNN-FV extraction: sentences/second, closed-form batched output-layer gradient vs one
autograd backward pass per sentence (Lev et al.'s FV definition computed the obvious way).

    python eval/bench_fisher.py [--sentences 2000] [--loop-sentences 200] [--threads 2] [--out runs/bench_fisher.json]

Uses Flickr8k dev captions embedded with GloVe 50-d when ../shared/data is present (else random
sequences with Flickr8k-like lengths). The LMs are untrained: speed does not depend on the weights.
Both methods are checked to agree on the first sentences before timing.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from captionkit.fisher.rnn import (SentenceLM, SentenceLMConfig, fisher_vectors, fisher_vectors_autograd,
                               sample_coordinates)

DATA = Path("../shared/data")


def sentences(n: int, vocab: int, seed: int = 0):
    """n sentences (T_i, 50) and class targets (T_i,); real captions when the data folder is there."""
    g = torch.Generator().manual_seed(seed)
    tok, glove = DATA / "flickr8k/Flickr8k.token.txt", DATA / "glove/glove.6B.50d.subset.txt"
    if tok.is_file() and glove.is_file():
        from captionkit.data.wordvec import embed_sentences, read_glove
        caps = [line.split("\t", 1)[1] for line in tok.read_text().splitlines()[:n]]
        seqs, _, _ = embed_sentences(caps, read_glove(glove))
        source = f"Flickr8k captions (first {n}), GloVe 50-d"
    else:
        seqs = [torch.randn(int(torch.randint(6, 20, (1,), generator=g)), 50, generator=g) for _ in range(n)]
        source = "random sequences, lengths 6-19"
    targets = [torch.randint(0, vocab, (s.size(0),), generator=g) for s in seqs]
    return seqs, targets, source


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--loop-sentences", type=int, default=200, help="the autograd loop is slow: time fewer")
    ap.add_argument("--vocab", type=int, default=2500, help="classification softmax size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench_fisher.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seqs, targets, source = sentences(args.sentences, args.vocab)
    variants = [("regression", 100, None), ("classification", 512, 20000), ("classification", 512, 0)]
    rows = []
    for kind, hidden, k in variants:
        lm = SentenceLM(SentenceLMConfig(kind=kind, hidden=hidden), 50, args.vocab)
        y = targets if kind == "classification" else None
        coords = sample_coordinates(lm, k) if k else None
        check = fisher_vectors(lm, seqs[:8], y[:8] if y else None, coords)
        ref = fisher_vectors_autograd(lm, seqs[:8], y[:8] if y else None, coords)
        err = (check - ref).abs().max().item() / ref.abs().max().item()
        n_closed = args.sentences if (k or kind == "regression") else min(args.sentences, 500)
        _, t_closed = timed(fisher_vectors, lm, seqs[:n_closed], y[:n_closed] if y else None, coords, 128)
        n_loop = args.loop_sentences
        _, t_loop = timed(fisher_vectors_autograd, lm, seqs[:n_loop], y[:n_loop] if y else None, coords)
        rows.append({"variant": f"{kind} H={hidden}" + (f" ({k} coords)" if k else " (full)"),
                     "fv_dim": coords.numel() if k else lm.fv_dim, "closed_sent_per_s": n_closed / t_closed,
                     "autograd_sent_per_s": n_loop / t_loop, "speedup": (n_closed / t_closed) / (n_loop / t_loop),
                     "max_rel_diff": err, "closed_sentences": n_closed, "loop_sentences": n_loop})
    print(f"RNN-FV extraction, {source}; CPU threads={args.threads}; torch {torch.__version__}")
    print("| variant | FV dim | closed form (sent/s) | autograd loop (sent/s) | speed-up | max rel. diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['fv_dim']} | {r['closed_sent_per_s']:.0f} | {r['autograd_sent_per_s']:.0f} "
              f"| {r['speedup']:.1f}x | {r['max_rel_diff']:.1e} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"source": source, "threads": args.threads, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
