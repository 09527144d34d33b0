"""Caption statistics from the LRCN paper (Donahue et al., Sec. 5.2, Table 4 discussion).

How often the model just repeats a training caption, how much of the reference vocabulary it ever
uses, how varied its captions are (distinct n-grams), and how long they are. Captions are compared
after a light normalisation (lower case, words = runs of letters, digits and apostrophes), so
"A dog runs." and "a dog runs" are the same caption.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def normalise(caption: str) -> tuple[str, ...]:
    """A caption -> its lower-case words."""
    return tuple(_WORD.findall(caption.lower()))


def caption_stats(generated: dict[str, str], train_captions: list[str],
                  refs: dict[str, list[str]]) -> dict[str, float]:
    """Generated captions {id: caption}, training captions, references {id: [caption]} -> statistics.

    - ``in_training``: share of generated captions that appear verbatim among the training captions
    - ``unique_captions``: share of generated captions that are distinct from each other
    - ``vocab_coverage``: share of the reference vocabulary (words in ``refs``) ever generated
    - ``vocab_generated``: number of distinct words generated; ``vocab_reference``: of the references
    - ``distinct_1`` .. ``distinct_4``: distinct n-grams / all n-grams over the generated captions
    - ``avg_length``: mean number of words per generated caption
    """
    gen = [normalise(c) for c in generated.values()]
    if not gen:
        raise ValueError("caption_stats needs at least one generated caption")
    train = {normalise(c) for c in train_captions}
    ref_vocab = {w for caps in refs.values() for c in caps for w in normalise(c)}
    gen_vocab = {w for g in gen for w in g}
    out = {
        "in_training": sum(g in train for g in gen) / len(gen),
        "unique_captions": len(set(gen)) / len(gen),
        "vocab_coverage": len(gen_vocab & ref_vocab) / len(ref_vocab) if ref_vocab else 0.0,
        "vocab_generated": float(len(gen_vocab)),
        "vocab_reference": float(len(ref_vocab)),
    }
    for n in range(1, 5):
        grams = [g[i:i + n] for g in gen for i in range(len(g) - n + 1)]
        out[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else 0.0
    out["avg_length"] = sum(len(g) for g in gen) / len(gen)
    return out
