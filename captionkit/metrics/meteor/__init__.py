"""METEOR 1.5 without Java: the metric exactly as coco-caption runs ``meteor-1.5.jar -l en -norm``.

Modules: ``resources`` (the jar's word lists, synonyms and paraphrase table, cached), ``normalise``
(``-norm``), ``words`` (per-word hash codes, stems, synsets), ``matchers`` (exact / stem / synonym /
paraphrase candidates), ``aligner`` (the beam search), ``bounds`` (upper bounds of every
hypothesis/reference pair at once, numpy: which references need aligning), ``params`` (the English
parameters), ``scorer`` (statistics, scores, the best reference, corpus aggregation).
``meteor_score(gts, res)`` takes and returns what pycocoevalcap's ``Meteor().compute_score`` does.
``eval/bench_meteor.py`` measures the agreement with the jar and the speed.
"""
from .scorer import Meteor, Stats, meteor_score, score

__all__ = ["Meteor", "Stats", "meteor_score", "score"]
