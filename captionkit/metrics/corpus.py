"""Corpus BLEU through sacrebleu, for video description (LRCN Sec. 6 reports BLEU-4 on TACoS).

sacrebleu's defaults: its ``13a`` tokenizer (the mteval-v13a rules: punctuation split off, no lower
casing; captionkit passes ``lowercase=True``), sacrebleu's default "exp" smoothing, scores
in 0..100; the returned ``signature`` states all of it.
This is *not* coco-caption's BLEU (PTB tokens, lower case, punctuation removed, 0..1): use
``score_captions`` to compare with captioning papers.
"""
from __future__ import annotations


def corpus_bleu(hyps: list[str], refs: list[list[str]], lowercase: bool = True,
                tokenize: str = "13a") -> dict:
    """hyps[i] with its references refs[i] (any number each) -> {"bleu", "precisions", "bp", ..., "signature"}."""
    import sacrebleu
    from sacrebleu.metrics import BLEU

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    if any(len(r) == 0 for r in refs):
        raise ValueError("every hypothesis needs at least one reference")
    k = max(len(r) for r in refs)
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(k)]  # (k, n): sacrebleu's layout
    metric = BLEU(lowercase=lowercase, tokenize=tokenize)
    s = metric.corpus_score(list(hyps), streams)
    return {"bleu": s.score, "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len,
            "ref_len": s.ref_len, "tokenize": tokenize, "lowercase": lowercase,
            "signature": str(metric.get_signature()), "sacrebleu": sacrebleu.__version__}
