"""A tuple -> sentence benchmark built from the real TACoS sentences (LRCN section 6 stand-in).

TACoS multilevel's CRF outputs cannot be had here, so this module derives them:
1. **Extractor** (``tacos_rules.extract_tuple``): each sentence -> its gold tuple <activity, tool, object,
   source, target>, by rules over small hand-written lexicons read off the TACoS sentences (nltk's
   tagger/lemmatiser data cannot be downloaded here):
   - words: lower case, letters only; ``,`` and ``.`` kept as clause breaks.
   - activity = lemma of the main verb (+ particle: "take out", "cut off", "turn on"). The main verb is
     the first word whose verb lemma (irregular table, then suffix rules -s/-es/-ies/-ed/-ing with
     e-restoration and de-doubling, checked against ``VERBS``) is known, that does not follow a
     determiner and is not followed by "is/are/was/were" (then it is a subject noun). Light verbs
     (begin, start, go, try, ...) hand over to the next verb. "X is/are <participle>" is passive:
     activity = participle's lemma, object = X.
   - object = head of the first noun phrase after the verb (last content word of the phrase; known
     two-word compounds such as "cutting board" kept; plural -> singular by rules + exceptions); a
     part noun ("ends of cucumbers") yields what it is a part of.
   - tool = noun phrase after "with"/"using"; source = after "from"/"out of"/"off of"; target = after
     "on/onto/in/into/to/inside/over" (not result nouns such as "half", "pieces"). "take X out of Y"
     gives activity "take out".
2. **CRF noise model** (``CRFNoise``): per slot, the CRF's evidence is z = M[gold] + sigma * eps, where
   row M[k] puts ``signal`` on label k and ``confusion * signal`` on its visually plausible confusions
   (``CONFUSIONS``: cucumber<->zucchini, knife<->peeler, cut<->slice<->chop, ...). The per-slot
   probability vector is the exact Bayes posterior p(k | z) with the training label frequencies as
   prior, so it is calibrated by construction; the max tuple is its argmax per slot.
3. **Segments**: sentences of one video whose spans overlap (IoU >= 0.5) and whose gold objects agree
   describe one segment (several annotators per video); its gold tuple is the per-slot majority, its
   references are those sentences. The source split is kept (train / val / test videos).

Run ``python eval/tacos_benchmark.py --out runs/tacos_bench`` to write ``{train,val,test}.json``.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import UserError
from .tacos_rules import extract_tuple
from .tuples import NONE, OTHER, SLOTS, Segment, TupleSet, save_tuples

DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tacos"

CONFUSIONS = [  # visually plausible confusions (shared by every slot whose label set has them)
    "cut slice chop dice", "cut off trim", "wash rinse clean", "take out get out get take grab remove",
    "procure retrieve get", "put place set put back return", "throw away discard throw dispose",
    "peel skin", "pour add sprinkle", "stir mix whisk scramble", "squeeze juice press", "open close",
    "turn on turn off", "cucumber zucchini", "knife peeler", "lime lemon orange", "plum fig kiwi apricot",
    "carrot parsnip", "leek onion", "onion garlic", "potato ginger", "plate bowl saucer dish",
    "pot pan frying pan skillet saucepan", "cutting board chopping board plate", "cabinet cupboard drawer pantry",
    "fridge refrigerator", "trash wastebin garbage bin", "spoon fork spatula", "glass cup mug",
    "pepper chili", "broccoli cauliflower", "bean broad bean pea", "sink counter", "hand finger",
    "pineapple mango", "avocado mango", "pomegranate orange", "juicer juice press", "egg shell"]


def _confusion_groups(labels: list[str]) -> list[list[str]]:
    """Each CONFUSIONS line -> the labels of this slot it names (multi-word labels matched greedily)."""
    known, groups = set(labels), []
    for line in CONFUSIONS:
        words, found, i = line.split(), [], 0
        while i < len(words):
            two = " ".join(words[i:i + 2])
            if i + 1 < len(words) and two in known:
                found.append(two)
                i += 2
            else:
                if words[i] in known:
                    found.append(words[i])
                i += 1
        found = list(dict.fromkeys(found))   # "get out" unknown -> "get" twice
        if len(found) >= 2:
            groups.append(found)
    return groups


class CRFNoise:
    """A simulated CRF for one slot: evidence z ~ N(M[gold], sigma^2 I); output = exact posterior.

    ``M[k] = signal * (e_k + confusion * sum of e_j over k's confusions)`` so confusable labels get
    partial evidence; the posterior p(k|z) (prior = training frequencies) is calibrated by construction.
    """

    def __init__(self, labels: list[str], prior: np.ndarray, noise: float = 1.0, signal: float = 3.0,
                 confusion: float = 0.7):
        K = len(labels)
        index = {lab: i for i, lab in enumerate(labels)}
        C = np.zeros((K, K))
        for group in _confusion_groups(labels):
            ids = [index[g] for g in group]
            for a in ids:
                for b in ids:
                    C[a, b] = 1.0 if a != b else 0.0
        self.M = signal * (np.eye(K) + confusion * C)      # (K, K): row k = mean evidence for label k
        self.sigma = float(noise)
        self.log_prior = np.log(prior / prior.sum())
        self.bias = -0.5 * (self.M ** 2).sum(1) / self.sigma ** 2   # (K,)

    def __call__(self, gold: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """gold (N,) label ids -> posterior probabilities (N, K)."""
        z = self.M[gold] + self.sigma * rng.standard_normal((len(gold), self.M.shape[0]))   # (N, K)
        logit = z @ self.M.T / self.sigma ** 2 + self.bias + self.log_prior             # (N, K)
        logit -= logit.max(1, keepdims=True)
        p = np.exp(logit)
        return p / p.sum(1, keepdims=True)


# ----------------------------------------------------------------------------- reading TACoS

def read_split(path: Path) -> list[tuple[str, float, float, str]]:
    """``[video, duration, [start, end], sentence]`` lists or the per-video dict form (frames + fps)."""
    if not path.is_file():
        raise UserError(f"TACoS split file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    rows = []
    if isinstance(data, dict):   # {"s34-d28.avi": {"timestamps": [[f0, f1]], "sentences": [...], "fps"}}
        for video, v in data.items():
            fps = float(v.get("fps", 1.0))
            for (a, b), sent in zip(v["timestamps"], v["sentences"]):
                rows.append((video.removesuffix(".avi"), a / fps, b / fps, sent))
    else:
        for n, item in enumerate(data):
            try:
                video, _dur, (a, b), sent = item
            except (TypeError, ValueError):
                raise UserError(f"{path}: item {n} is not [video_id, duration_s, [start_s, end_s], sentence]") from None
            rows.append((str(video), float(a), float(b), str(sent)))
    return rows


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def group_segments(rows: list[tuple[str, float, float, str]], iou: float = 0.5) -> list[Segment]:
    """Sentences -> segments (same video, span IoU >= ``iou``, same gold object); gold = slot majority."""
    by_video: dict[str, list] = {}
    for video, a, b, sent in rows:
        by_video.setdefault(video, []).append((a, b, sent, extract_tuple(sent)))
    segments = []
    for video, items in by_video.items():
        parent = list(range(len(items)))

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                if items[i][3]["object"] == items[j][3]["object"] and \
                        _iou(items[i][:2], items[j][:2]) >= iou:
                    parent[root(j)] = root(i)
        groups: dict[int, list] = {}
        for i in range(len(items)):
            groups.setdefault(root(i), []).append(items[i])
        for n, members in enumerate(groups.values()):
            gold = {s: Counter(m[3][s] for m in members).most_common(1)[0][0] for s in SLOTS}
            segments.append(Segment(id=f"{video}/{n}", tuple=dict(gold), gold=gold, video=video,
                                    start=min(m[0] for m in members), end=max(m[1] for m in members),
                                    sentences=[m[2] for m in members]))
    return segments


# ----------------------------------------------------------------------------- the benchmark

def label_sets(train: list[Segment], min_count: int = 3) -> dict[str, list[str]]:
    """Per slot: <none>, <other>, then the training labels seen at least ``min_count`` times."""
    out = {}
    for s in SLOTS:
        counts = Counter(seg.gold[s] for seg in train)
        keep = sorted(lab for lab, c in counts.items() if c >= min_count and lab not in (NONE, OTHER))
        out[s] = [NONE, OTHER] + keep
    return out


def simulate_crf(segments: list[Segment], labels: dict[str, list[str]], priors: dict[str, np.ndarray],
                 noise: float, seed: int) -> None:
    """Replace each segment's tuple by the simulated CRF's max and attach its probabilities (in place)."""
    rng = np.random.default_rng(seed)
    for s in SLOTS:
        index = {lab: i for i, lab in enumerate(labels[s])}
        for seg in segments:
            seg.gold[s] = seg.gold[s] if seg.gold[s] in index else OTHER
        gold = np.array([index[seg.gold[s]] for seg in segments])
        p = CRFNoise(labels[s], priors[s], noise=noise)(gold, rng) if len(segments) else np.zeros((0, 1))
        for seg, row in zip(segments, p):
            seg.probs[s] = row.astype(np.float32)
            seg.tuple[s] = labels[s][int(row.argmax())]


def build_benchmark(root: str | Path = DEFAULT_ROOT, noise: float = 1.0, seed: int = 0,
                    min_count: int = 3) -> dict[str, TupleSet]:
    """TACoS sentences -> {split: TupleSet} with simulated CRF max tuples and probabilities."""
    root = Path(root)
    segs = {split: group_segments(read_split(root / f"{split}.json")) for split in ("train", "val", "test")}
    labels = label_sets(segs["train"], min_count)
    priors = {}
    for s in SLOTS:
        counts = Counter(seg.gold[s] if seg.gold[s] in labels[s] else OTHER for seg in segs["train"])
        priors[s] = np.array([counts[lab] + 0.5 for lab in labels[s]], dtype=np.float64)
    for k, split in enumerate(("train", "val", "test")):
        simulate_crf(segs[split], labels, priors, noise, seed * 1000 + k)
    return {split: TupleSet(SLOTS, labels, segs[split]) for split in segs}


def slot_accuracy(ts: TupleSet) -> dict[str, dict[str, float]]:
    """Per slot: accuracy of the max label and mean max probability (calibration check)."""
    out = {}
    for s in ts.slots:
        acc = np.mean([seg.tuple[s] == seg.gold[s] for seg in ts.segments])
        conf = np.mean([float(seg.probs[s].max()) for seg in ts.segments])
        out[s] = {"accuracy": round(float(acc), 4), "confidence": round(float(conf), 4)}
    return out


def write_benchmark(out: str | Path, root: str | Path = DEFAULT_ROOT, noise: float = 1.0, seed: int = 0,
                    min_count: int = 3) -> dict:
    """Build and write ``OUT/{train,val,test}.json`` and ``OUT/stats.json``; returns the stats."""
    out = Path(out)
    sets = build_benchmark(root, noise, seed, min_count)
    stats = {"noise": noise, "seed": seed, "min_count": min_count,
             "labels": {s: len(v) for s, v in sets["train"].labels.items()}}
    for split, ts in sets.items():
        save_tuples(ts, out / f"{split}.json")
        stats[split] = {"segments": len(ts.segments), "sentences": sum(len(g.sentences) for g in ts.segments),
                        "slots": slot_accuracy(ts)}
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats
