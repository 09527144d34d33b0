"""Caption metrics: coco-caption's official scorers, an exact fast path, and LRCN caption statistics.

Public API (other modules call these names):
- ``score_captions(refs, res, metrics, official, per_image) -> ScoreReport``
- ``fast_scores(refs, res) -> {"Bleu_1".."Bleu_4", "CIDEr"}`` (no Java; for validation every epoch)
- ``caption_stats(generated, train_captions, refs) -> dict``
- ``corpus_bleu(hyps, refs) -> dict`` (sacrebleu, for video description)
"""
from .api import ScoreReport, fast_scores, score_captions
from .corpus import corpus_bleu
from .stats import caption_stats

__all__ = ["ScoreReport", "score_captions", "fast_scores", "caption_stats", "corpus_bleu"]
