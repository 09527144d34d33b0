"""Video description from CRF tuples (LRCN section 6) as a task for ``train.fit``.

Data: tuple files (``captionkit.data.tuples``; e.g. the TACoS benchmark written by
``python eval/tacos_benchmark.py``). Every (segment, reference sentence) pair is one training
example; the model sees the segment's CRF max labels (a, b) or probabilities (c). Loss: padded caption
cross-entropy. Validation: decode each validation segment once and score corpus BLEU-4 with sacrebleu
against all its references (the paper's metric); best checkpoint = highest BLEU-4.

Tuple files whose label sets differ from the training set's are mapped by label name; unknown labels
(and their probability mass) go to ``<other>``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.tuples import OTHER, TupleSet, load_tuples
from ..decoding import DecodeConfig, decode
from ..errors import UserError
from ..models.describer import DescriberConfig, build_describer
from ..train import TrainConfig
from ..vocab import Vocab, pad_captions
from .base import Task


@dataclass
class DescribeDataConfig:
    train: str = "runs/tacos_bench/train.json"   # tuple file (write it: python eval/tacos_benchmark.py)
    val: str = "runs/tacos_bench/val.json"
    test: str = "runs/tacos_bench/test.json"     # used by ``captionkit evaluate --split test`` only
    min_count: int = 2        # words rarer than this in the training sentences become <unk>
    max_len: int = 20         # training sentences are cut to this many words
    val_limit: int = 500      # validation segments decoded per validation (0 = all)


@dataclass
class DescribeConfig:
    task: str = "describe"
    data: DescribeDataConfig = field(default_factory=DescribeDataConfig)
    model: DescriberConfig = field(default_factory=DescriberConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


def encode_tuples(ts: TupleSet, slots: list[str], labels: dict[str, list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments -> (max label ids (N, S) long, concatenated probabilities (N, K) float) in ``labels``' order."""
    missing = [s for s in slots if s not in ts.slots]
    if missing:
        raise UserError(f"tuple file has no slot {missing[0]!r} (the model was trained on {', '.join(slots)})")
    index = {s: {lab: i for i, lab in enumerate(labels[s])} for s in slots}
    ids = np.zeros((len(ts.segments), len(slots)), dtype=np.int64)
    probs = np.zeros((len(ts.segments), sum(len(labels[s]) for s in slots)), dtype=np.float32)
    for n, seg in enumerate(ts.segments):
        off = 0
        for j, s in enumerate(slots):
            lab = seg.tuple[s]
            ids[n, j] = index[s].get(lab, index[s][OTHER])
            p = seg.probs.get(s)
            if p is None:
                probs[n, off + ids[n, j]] = 1.0
            else:   # map the file's labels onto the model's by name
                for src_lab, q in zip(ts.labels[s], p):
                    probs[n, off + index[s].get(src_lab, index[s][OTHER])] += q
            off += len(labels[s])
    return torch.from_numpy(ids), torch.from_numpy(probs)


class PairDataset(Dataset):
    """(segment, sentence) pairs: item -> (labels (S,), probs (K,), caption ids)."""

    def __init__(self, labels: torch.Tensor, probs: torch.Tensor, pairs: list[tuple[int, list[int]]]):
        self.labels, self.probs, self.pairs = labels, probs, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        seg, ids = self.pairs[i]
        return self.labels[seg], self.probs[seg], ids


def bleu4(hyps: list[str], refs: list[list[str]]) -> float:
    """Corpus BLEU-4 (sacrebleu, 0-100) of one hypothesis per segment against its references."""
    from ..metrics import corpus_bleu

    return float(corpus_bleu(hyps, refs)["bleu"])


@torch.inference_mode()
def describe_segments(model, labels: torch.Tensor, probs: torch.Tensor, vocab: Vocab, cfg: DecodeConfig,
                      device="cpu", batch_size: int = 256) -> list[list[tuple[str, float]]]:
    """labels (N, S), probs (N, K) -> per segment a best-first list of (sentence, log-probability)."""
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, labels.size(0), batch_size):
        state = model.init_state(labels[s:s + batch_size].to(device), probs[s:s + batch_size].to(device))
        hyps = decode(model.step, state, cfg, bos=vocab.bos, eos=vocab.eos)
        out += [[(vocab.decode(h.tokens), float(h.logp)) for h in per] for per in hyps]
    model.train(was_training)
    return out


def evaluate_describer(task, model, split: str, cfg: DecodeConfig, device="cpu", batch_size: int = 256,
                       limit: int = 0, metrics=("bleu", "meteor", "rouge", "cider"), official: bool = True):
    """Describe a split's tuple file (``data.{train,val,test}``) and score it: BLEU-4 by sacrebleu
    (LRCN's metric) plus the coco-caption metrics -> (summary dict, {segment: sentence}, ScoreReport)."""
    from ..metrics import score_captions

    d = task.cfg.data
    path = {"train": d.train, "val": d.val, "test": d.test}[split]
    ts = load_tuples(path)
    ts.segments = [s for s in ts.segments if s.sentences]
    ts.segments = ts.segments[:limit] if limit else ts.segments
    if not ts.segments:
        raise UserError(f"{path}: no segment with reference sentences")
    labels, probs = encode_tuples(ts, task.slots, task.labels)
    hyps = describe_segments(model, labels, probs, task.vocab, cfg, device, batch_size)
    res = {seg.id: h[0][0] for seg, h in zip(ts.segments, hyps)}
    refs = {seg.id: [task.normalise(t) for t in seg.sentences] for seg in ts.segments}
    report = score_captions(refs, res, metrics=metrics, official=official)
    scores = {"BLEU4_sacrebleu": bleu4(list(res.values()), list(refs.values())), **report.scores}
    summary = {"split": split, "tuples": str(path), "segments": len(res), "decode": vars(cfg),
               "scores": scores, "settings": report.settings}
    return summary, res, report


class DescribeTask(Task):
    name = "describe"
    config_class = DescribeConfig
    selection_metric = "BLEU4"

    def __init__(self, cfg: DescribeConfig, extra: dict | None = None):
        super().__init__(cfg, extra)
        self.vocab = Vocab.from_json(self.extra["vocab"]) if "vocab" in self.extra else None

    def data_source(self) -> str:
        return f"tuple files {self.cfg.data.train} (train), {self.cfg.data.val} (val)"

    @property
    def slots(self) -> list[str]:
        return list(self.extra["slots"])

    @property
    def labels(self) -> dict[str, list[str]]:
        return self.extra["labels"]

    def setup(self, rank: int = 0, world: int = 1) -> None:
        d = self.cfg.data
        train = load_tuples(d.train)
        if "labels" not in self.extra:
            self.extra["slots"], self.extra["labels"] = list(train.slots), dict(train.labels)
        if self.vocab is None:
            self.vocab = Vocab.build((t for seg in train.segments for t in seg.sentences), d.min_count)
            self.extra["vocab"] = self.vocab.to_json()
        labels, probs = encode_tuples(train, self.slots, self.labels)
        pairs = [(n, ids[:d.max_len]) for n, seg in enumerate(train.segments)
                 for ids in self.vocab.encode_batch(seg.sentences) if ids]
        if not pairs:
            raise UserError(f"{d.train}: no training sentences")
        self.train_set = PairDataset(labels, probs, pairs)
        val = load_tuples(d.val)
        segs = [s for s in val.segments if s.sentences]
        segs = segs[:d.val_limit] if d.val_limit else segs
        val.segments = segs
        self.val_labels, self.val_probs = encode_tuples(val, self.slots, self.labels)
        self.val_refs = [[self.normalise(t) for t in s.sentences] for s in segs]

    def normalise(self, text: str) -> str:
        """A reference sentence in the vocabulary's normal form (lower case, no punctuation)."""
        return " ".join(self.vocab.words(text))

    def train_dataset(self) -> Dataset:
        return self.train_set

    def collate(self, items):
        inp, tgt = pad_captions([ids for _, _, ids in items], self.vocab)
        return {"labels": torch.stack([x[0] for x in items]), "probs": torch.stack([x[1] for x in items]),
                "inp": inp, "tgt": tgt}

    def build_model(self):
        if self.vocab is None or "labels" not in self.extra:
            raise RuntimeError("DescribeTask.build_model needs the vocabulary and label sets: call setup() first")
        sizes = [len(self.labels[s]) for s in self.slots]
        return build_describer(self.cfg.model, sizes, len(self.vocab), self.vocab.pad)

    def loss(self, model, batch, device):
        tgt = batch["tgt"].to(device)
        logits = model(batch["inp"].to(device), batch["labels"].to(device), batch["probs"].to(device))  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), ignore_index=self.vocab.pad,
                               reduction="sum", label_smoothing=self.cfg.train.label_smoothing)
        return loss, (tgt != self.vocab.pad).sum()

    def validate(self, model, device) -> dict[str, float]:
        hyps = describe_segments(model, self.val_labels, self.val_probs, self.vocab, self.cfg.decode, device)
        return {"BLEU4": bleu4([h[0][0] for h in hyps], self.val_refs)}


__all__ = ["DescribeConfig", "DescribeDataConfig", "DescribeTask", "encode_tuples", "describe_segments",
           "bleu4"]
