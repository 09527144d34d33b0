"""The official coco-caption scorers (pycocoevalcap 1.2), called one by one and supervised.

``COCOEvalCap.evaluate()`` is not used: it builds SPICE first, and SPICE downloads Stanford CoreNLP,
so with no network no score at all comes out. Here BLEU, ROUGE-L and CIDEr-D run in-process
(pure Python); METEOR runs the same jar with the same flags and the same ``SCORE``/``EVAL`` protocol
as ``pycocoevalcap.meteor.Meteor``, but under a deadline with every pipe drained by a thread, so a
Java exception (which makes the original wait forever on ``readline``) becomes an error; SPICE is
optional and skipped with a reason when Java, its jar or its CoreNLP jars are missing.

Inputs are tokenized: ``gts = {id: [ref, ...]}``, ``res = {id: [hyp]}`` (one hypothesis per id).
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .tokenize import find_java


class MetricError(RuntimeError):
    """A Java metric failed or timed out; the message says which and why."""


def _pkg_dir(sub: str) -> Path:
    import pycocoevalcap
    return Path(list(pycocoevalcap.__path__)[0]) / sub


def bleu(gts, res):
    """-> ([Bleu_1..4], [[per image] x 4]) from pycocoevalcap's Bleu(4)."""
    from pycocoevalcap.bleu.bleu import Bleu
    score, scores = Bleu(4).compute_score(gts, res, verbose=0)
    return score, scores


def rouge(gts, res):
    from pycocoevalcap.rouge.rouge import Rouge
    return Rouge().compute_score(gts, res)


def cider(gts, res):
    from pycocoevalcap.cider.cider import Cider
    return Cider().compute_score(gts, res)


STDERR_GRACE = 5.0  # seconds to wait, after Java closed stdout, for the end of its stderr


def meteor_timeout(n_images: int) -> float:
    """Default deadline: JVM start and paraphrase table (~10 s) plus a generous per-image budget."""
    return 120.0 + 0.05 * n_images


def _reader(stream, q: "queue.Queue"):
    for line in iter(stream.readline, b""):
        q.put(line)
    q.put(None)                                   # EOF: the process died or closed stdout


def meteor(gts, res, java: str | None = None, timeout: float | None = None):
    """-> (METEOR, [per image]); MetricError if Java fails, answers wrongly or misses the deadline."""
    java = java or find_java()
    if java is None:
        raise MetricError("METEOR needs Java and none was found on PATH")
    ids = list(gts)
    timeout = meteor_timeout(len(ids)) if timeout is None else timeout
    deadline = time.monotonic() + timeout
    jar_dir = _pkg_dir("meteor")
    cmd = [java, "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"]
    p = subprocess.Popen(cmd, cwd=jar_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out_q: "queue.Queue" = queue.Queue()
    err_lines: list[bytes] = []
    threading.Thread(target=_reader, args=(p.stdout, out_q), daemon=True).start()
    err_reader = threading.Thread(target=lambda: err_lines.extend(iter(p.stderr.readline, b"")), daemon=True)
    err_reader.start()

    def send(lines: list[str]):
        def write():
            try:
                p.stdin.write("".join(s + "\n" for s in lines).encode("utf-8"))
                p.stdin.flush()
            except (BrokenPipeError, OSError):
                pass                               # reported as EOF / timeout by the reader
        threading.Thread(target=write, daemon=True).start()

    def read(k: int) -> list[str]:
        got = []
        while len(got) < k:
            left = deadline - time.monotonic()
            try:
                line = out_q.get(timeout=max(left, 0.0)) if left > 0 else None
            except queue.Empty:
                line = None
                left = 0
            if line is None:
                if left > 0:  # stdout closed: Java's last words may still be on their way to stderr
                    err_reader.join(timeout=STDERR_GRACE)
                err = b"".join(err_lines).decode("utf-8", "replace").strip().splitlines()
                why = (f"no answer within {timeout:.0f} s" if left <= 0 else "the Java process exited")
                raise MetricError(f"METEOR failed: {why} after {len(got)} of {k} lines"
                                  + (f"; java says: {err[-1][:200]}" if err else ""))
            got.append(line.decode("utf-8", "replace").strip())
        return got

    try:
        score_lines = []
        for i in ids:
            if len(res[i]) != 1:
                raise MetricError(f"METEOR needs one hypothesis per image; image {i!r} has {len(res[i])}")
            hyp = res[i][0].replace("|||", "").replace("  ", " ")
            refs = [r.replace("|||", "") for r in gts[i]]
            score_lines.append(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
        send(score_lines)
        stats = read(len(ids))
        send(["EVAL ||| " + " ||| ".join(stats)])
        answers = read(len(ids) + 1)
        try:
            per = [float(a) for a in answers]
        except ValueError:
            raise MetricError(f"METEOR answered something that is not a number: {answers[:3]}") from None
        return per[-1], per[:-1]
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        p.kill()
        p.wait()


def spice_missing(java: str | None) -> str | None:
    """Why SPICE cannot run here, or None when it can."""
    if java is None:
        return "Java not found on PATH"
    d = _pkg_dir("spice")
    if not (d / "spice-1.0.jar").is_file():
        return f"spice-1.0.jar not found in {d}"
    lib = d / "lib"
    need = ["stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar"]
    missing = [n for n in need if not (lib / n).is_file()]
    if missing:
        return (f"Stanford CoreNLP jars missing in {lib} ({', '.join(missing)}); pycocoevalcap would "
                "download them (network); run pycocoevalcap.spice.get_stanford_models once online")
    return None


def spice(gts, res, java: str | None = None, timeout: float | None = None):
    """-> (SPICE F-score, [per image]) running spice-1.0.jar with a deadline; temp files are ours."""
    java = java or find_java()
    why = spice_missing(java)
    if why:
        raise MetricError(f"SPICE skipped: {why}")
    ids = list(gts)
    timeout = 600.0 + 0.5 * len(ids) if timeout is None else timeout
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "captionkit" / "spice"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="captionkit_spice_") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps([{"image_id": i, "test": res[i][0], "refs": gts[i]} for i in ids]))
        cmd = [java, "-jar", "-Xmx8G", "spice-1.0.jar", str(src), "-cache", str(cache),
               "-out", str(dst), "-subset", "-silent"]
        try:
            p = subprocess.run(cmd, cwd=_pkg_dir("spice"), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise MetricError(f"SPICE did not finish within {timeout:.0f} s") from None
        if p.returncode != 0:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            raise MetricError(f"SPICE failed (exit {p.returncode}): {err[-1][:200] if err else ''}")
        items = {str(x["image_id"]): x["scores"]["All"]["f"] for x in json.loads(dst.read_text())}
    per = [float(items[str(i)]) if items.get(str(i)) is not None else float("nan") for i in ids]
    return float(np.mean(per)), per
