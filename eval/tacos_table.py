"""LRCN section 6 on the TACoS tuple benchmark: (a), (b), (c) and an SMT-like baseline -> one table.

Steps: build the benchmark (``captionkit.data.tacos``) unless it is there; train (or, with --reuse,
reuse) ``recipes/tacos_{a,b,c}.toml`` through ``train.fit``; describe every test segment once with
each model's best checkpoint (greedy unless --beam); score corpus BLEU-4 with sacrebleu (the paper's
metric) and BLEU-1..4 / METEOR / ROUGE-L / CIDEr with ``score_captions``; print a Markdown table and
write JSON. The SMT-like baseline answers each predicted (max) tuple with the most frequent training
sentence of the training segments whose CRF max tuple equals it, backing off to (activity, object),
then object, then activity, then the most frequent training sentence.

    python eval/tacos_table.py --out runs/tacos_table.json            # about 20 CPU minutes
    python eval/tacos_table.py --reuse --out runs/tacos_table.json    # score existing checkpoints
    python eval/tacos_table.py --reuse --runs runs/tacos_final --out eval/results/tacos_table.json \
        --md eval/results/tacos_table.md                               # the table in eval/results

Per model it also reports the number of distinct test sentences and the tuple gain (test per-word
cross-entropy with the segments' tuples shuffled minus with their own): both low = the tuple is ignored.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from captionkit.data import tacos  # noqa: E402
from captionkit.data.tuples import TupleSet, load_tuples  # noqa: E402
from captionkit.decoding import DecodeConfig  # noqa: E402
from captionkit.metrics import score_captions  # noqa: E402
from captionkit.tasks import load_task  # noqa: E402
from captionkit.tasks.loading import load_checkpoint, read_checkpoint  # noqa: E402
from captionkit.tasks.describe import bleu4, describe_segments, encode_tuples  # noqa: E402
from captionkit.train import fit  # noqa: E402
from captionkit.vocab import Vocab, pad_captions  # noqa: E402

ROWS = {"a": "(a) LSTM encoder-decoder, CRF max", "b": "(b) LSTM decoder, CRF max",
        "c": "(c) LSTM decoder, CRF probabilities"}
PAPER = {"smt": "24.9-26.9", "a": "25.3", "b": "27.4", "c": "28.8"}


def smt_baseline(train: TupleSet, test: TupleSet, norm) -> list[str]:
    """Most frequent training sentence for each test segment's predicted tuple (with back-off)."""
    keys = [lambda t: tuple(t.values()), lambda t: (t["activity"], t["object"]), lambda t: t["object"],
            lambda t: t["activity"]]
    tables = [{} for _ in keys]
    for seg in train.segments:
        for sent in seg.sentences:
            for key, table in zip(keys, tables):
                table.setdefault(key(seg.tuple), Counter())[norm(sent)] += 1
    fallback = Counter(norm(s) for seg in train.segments for s in seg.sentences).most_common(1)[0][0]
    out = []
    for seg in test.segments:
        hit = next((table[key(seg.tuple)] for key, table in zip(keys, tables) if key(seg.tuple) in table), None)
        out.append(hit.most_common(1)[0][0] if hit else fallback)
    return out


def train_or_reuse(arch: str, bench: Path, runs: Path, reuse: bool, overrides: list[str]) -> tuple[Path, float]:
    out_dir = runs / f"tacos_{arch}"
    best = out_dir / "best.pt"
    if reuse and best.is_file():
        return best, 0.0
    sets = [f"data.train={json.dumps(str(bench / 'train.json'))}", f"data.val={json.dumps(str(bench / 'val.json'))}",
            f"train.out_dir={json.dumps(str(out_dir))}", "train.progress=false", *overrides]
    task = load_task(ROOT / "recipes" / f"tacos_{arch}.toml", sets)
    t0 = time.time()
    fit(task, resume=(out_dir / "last.pt").is_file())
    return best, time.time() - t0


@torch.inference_mode()
def tuple_reliance(model, task, ts: TupleSet, seed: int = 0, batch_size: int = 256) -> dict:
    """Per-word cross-entropy of ``ts``' reference sentences given each segment's own tuple, and given a
    seeded permutation of the segments' tuples; ``gain_from_tuple`` = shuffled - true (nats/word): how
    much the model's language actually depends on its tuple input."""
    import torch.nn.functional as F

    labels, probs = encode_tuples(ts, task.slots, task.labels)
    pairs = [(n, ids[:task.cfg.data.max_len]) for n, seg in enumerate(ts.segments)
             for ids in task.vocab.encode_batch(seg.sentences) if ids]
    perm = torch.randperm(len(ts.segments), generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    out = {}
    for name, index in (("true", torch.arange(len(ts.segments))), ("shuffled", perm)):
        total, words = 0.0, 0
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s:s + batch_size]
            inp, tgt = pad_captions([ids for _, ids in chunk], task.vocab)
            seg = index[torch.tensor([n for n, _ in chunk])]
            logits = model(inp, labels[seg], probs[seg])  # (B, T, V)
            total += F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), ignore_index=task.vocab.pad,
                                     reduction="sum").item()
            words += int((tgt != task.vocab.pad).sum())
        out[name] = total / words
    model.train(was_training)
    return out | {"gain_from_tuple": out["shuffled"] - out["true"]}


def score(hyps: list[str], test: TupleSet, norm) -> dict:
    refs = [[norm(s) for s in seg.sentences] for seg in test.segments]
    report = score_captions({str(i): r for i, r in enumerate(refs)}, {str(i): h for i, h in enumerate(hyps)},
                            metrics=("bleu", "meteor", "rouge", "cider"), official=True)
    return {"BLEU4_sacrebleu": bleu4(hyps, refs), **report.scores, "settings": report.settings}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="runs/tacos_bench", help="benchmark folder (built if missing)")
    ap.add_argument("--runs", default="runs", help="checkpoints go to RUNS/tacos_{a,b,c}")
    ap.add_argument("--noise", type=float, default=1.0, help="CRF noise when building the benchmark")
    ap.add_argument("--reuse", action="store_true", help="reuse RUNS/tacos_*/best.pt when present")
    ap.add_argument("--archs", default="abc")
    ap.add_argument("--beam", type=int, default=1, help="beam width at test time (1 = greedy)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared CPU)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override for all")
    ap.add_argument("--out", default="runs/tacos_table.json")
    ap.add_argument("--md", default=None, help="also write the Markdown table (with the commands) here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    bench = Path(args.bench)
    if not (bench / "test.json").is_file():
        print(json.dumps(tacos.write_benchmark(bench, noise=args.noise), indent=1), flush=True)
    stats = json.loads((bench / "stats.json").read_text())
    train, test = load_tuples(bench / "train.json"), load_tuples(bench / "test.json")
    decode_cfg = DecodeConfig(method="beam", beam_size=args.beam) if args.beam > 1 else DecodeConfig()
    results, timings = {}, {}
    for arch in args.archs:
        best, seconds = train_or_reuse(arch, bench, Path(args.runs), args.reuse, args.set)
        timings[arch] = seconds
        task, model = load_checkpoint(best, "describe")
        labels, probs = encode_tuples(test, task.slots, task.labels)
        hyps = [h[0][0] for h in describe_segments(model, labels, probs, task.vocab, decode_cfg)]
        results[arch] = score(hyps, test, lambda s, v=task.vocab: " ".join(v.words(s)))
        results[arch]["examples"] = hyps[:5]
        results[arch]["distinct_sentences"] = len(set(hyps))   # low = the tuple is being ignored
        results[arch]["best_val_BLEU4"] = read_checkpoint(best, "describe")["best"]
        results[arch]["tuple_reliance"] = tuple_reliance(model, task, test)
        results[arch]["model"] = {k: getattr(task.cfg.model, k) for k in ("arch", "hidden", "embed", "tuple_proj",
                                                                          "tuple_init")}
        print(f"{ROWS[arch]}: BLEU-4 {results[arch]['BLEU4_sacrebleu']:.2f}", flush=True)
    vocab = Vocab.build((s for seg in train.segments for s in seg.sentences), 2)
    norm = lambda s: " ".join(vocab.words(s))  # noqa: E731
    smt = smt_baseline(train, test, norm)
    results["smt"] = score(smt, test, norm) | {"distinct_sentences": len(set(smt))}
    rows = [("smt", "SMT-like: most frequent training sentence for the predicted tuple")] + \
           [(a, ROWS[a]) for a in args.archs]
    lines = ["| model | BLEU-4 (sacrebleu) | paper BLEU-4 | BLEU-4 (coco) | METEOR | ROUGE-L | CIDEr | "
             "distinct sentences | tuple gain (nats/word) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, name in rows:
        r = results[key]
        gain = r["tuple_reliance"]["gain_from_tuple"] if "tuple_reliance" in r else None
        lines.append(f"| {name} | {r['BLEU4_sacrebleu']:.2f} | {PAPER[key]} | {100 * r['Bleu_4']:.2f} | "
                     f"{100 * r.get('METEOR', float('nan')):.2f} | {100 * r['ROUGE_L']:.2f} | {100 * r['CIDEr']:.2f} | "
                     f"{r['distinct_sentences']} | {'-' if gain is None else f'{gain:.3f}'} |")
    table = "\n".join(lines)
    print(f"\nTACoS tuple benchmark, test split: {len(test.segments)} segments, "
          f"{sum(len(s.sentences) for s in test.segments)} reference sentences, CRF noise {stats['noise']}; "
          f"decoding: {'beam ' + str(args.beam) if args.beam > 1 else 'greedy'}\n\n{table}\n")
    out = {"table": table, "results": results, "benchmark": stats, "train_seconds": timings,
           "total_seconds": time.time() - t_start, "beam": args.beam, "overrides": args.set}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    if args.md:
        cmd = "python eval/tacos_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(
            f"# LRCN section 6 on the TACoS tuple benchmark (test split)\n\n"
            f"{len(test.segments)} segments, {sum(len(s.sentences) for s in test.segments)} reference sentences, "
            f"CRF noise {stats['noise']}; decoding: {'beam ' + str(args.beam) if args.beam > 1 else 'greedy'}. "
            f"Tuple gain = test per-word cross-entropy with shuffled tuples minus with the true ones.\n\n"
            f"{table}\n\nMade by: `{cmd}`\n")
        print(f"wrote {args.md}")
    print(f"wrote {args.out} ({out['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
