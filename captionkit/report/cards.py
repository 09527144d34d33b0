"""One report card per image (or video segment): picture, captions, references, scores, attention.

A card is plain data (``Card``) rendered by ``card_html``; everything textual is escaped. Attention
maps (``(T, K, K)``, one per generated word, as an attention captioner writes them; Xu et al.'s
"Show, Attend and Tell" figure) are drawn over the thumbnail as small heat-map tiles, one per word.

Shape legend: T words, K attention grid side.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .page import controls, esc, fmt
from .thumbs import jpeg_uri

SCORE_NAMES = {"Bleu_4": "BLEU-4", "CIDEr": "CIDEr-D", "METEOR": "METEOR"}
TILE = 68   # attention tile side, pixels


@dataclass
class Card:
    id: str
    nbest: list[tuple[str, float | None]]                  # generated captions, best first
    references: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # Bleu_4 / CIDEr / METEOR of the best caption
    in_training: bool = False                               # best caption copied from the training set
    image: str | None = None                                # data URI or link; None: image missing
    show_image: bool = True                                 # False: no picture slot (video segments)
    attention: list[tuple[str, str]] = field(default_factory=list)  # (word, tile data URI)
    extra: str = ""                                         # trusted HTML built from escaped parts


def attention_tiles(image: Image.Image | None, maps: np.ndarray, words: list[str]) -> list[tuple[str, str]]:
    """(T, K, K) maps -> one (word, JPEG data URI) tile per map: the map, upsampled and normalised to
    its maximum, in red over the dimmed image (or alone when there is no image)."""
    base = (image.convert("L").resize((TILE, TILE)).convert("RGB") if image is not None
            else Image.new("RGB", (TILE, TILE), (40, 40, 40)))
    base_px = np.asarray(base, dtype=np.float32) * 0.55                          # (TILE, TILE, 3)
    labels = words + ["<end>"] * (len(maps) - len(words))
    tiles = []
    for word, m in zip(labels, maps):
        m = np.asarray(m, np.float32)
        m = m / m.max() if m.max() > 0 else m
        heat = Image.fromarray((m * 255).astype(np.uint8)).resize((TILE, TILE), Image.BILINEAR)
        h = np.asarray(heat, dtype=np.float32)[..., None] / 255.0                 # (TILE, TILE, 1)
        px = base_px * (1 - 0.6 * h) + np.array([255, 40, 20], np.float32) * 0.6 * h
        tiles.append((word, jpeg_uri(Image.fromarray(px.clip(0, 255).astype(np.uint8)), 85)))
    return tiles


def _scores_line(scores: dict[str, float]) -> str:
    parts = [f"{name} {fmt(scores[k])}" for k, name in SCORE_NAMES.items() if k in scores]
    return f'<div class="scores">{esc(" · ".join(parts))}</div>' if parts else ""


def _caption_line(text: str, logp: float | None) -> str:
    lp = f' <span class="logp">(log p {logp:.2f})</span>' if logp is not None else ""
    return f"{esc(text)}{lp}"


def card_html(card: Card, order: int) -> str:
    """A card as one HTML block; data-* attributes feed the page's sort."""
    cider = card.scores.get("CIDEr")
    best, logp = card.nbest[0]
    attrs = (f'data-order="{order}" data-len="{len(best.split())}"'
             + (f' data-cider="{cider:.6f}"' if cider is not None else ""))
    out = [f'<div class="card" id="card-{order}" {attrs}>']
    if card.show_image and card.image is None:
        out.append('<div class="missing">image not found</div>')
    elif card.show_image and card.image.startswith("data:"):   # set by the page's script (cards_section)
        out.append(f'<img class="thumb" data-k="{order}" alt="{esc(card.id)}">')
    elif card.show_image:                                       # a link to the original file
        out.append(f'<img class="thumb" loading="lazy" src="{esc(card.image)}" alt="{esc(card.id)}">')
    out.append(f'<div class="id">{esc(card.id)}</div>')
    badge = ' <span class="badge" title="this exact caption is in the training set">in training set</span>' \
        if card.in_training else ""
    out.append(f'<div class="gen">{_caption_line(best, logp)}{badge}</div>')
    if len(card.nbest) > 1:
        out.append('<ol class="nbest" start="2">' + "".join(
            f"<li>{_caption_line(c, lp)}</li>" for c, lp in card.nbest[1:]) + "</ol>")
    out.append(_scores_line(card.scores))
    out.append(card.extra)
    if card.references:
        out.append('<ul class="refs">' + "".join(f"<li>{esc(r)}</li>" for r in card.references) + "</ul>")
    else:
        out.append('<div class="refs">no references</div>')
    if card.attention:
        out.append('<div class="att">' + "".join(
            f'<figure><img src="{u}" alt="attention for {esc(w)}"><figcaption>{esc(w)}</figcaption></figure>'
            for w, u in card.attention) + "</div>")
    out.append("</div>")
    return "".join(out)


def cards_section(cards: list[Card], heading: str) -> tuple[str, str]:
    """(heading, HTML) of the sort/filter controls, every card, and the embedded thumbnails as one
    JSON list indexed by card (base64 and JSON hold no "<", so the block cannot end early)."""
    body = "\n".join(card_html(c, k) for k, c in enumerate(cards))
    thumbs = [c.image if c.image and c.image.startswith("data:") else None for c in cards]
    blob = json.dumps(thumbs).replace("<", "\\u003c")
    return (f"{heading} ({len(cards)})", controls(len(cards)) + f'\n<div id="cards">{body}</div>\n'
            f'<script type="application/json" id="thumbs">{blob}</script>')
