"""METEOR 1.5 in Python versus ``meteor-1.5.jar``: agreement and speed, in one run.

Data: (1) COCO val2017 (5,000 images x ~5 references) with perturbed references as results, as in
``eval/bench_metrics.py``; (2) the coco-caption demo: ``captions_val2014_fakecap_results.json``
against ``captions_val2014.json`` (read from inside pycocoevalcap's ``spice-1.0.jar``). Captions are
PTB-tokenized first (captionkit's tokenizer, equal to the Java one on COCO), as pycocoevalcap does.

Reported: corpus METEOR of both and their difference; images whose scores differ by more than 1e-6
(each listed with both scores and the captions); end-to-end seconds of the jar (JVM start and table
loading included; the same SCORE/EVAL protocol as pycocoevalcap) and of the Python METEOR in a fresh
interpreter (imports, resource loading from the warm cache, scoring); BLEU + METEOR + ROUGE-L +
CIDEr-D without Java (captionkit's fast paths, in-process, resources not yet loaded) beside
pycocoevalcap's four scorers (Bleu, Meteor = the jar, Rouge, Cider). Writes Markdown and JSON.

    python eval/bench_meteor.py [--images 5000] [--workers 1] [--out eval/results/bench_meteor]
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

from captionkit.metrics import fast, official  # noqa: E402
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
gts, hyp = json.load(open(sys.argv[1]))
overall, per = meteor_score(gts, hyp, workers=int(sys.argv[3]))
json.dump({"overall": overall, "per": per, "inner": time.perf_counter() - t}, open(sys.argv[2], "w"))
"""


def python_meteor_fresh(gts, hyp, workers: int = 1):
    """Python METEOR in a new interpreter, like the jar in a new JVM -> (overall, per, wall, inner)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps([gts, hyp]))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", _CHILD, str(src), str(dst), str(workers)], check=True)
        wall = time.perf_counter() - t
        out = json.loads(dst.read_text())
    return out["overall"], out["per"], wall, out["inner"]


def agreement(name, gts, hyp, java, workers: int = 1):
    t = time.perf_counter()
    jar, jar_per = official.meteor(gts, hyp, java)
    t_jar = time.perf_counter() - t
    ours, per, t_py, t_inner = python_meteor_fresh(gts, hyp, workers)
    ids = list(gts)
    off = [{"image": i, "jar": a, "python": b, "hyp": hyp[i][0], "refs": gts[i]}
           for i, a, b in zip(ids, jar_per, per) if abs(a - b) > TOL]
    return {"set": name, "images": len(ids), "jar": jar, "python": ours, "corpus_abs_diff": abs(jar - ours),
            "per_image_max_abs_diff": float(np.max(np.abs(np.array(jar_per) - np.array(per)))),
            "per_image_equal_fraction": 1 - len(off) / len(ids), "differing_images": off,
            "jar_seconds": t_jar, "python_seconds": t_py, "python_seconds_after_start": t_inner,
            "speedup": t_jar / t_py, "python_workers": workers}


def four_metrics(gts, hyp, java):
    """Seconds for BLEU + METEOR + ROUGE-L + CIDEr-D: captionkit without Java, pycocoevalcap."""
    from captionkit.metrics.meteor import meteor_score
    hyp1 = {k: v[0] for k, v in hyp.items()}
    t = time.perf_counter()
    fast.bleu_cider(gts, hyp1)
    t_bc = time.perf_counter() - t
    m, _ = meteor_score(gts, hyp)
    t_m = time.perf_counter() - t - t_bc
    fast.rouge_l(gts, hyp1)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    official.bleu(gts, hyp)
    official.cider(gts, hyp)
    official.rouge(gts, hyp)
    t_ref3 = time.perf_counter() - t
    official.meteor(gts, hyp, java) if java else None
    ref = time.perf_counter() - t
    return {"captionkit_seconds": ours, "captionkit_bleu_cider": t_bc, "captionkit_meteor": t_m,
            "captionkit_rouge": ours - t_bc - t_m, "pycocoevalcap_seconds": ref if java else None,
            "pycocoevalcap_without_meteor": t_ref3}


def markdown(out) -> str:
    lines = [f"# METEOR 1.5: Python vs the jar ({out['machine']})", "",
             "| set | images | jar | python | abs diff | per-image equal (1e-6) | jar s | python s "
             "| speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in out["agreement"]:
        lines.append(f"| {a['set']} | {a['images']} | {a['jar']:.6f} | {a['python']:.6f} | "
                     f"{a['corpus_abs_diff']:.1e} | {100 * a['per_image_equal_fraction']:.2f}% | "
                     f"{a['jar_seconds']:.1f} | {a['python_seconds']:.1f} | {a['speedup']:.1f}x |")
    f = out["four_metrics"]
    lines += ["", "BLEU + METEOR + ROUGE-L + CIDEr-D on the COCO val2017 set (tokenized captions):", "",
              f"- captionkit, no Java: {f['captionkit_seconds']:.2f} s (BLEU+CIDEr-D "
              f"{f['captionkit_bleu_cider']:.2f}, METEOR {f['captionkit_meteor']:.2f}, ROUGE-L "
              f"{f['captionkit_rouge']:.2f})",
              f"- pycocoevalcap: {f['pycocoevalcap_seconds'] or float('nan'):.2f} s "
              f"(of which Bleu+Cider+Rouge {f['pycocoevalcap_without_meteor']:.2f})", ""]
    for a in out["agreement"]:
        for d in a["differing_images"]:
            lines.append(f"- {a['set']} image {d['image']}: jar {d['jar']:.6f} python {d['python']:.6f}")
    lines.append(f"\nload average at start: {out['load_average']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--out", default="eval/results/bench_meteor")
    ap.add_argument("--workers", type=int, default=1, help="processes for the Python METEOR (0: one per CPU)")
    a = ap.parse_args(argv)
    java = find_java()
    if java is None:
        print("Java not found on PATH: the jar is the reference here; nothing to compare")
        return 2
    from captionkit.metrics.meteor.resources import paraphrase_arrays
    paraphrase_arrays()                                     # build the cache once: "cache warm"
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
           "python": platform.python_version(), "agreement": []}
    gts, hyp = tokenized(*coco_val2017(a.images))
    out["agreement"].append(agreement("COCO val2017 perturbed", gts, hyp, java, a.workers))
    demo = tokenized(*coco_demo())
    out["agreement"].append(agreement("coco-caption demo (fakecap)", *demo, java, a.workers))
    out["four_metrics"] = four_metrics(gts, hyp, java)
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
