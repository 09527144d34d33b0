"""METEOR 1.5 in Python versus ``meteor-1.5.jar``: agreement and speed, in one run.

Data: (1) COCO val2017 (5,000 images x ~5 references) with perturbed references as results, as in
``eval/bench_metrics.py``; (2) the coco-caption demo: ``captions_val2014_fakecap_results.json``
against ``captions_val2014.json`` (read from inside pycocoevalcap's ``spice-1.0.jar``). Captions are
PTB-tokenized first (captionkit's tokenizer, equal to the Java one on COCO), as pycocoevalcap does.

Reported: corpus METEOR of both and their difference; images whose scores differ by more than 1e-6
(each listed with both scores and the captions); end-to-end seconds of the jar (JVM start and table
loading included; the same SCORE/EVAL protocol as pycocoevalcap) and of the Python METEOR in a fresh
interpreter (interpreter start, imports, resource loading from the warm cache, scoring); BLEU +
METEOR + ROUGE-L + CIDEr-D without Java, also in a fresh interpreter (imports and resource loading
included, reading the input file not), from raw captions (captionkit's PTB tokenizer included) and
from the tokenized ones, beside pycocoevalcap's four scorers (Bleu, Meteor = the jar, Rouge, Cider)
on the tokenized captions (its Java tokenizer not included). The load average is recorded around
every timing. Writes Markdown and JSON.

    python eval/bench_meteor.py [--images 5000] [--workers auto] [--out eval/results/bench_meteor]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import perturbed  # noqa: E402

from captionkit.metrics import official  # noqa: E402
from captionkit.metrics.tokenize import find_java, ptb_tokenize  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco"
TOL = 1e-6


def coco_val2017(images: int):
    refs: dict[str, list[str]] = {}
    for ann in json.loads((DATA / "captions_val2017.json").read_text())["annotations"]:
        refs.setdefault(str(ann["image_id"]), []).append(ann["caption"])
    refs = {k: refs[k] for k in list(refs)[:images]}
    return refs, perturbed(refs)


def coco_demo():
    """The coco-caption demo: fake-caption results against the val2014 references of those images."""
    results = json.loads((DATA / "captions_val2014_fakecap_results.json").read_text())
    with zipfile.ZipFile(official._pkg_dir("spice") / "spice-1.0.jar") as z:
        anns = json.loads(z.read("coco/annotations/captions_val2014.json"))["annotations"]
    res = {str(r["image_id"]): r["caption"] for r in results}
    refs: dict[str, list[str]] = {}
    for a in anns:
        if str(a["image_id"]) in res:
            refs.setdefault(str(a["image_id"]), []).append(a["caption"])
    return {k: refs[k] for k in res}, res


def tokenized(refs, res):
    return (ptb_tokenize(refs, "python"), ptb_tokenize({k: [v] for k, v in res.items()}, "python"))


_CHILD = """
import json, sys, time
t = time.perf_counter()
from captionkit.metrics.meteor import meteor_score
from captionkit.metrics.meteor.scorer import _workers
gts, hyp = json.load(open(sys.argv[1]))
w = None if sys.argv[3] == "auto" else int(sys.argv[3])
used = _workers(len(gts), w)                      # (what meteor_score decides, for the record)
overall, per = meteor_score(gts, hyp, workers=w)
json.dump({"overall": overall, "per": per, "inner": time.perf_counter() - t, "workers": used},
          open(sys.argv[2], "w"))
"""

# the four metrics without Java, timed from the imports on (the input file is read first)
_FOUR = """
import json, sys, time
refs, res, workers, tokenize = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
from captionkit.metrics import fast
from captionkit.metrics.meteor import meteor_score
from captionkit.metrics.tokenize import ptb_tokenize
t1 = time.perf_counter()
if tokenize:
    gts, hyp = ptb_tokenize(refs, "python"), ptb_tokenize({k: [v] for k, v in res.items()}, "python")
else:
    gts, hyp = refs, {k: [v] for k, v in res.items()}
t2 = time.perf_counter()
fast.bleu_cider(gts, {k: v[0] for k, v in hyp.items()})
t3 = time.perf_counter()
from captionkit.metrics.meteor.scorer import _workers
used = _workers(len(gts), workers)
meteor_score(gts, hyp, workers=workers)
t4 = time.perf_counter()
fast.rouge_l(gts, {k: v[0] for k, v in hyp.items()})
t5 = time.perf_counter()
json.dump({"seconds": t5 - t0, "imports": t1 - t0, "tokenize": t2 - t1, "bleu_cider": t3 - t2,
           "meteor": t4 - t3, "rouge": t5 - t4, "workers": used}, open(sys.argv[2], "w"))
"""


def _fresh(script: str, payload, *args) -> tuple[dict, float]:
    """Runs ``script`` in a new interpreter on a JSON payload -> (its JSON answer, wall seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(payload))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", script, str(src), str(dst), *map(str, args)], check=True)
        wall = time.perf_counter() - t
        return json.loads(dst.read_text()), wall


def python_meteor_fresh(gts, hyp, workers: str = "auto"):
    """Python METEOR in a new interpreter, like the jar in a new JVM -> (overall, per, wall, inner,
    workers used)."""
    out, wall = _fresh(_CHILD, [gts, hyp], workers)
    return out["overall"], out["per"], wall, out["inner"], out["workers"]


def agreement(name, gts, hyp, java, workers: str = "auto"):
    load = [os.getloadavg()[0]]
    t = time.perf_counter()
    jar, jar_per = official.meteor(gts, hyp, java)
    t_jar = time.perf_counter() - t
    load.append(os.getloadavg()[0])
    ours, per, t_py, t_inner, used = python_meteor_fresh(gts, hyp, workers)
    load.append(os.getloadavg()[0])
    one = python_meteor_fresh(gts, hyp, "1") if workers != "1" else (ours, per, t_py, t_inner, used)
    if one[:2] != (ours, per):
        raise AssertionError(f"{name}: Python METEOR with workers={workers} differs from workers=1")
    ids = list(gts)
    off = [{"image": i, "jar": a, "python": b, "hyp": hyp[i][0], "refs": gts[i]}
           for i, a, b in zip(ids, jar_per, per) if abs(a - b) > TOL]
    return {"set": name, "images": len(ids), "jar": jar, "python": ours, "corpus_abs_diff": abs(jar - ours),
            "per_image_max_abs_diff": float(np.max(np.abs(np.array(jar_per) - np.array(per)))),
            "per_image_equal_fraction": 1 - len(off) / len(ids), "differing_images": off,
            "jar_seconds": t_jar, "python_seconds": t_py, "python_seconds_after_start": t_inner,
            "speedup": t_jar / t_py, "python_workers": f"{workers} -> {used}", "load_average_1min": load,
            "python_seconds_1_worker": one[2], "speedup_1_worker": t_jar / one[2]}


def four_metrics(raw_refs, raw_res, gts, hyp, java, workers: str = "auto"):
    """Seconds for BLEU + METEOR + ROUGE-L + CIDEr-D: captionkit without Java in a fresh interpreter
    (from raw captions, PTB tokenizer included, and from the tokenized ones), pycocoevalcap's four
    on the tokenized captions."""
    w = None if workers == "auto" else int(workers)
    load = [os.getloadavg()[0]]
    raw, _ = _fresh(_FOUR, [raw_refs, raw_res, w, True])
    tok, _ = _fresh(_FOUR, [gts, {k: v[0] for k, v in hyp.items()}, w, False])
    tok1 = _fresh(_FOUR, [gts, {k: v[0] for k, v in hyp.items()}, 1, False])[0] if w != 1 else tok
    load.append(os.getloadavg()[0])
    t = time.perf_counter()
    official.bleu(gts, hyp)
    official.cider(gts, hyp)
    official.rouge(gts, hyp)
    t_ref3 = time.perf_counter() - t
    official.meteor(gts, hyp, java) if java else None
    ref = time.perf_counter() - t
    load.append(os.getloadavg()[0])
    return {"captionkit_from_raw": raw, "captionkit_from_tokenized": tok,
            "captionkit_from_tokenized_1_process": tok1, "captionkit_workers": workers,
            "pycocoevalcap_seconds": ref if java else None, "pycocoevalcap_without_meteor": t_ref3,
            "load_average_1min": load}


def markdown(out) -> str:
    lines = [f"# METEOR 1.5: Python vs the jar ({out['machine']})", "",
             "| set | images | jar | python | abs diff | per-image equal (1e-6) | jar s | python s "
             "| speed-up | python s, 1 process | speed-up, 1 process |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in out["agreement"]:
        lines.append(f"| {a['set']} | {a['images']} | {a['jar']:.6f} | {a['python']:.6f} | "
                     f"{a['corpus_abs_diff']:.1e} | {100 * a['per_image_equal_fraction']:.2f}% | "
                     f"{a['jar_seconds']:.1f} | {a['python_seconds']:.2f} | {a['speedup']:.1f}x | "
                     f"{a['python_seconds_1_worker']:.2f} | {a['speedup_1_worker']:.1f}x |")
    lines += ["", f"Python METEOR workers: {out['agreement'][0]['python_workers']} (auto: one per CPU the "
              "1-minute load leaves free, for 2,000 images or more); python s: a fresh interpreter, start, "
              "imports and resource loading included; jar s: JVM start and table loading included."]
    f = out["four_metrics"]
    lines += ["", "BLEU + METEOR + ROUGE-L + CIDEr-D on the COCO val2017 set, captionkit without Java in a "
              f"fresh interpreter (imports and resource loading included; METEOR workers: "
              f"{f['captionkit_workers']}):", ""]
    for name, key in (("from raw captions (PTB tokenizer included)", "captionkit_from_raw"),
                      ("from tokenized captions", "captionkit_from_tokenized"),
                      ("from tokenized captions, METEOR in 1 process", "captionkit_from_tokenized_1_process")):
        c = f[key]
        lines.append(f"- captionkit, {name}: {c['seconds']:.2f} s (imports {c['imports']:.2f}, tokenizer "
                     f"{c['tokenize']:.2f}, BLEU+CIDEr-D {c['bleu_cider']:.2f}, METEOR {c['meteor']:.2f} "
                     f"with {c['workers']} process(es), ROUGE-L {c['rouge']:.2f})")
    lines += [f"- pycocoevalcap on the tokenized captions (its Java tokenizer not included): "
              f"{f['pycocoevalcap_seconds'] or float('nan'):.2f} s "
              f"(of which Bleu+Cider+Rouge {f['pycocoevalcap_without_meteor']:.2f})", ""]
    for a in out["agreement"]:
        for d in a["differing_images"]:
            lines.append(f"- {a['set']} image {d['image']}: jar {d['jar']:.6f} python {d['python']:.6f}")
    lines.append(f"\nload average at start: {out['load_average']}; 1-minute load before / between / after "
                 "the timings: " + "; ".join(f"{a['set']} {a['load_average_1min']}" for a in out["agreement"])
                 + f"; four metrics {f['load_average_1min']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--out", default="eval/results/bench_meteor")
    ap.add_argument("--workers", default="auto",
                    help="processes for the Python METEOR: a number (0: one per CPU) or auto (the default)")
    a = ap.parse_args(argv)
    java = find_java()
    if java is None:
        print("Java not found on PATH: the jar is the reference here; nothing to compare")
        return 2
    from captionkit.metrics.meteor.resources import paraphrase_arrays
    paraphrase_arrays()                                     # build the cache once: "cache warm"
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
           "python": platform.python_version(), "agreement": []}
    raw_refs, raw_res = coco_val2017(a.images)
    gts, hyp = tokenized(raw_refs, raw_res)
    out["agreement"].append(agreement("COCO val2017 perturbed", gts, hyp, java, a.workers))
    demo = tokenized(*coco_demo())
    out["agreement"].append(agreement("coco-caption demo (fakecap)", *demo, java, a.workers))
    out["four_metrics"] = four_metrics(raw_refs, raw_res, gts, hyp, java, a.workers)
    md = markdown(out)
    print(md)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(out, indent=1))
    Path(a.out + ".md").write_text(md)
    ok = all(x["corpus_abs_diff"] <= TOL and x["per_image_equal_fraction"] >= 0.999
             for x in out["agreement"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
