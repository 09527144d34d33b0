"""Time each caption metric, official (pycocoevalcap) versus captionkit's fast path.

Data: COCO val2017 references (5,000 images x ~5 refs) with perturbed references as results (words
dropped, swapped, repeated; 20% taken from another image). Each timing is the best of --repeat runs
on already-tokenized captions, except the tokenizer rows. Also checks that the fast path equals the
official one (max |difference| overall and per image).

    python eval/bench_metrics.py --out eval/results/bench_metrics.json [--no-meteor]
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np

from captionkit.metrics import fast, official
from captionkit.metrics.tokenize import find_java, ptb_tokenize

DEFAULT_REFS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco" / "captions_val2017.json"


def perturbed(refs: dict[str, list[str]], seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    ids = list(refs)
    out = {}
    for i in ids:
        w = rng.choice(refs[rng.choice(ids)] if rng.random() < 0.2 else refs[i]).split()
        w = [x for x in w if rng.random() > 0.15] or w[:1]
        if len(w) > 3 and rng.random() < 0.3:
            k = rng.randrange(len(w) - 1)
            w[k], w[k + 1] = w[k + 1], w[k]
        out[i] = " ".join(w)
    return out


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--references", default=str(DEFAULT_REFS))
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-meteor", action="store_true", help="skip METEOR (JVM, ~a minute)")
    ap.add_argument("--out", default="eval/results/bench_metrics.json")
    a = ap.parse_args(argv)

    refs: dict[str, list[str]] = {}
    for ann in json.loads(Path(a.references).read_text())["annotations"]:
        refs.setdefault(str(ann["image_id"]), []).append(ann["caption"])
    refs = {k: refs[k] for k in list(refs)[:a.images]}
    res_raw = perturbed(refs)
    rows, java = [], find_java()

    def row(metric, path, seconds, note=""):
        rows.append({"metric": metric, "path": path, "seconds": round(seconds, 4), "note": note})

    tokenize_all = lambda backend: (ptb_tokenize(refs, backend),  # noqa: E731
                                    ptb_tokenize({k: [v] for k, v in res_raw.items()}, backend))
    from captionkit.metrics import ptb
    ptb.tokenize_line.cache_clear()
    t_py, (gts, res) = best_of(lambda: (ptb.tokenize_line.cache_clear(), tokenize_all("python"))[1], 1)
    row("PTB tokenize", "fast (Python)", t_py, "cold cache")
    if java:
        t_j, (gts_j, res_j) = best_of(lambda: tokenize_all("java"), 1)
        row("PTB tokenize", "official (Java)", t_j, "one JVM")
        row("PTB tokenize", "equal", 0.0, str(gts_j == gts and res_j == res))
    hyp = {k: v[0] for k, v in res.items()}

    t_ob, (b, bs) = best_of(lambda: official.bleu(gts, res), a.repeat)
    t_oc, (c, cs) = best_of(lambda: official.cider(gts, res), a.repeat)
    t_or, _ = best_of(lambda: official.rouge(gts, res), 1)
    prepared = lambda: fast._prepare(gts, hyp)  # noqa: E731
    t_fb, (fb, fbs) = best_of(lambda: fast.bleu(gts, hyp), a.repeat)
    t_fc, (fc, fcs) = best_of(lambda: fast.cider_d(gts, hyp), a.repeat)
    t_fboth, _ = best_of(lambda: fast.bleu_cider(gts, hyp), a.repeat)
    t_prep, _ = best_of(prepared, a.repeat)
    diff_b = max(max(abs(fb[k] - b[k]) for k in range(4)),
                 max(float(np.abs(fbs[:, k] - np.array(bs[k])).max()) for k in range(4)))
    diff_c = max(abs(fc - c), float(np.abs(fcs - cs).max()))
    row("BLEU-1..4", "official", t_ob)
    row("BLEU-1..4", "fast", t_fb, f"max abs diff {diff_b:.1e}")
    row("CIDEr-D", "official", t_oc)
    row("CIDEr-D", "fast", t_fc, f"max abs diff {diff_c:.1e}; speed-up {t_oc / t_fc:.1f}x")
    row("BLEU + CIDEr-D", "fast (one n-gram pass)", t_fboth, f"of which n-gram indexing {t_prep:.3f} s")
    row("ROUGE-L", "official", t_or)
    if java and not a.no_meteor:
        t_m, _ = best_of(lambda: official.meteor(gts, res), 1)
        row("METEOR", "official (supervised)", t_m, "includes JVM start")
    skip = official.spice_missing(java)
    if skip:
        row("SPICE", "official", float("nan"), f"skipped: {skip[:60]}")

    n_refs = sum(len(v) for v in refs.values())
    print(f"{len(refs)} images x {n_refs / len(refs):.2f} refs; {platform.processor() or platform.machine()}")
    print("| metric | path | seconds | note |\n|---|---|---:|---|")
    for r in rows:
        print(f"| {r['metric']} | {r['path']} | {r['seconds']:.3f} | {r['note']} |")
    out = {"images": len(refs), "references": n_refs, "rows": rows, "cider_speedup": t_oc / t_fc,
           "cider_max_abs_diff": diff_c, "bleu_max_abs_diff": diff_b, "python": platform.python_version()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    return 0 if (t_oc / t_fc >= 5 and diff_c < 1e-6 and diff_b < 1e-6) else 1


if __name__ == "__main__":
    raise SystemExit(main())
