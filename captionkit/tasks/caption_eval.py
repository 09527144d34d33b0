"""``captionkit evaluate`` for captioners (single models and ensembles): caption a split of the
checkpoint's dataset (through the feature caches when every CNN is frozen), score it with the
official scorers (or the exact fast path), and compute the LRCN caption statistics (section 5).
"""
from __future__ import annotations

import time

import torch

from ..decoding import DecodeConfig
from ..features import frozen_features
from ..metrics import caption_stats, score_captions
from .caption_data import load_split
from .caption_generate import caption_features, caption_source


def evaluate_captions(task, model, split: str, cfg: DecodeConfig, device: torch.device | str = "cpu",
                      batch_size: int = 100, limit: int = 0, metrics=("bleu", "meteor", "rouge", "cider"),
                      official: bool = True):
    """-> (summary dict, COCO results [{image_id, caption}], ScoreReport with per-image scores)."""
    device = torch.device(device)
    src = load_split(task.cfg.data, split)
    items = src.items[:limit] if limit else src.items
    enc = task.cfg.encoder
    feats = frozen_features(model.encoder, [it.image_id for it in items], src.image_by_id,  # (N, D) or None
                            enc.cache_dir if enc.cache else None, enc.batch_size, device, stamp=src.stamp)
    t0 = time.time()
    if feats is not None:  # frozen CNNs: reuse (or fill) the training feature caches
        hyps = caption_features(model, feats, task.vocab, cfg, device, batch_size, progress=True)
    else:
        hyps = caption_source(model, src, task.vocab, cfg, device, limit=len(items), progress=True)
    decode_seconds = time.time() - t0
    res = {it.image_id: h[0][0] for it, h in zip(items, hyps)}
    refs = {it.image_id: it.captions for it in items}
    report = score_captions(refs, res, metrics=metrics, official=official, per_image=True)
    train_caps = [c for it in load_split(task.cfg.data, "train").items for c in it.captions]
    stats = caption_stats(res, train_caps, refs)
    coco = [{"image_id": int(i) if i.isdigit() else i, "caption": c} for i, c in res.items()]
    summary = {"split": split, "images": len(res), "decode": vars(cfg), "decode_seconds": round(decode_seconds, 2),
               "scores": report.scores, "stats": stats, "settings": report.settings}
    return summary, coco, report
