"""The captioning report: a summary, plots and one card per image, written as one HTML page.

Inputs are what ``captionkit evaluate`` already has or writes: the n-best captions per image, the
references, the training captions (for the "copied from the training set" mark and LRCN's caption
statistics, Donahue et al. Sec. 5.2), per-image scores (computed here by the exact fast BLEU/CIDEr-D
path when the scores file has none) and the scores summary with the settings that produced it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import UserError
from ..metrics.stats import caption_stats, normalise
from . import plots
from .cards import Card, attention_tiles, cards_section
from .inputs import NBest
from .page import command_line, kv_table, page, plots_html, table, write_page
from .thumbs import THUMB_SIDE, find_images, link_uri, open_small, thumbnail_uri

ImageOf = Callable[[str], "Path | Image.Image | None"]   # image id -> file, image, or None (missing)

RUN_KEYS = ("checkpoint", "ensemble", "split", "images", "decode", "decode_seconds")


def images_in(folder: str | Path | None, ids: list[str], files: Mapping[str, Path] | None = None) -> ImageOf:
    """Image files named in the captions file first, else found by id in ``folder``."""
    if folder is not None and not Path(folder).is_dir():
        raise UserError(f"--images: no such folder: {folder}")
    found = find_images(folder, ids) if folder is not None else {}
    files = dict(files or {})
    return lambda i: files.get(i) or found.get(i)


def images_of_source(src) -> ImageOf:
    """An ``ImageSource`` (evaluate's split) -> its image files, or its rendered synthetic images."""
    items = {it.image_id: it for it in src.items}

    def image(i: str):
        item = items.get(i)
        if item is None:
            return None
        return item.image() if src.synthetic else item.file
    return image


def per_image_scores(nbest: dict[str, NBest], refs: dict[str, list[str]]):
    """Fast, exact BLEU-4 / CIDEr-D of the best caption of each image with references.

    CIDEr-D's document frequencies come from the images scored together, so all matched images are
    scored at once, as ``captionkit evaluate --fast`` does. Returns (ScoreReport or None)."""
    from ..metrics import score_captions

    ids = [i for i in nbest if refs.get(i)]
    if not ids:
        return None
    return score_captions({i: refs[i] for i in ids}, {i: nbest[i][0][0] for i in ids},
                          metrics=("bleu", "cider"), official=False, per_image=True)


def _picture(image_of: ImageOf | None, i: str, page_dir: Path, link: bool, side: int):
    """(src for the card or None, a small PIL image for attention overlays or None)."""
    try:
        source = image_of(i) if image_of is not None else None
    except (UserError, OSError):
        source = None
    if source is None or (isinstance(source, Path) and not source.is_file()):
        return None, None
    if link and isinstance(source, Path):
        return link_uri(source, page_dir), None
    if isinstance(source, Image.Image):
        return thumbnail_uri(source, side), source
    return thumbnail_uri(source, side), None


def build_cards(nbest: dict[str, NBest], refs: dict[str, list[str]], per_image: dict | None,
                train: set | None, image_of: ImageOf | None, page_dir: Path, link: bool = False,
                side: int = THUMB_SIDE, attention: dict[str, np.ndarray] | None = None,
                progress: bool = True) -> list[Card]:
    """One Card per captioned image, in the captions' order."""
    cards = []
    for i, caps in tqdm(nbest.items(), desc="report cards", disable=not progress, leave=False):
        src, small = _picture(image_of, i, page_dir, link, side)
        card = Card(i, caps, list(refs.get(i, [])), dict((per_image or {}).get(i, {})),
                    train is not None and normalise(caps[0][0]) in train, src)
        if attention and i in attention:
            if small is None and src is not None and not link:
                small = open_small(image_of(i), side)
            card.attention = attention_tiles(small, attention[i], caps[0][0].split())
        cards.append(card)
    return cards


def _summary(cards: list[Card], summary: dict, report_cmd: str, per_image_from: str) -> str:
    scores = summary.get("scores") or {}
    settings = summary.get("settings") or {}
    rows = [("command", report_cmd)]
    if settings.get("command") or summary.get("command"):
        rows.append(("scores made by", settings.get("command") or summary.get("command")))
    rows += [(k, summary[k]) for k in RUN_KEYS if k in summary]
    with_refs = sum(bool(c.references) for c in cards)
    copied = sum(c.in_training for c in cards)
    rows += [("images in this report", len(cards)), ("with references", with_refs),
             ("missing images", sum(c.show_image and c.image is None for c in cards)),
             ("captions copied from the training set", copied), ("per-image scores", per_image_from)]
    parts = [table(["metric", "score"], [[k, v] for k, v in scores.items()]) if scores else
             "<p>no scores: no captioned image has references</p>", kv_table(rows)]
    shown = {k: v for k, v in settings.items() if k not in ("command",)}
    if shown:
        parts.append("<details><summary>scoring settings</summary>" + kv_table(shown.items()) + "</details>")
    return "\n".join(parts)


def _statistics(nbest, refs, train_captions) -> list[tuple[str, str]]:
    """LRCN's caption statistics and the plots of the captions and their scores."""
    best = {i: c[0][0] for i, c in nbest.items()}
    uris = {}
    matched = [i for i in best if refs.get(i)]
    if matched:
        uris["length"] = plots.length_scatter(
            [len(normalise(best[i])) for i in matched],
            [float(np.mean([len(normalise(r)) for r in refs[i]])) for i in matched])
    uris["words"] = plots.word_plots(list(best.values()), [r for i in matched for r in refs[i]])
    out = []
    if matched and train_captions is not None:
        stats = caption_stats({i: best[i] for i in matched}, train_captions, {i: refs[i] for i in matched})
        stats = {k: int(v) if k.startswith("vocab_") and k != "vocab_coverage" else v for k, v in stats.items()}
        out.append(("Caption statistics (LRCN Sec. 5.2)", kv_table(stats.items())))
    out.append(("Captions: length and vocabulary", plots_html(uris)))
    return out


def caption_report_html(nbest: dict[str, NBest], refs: dict[str, list[str]], cards: list[Card],
                        summary: dict, train_captions: list[str] | None, title: str,
                        command: str, per_image_from: str) -> str:
    """The whole captioning page as a string."""
    sections = [("Summary", _summary(cards, summary, command, per_image_from))]
    cider = [c.scores["CIDEr"] for c in cards if "CIDEr" in c.scores]
    if cider:
        sections.append(("Per-image CIDEr-D", plots_html({"CIDEr-D histogram": plots.cider_histogram(cider)})))
    sections += _statistics(nbest, refs, train_captions)
    sections.append(cards_section(cards, "Images"))
    return page(title, sections)


def write_caption_report(path: str | Path, nbest: dict[str, NBest], refs: dict[str, list[str]], *,
                         train_captions: list[str] | None = None, image_of: ImageOf | None = None,
                         per_image: dict[str, dict[str, float]] | None = None, summary: dict | None = None,
                         attention: dict[str, np.ndarray] | None = None, link_images: bool = False,
                         thumb_side: int = THUMB_SIDE, command: str | None = None, title: str | None = None,
                         progress: bool = True) -> Path:
    """Write the captioning report for {id: n-best} against {id: references}; returns the page path."""
    if not nbest:
        raise UserError("the report needs at least one captioned image")
    path = Path(path)
    summary = dict(summary or {})
    per_image_from = "from the scores file"
    if per_image is None:
        fast = per_image_scores(nbest, refs)
        per_image, per_image_from = (fast.per_image if fast else {}), "captionkit fast path (exact BLEU/CIDEr-D)"
        if fast and not summary.get("scores"):
            summary["scores"], summary["settings"] = fast.scores, fast.settings
    train = {normalise(c) for c in train_captions} if train_captions is not None else None
    cards = build_cards(nbest, refs, per_image, train, image_of, path.parent, link_images, thumb_side,
                        attention, progress)
    title = title or f"captionkit report: {summary.get('split', path.stem)} ({len(cards)} images)"
    text = caption_report_html(nbest, refs, cards, summary, train_captions, title,
                               command or command_line(), per_image_from)
    return write_page(path, text)
