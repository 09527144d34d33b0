"""Reports for the video tasks: activity recognition (LRCN Sec. 4) and video description (Sec. 6).

**Activity**: the ``<tag>_scores.json`` that ``captionkit evaluate`` writes for an activity checkpoint
(``accuracy``, ``mean_class_accuracy``, ``per_class_accuracy``, ``confusion``, ``classes``) becomes a
summary, the row-normalised confusion matrix and per-class accuracy (plot and table). When the file
also carries ``"attention": {video_id: {"weights": (T, K, K) or (T, K*K), "label": str, "pred": str,
"frames": [image paths, optional]}}`` (a soft-attention model, Sharma et al. Sec. 3), each video gets
an attention strip: one tile per time step, the map over its frame (Figs. 3-4 of that paper).

**Video description**: the sentences ``captionkit evaluate`` writes for a "describe" checkpoint
(``{segment id: sentence}``, or ``describe --format json``'s n-best list) with the tuple file named by
its scores file (``"tuples"``) or given directly: one card per segment with the video and time span,
the CRF tuple (with the slot probability when the file has it), the sentence(s), the reference
sentences and per-segment BLEU-4 / CIDEr-D.

Shape legend: T time steps, K attention grid side, C classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.captions import read_json
from ..errors import UserError
from . import plots
from .cards import Card, attention_tiles, cards_section
from .inputs import NBest, attention_maps, parse_caption
from .page import command_line, esc, kv_table, page, plots_html, table, write_page
from .thumbs import open_small


def _activity_fields(data, path) -> tuple[np.ndarray, list[str]]:
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list) or "confusion" not in data:
        raise UserError(f"{path}: not an activity scores file (needs 'classes' and 'confusion')")
    classes = [str(c) for c in data["classes"]]
    try:
        cm = np.asarray(data["confusion"], dtype=np.int64)          # (C, C)
    except (ValueError, TypeError):
        raise UserError(f"{path}: 'confusion' must be a C x C matrix of counts") from None
    if cm.shape != (len(classes), len(classes)):
        raise UserError(f"{path}: 'confusion' is {cm.shape}, expected {len(classes)} x {len(classes)}")
    return cm, classes


def _strip(vid: str, entry, base: Path) -> str:
    """One video's attention strip: a tile per time step, over its frame when frames are given."""
    where = f"attention[{vid!r}]"
    if not isinstance(entry, dict) or "weights" not in entry:
        raise UserError(f"{where}: expected {{'weights': T maps, 'label', 'pred', 'frames'}}")
    t = len(entry["weights"]) if isinstance(entry["weights"], list) else 0
    maps = attention_maps(entry["weights"], t, where)                   # (T, K, K)
    frames = entry.get("frames") or []
    tiles = []
    for k in range(len(maps)):
        frame = open_small(base / frames[k]) if k < len(frames) else None
        tiles += attention_tiles(frame, maps[k:k + 1], [f"t={k + 1}"])
    head = f"{esc(vid)}: true {esc(entry.get('label', '?'))}, predicted {esc(entry.get('pred', '?'))}"
    figs = "".join(f'<figure><img src="{u}" alt="{esc(w)}"><figcaption>{esc(w)}</figcaption></figure>'
                   for w, u in tiles)
    return f'<div class="strip"><div>{head}</div><div class="att">{figs}</div></div>'


def activity_report_html(path: Path, command: str) -> str:
    """The activity page as a string."""
    data = read_json(path, "activity scores file")
    cm, classes = _activity_fields(data, path)
    per_class = {str(k): float(v) for k, v in (data.get("per_class_accuracy") or {}).items()}
    keys = ("checkpoint", "split", "modality", "fuse_with", "rgb_weight", "videos", "accuracy",
            "mean_class_accuracy", "direction_accuracy", "notes")
    rows = [("report command", command)] + [(k, data[k]) for k in keys if k in data]
    uris = {"confusion": plots.confusion(cm, classes)}
    if per_class:
        uris["per-class accuracy"] = plots.class_accuracy(per_class)
    counts = cm.sum(1)
    sections = [("Summary", kv_table(rows)), ("Confusion matrix and per-class accuracy", plots_html(uris)),
                ("Per class", table(["class", "accuracy", "videos"],
                                    [[c, per_class.get(c), int(counts[k])] for k, c in enumerate(classes)]))]
    attention = data.get("attention")
    if attention:
        if not isinstance(attention, dict):
            raise UserError(f"{path}: 'attention' must be an object {{video id: {{weights, ...}}}}")
        strips = "\n".join(_strip(v, e, path.parent) for v, e in attention.items())
        sections.append((f"Attention over time ({len(attention)} videos)", strips))
    return page(f"captionkit activity report: {data.get('split', path.stem)}", sections)


def write_activity_report(scores_path: str | Path, path: str | Path | None = None,
                          command: str | None = None) -> Path:
    """Write the activity report next to its scores file (or to ``path``); returns the page path."""
    scores_path = Path(scores_path)
    text = activity_report_html(scores_path, command or command_line())
    return write_page(path or scores_path.with_suffix(".html"), text)


def read_sentences(path: str | Path) -> dict[str, NBest]:
    """``{id: sentence}`` or ``[{"id", "sentences": [{"sentence", "logp"}]}]`` -> {id: n-best}."""
    data = read_json(path, "sentences file")
    if isinstance(data, dict):
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        if bad:
            raise UserError(f"{path}: sentence of {bad[0]!r} is not a string")
        return {str(k): [(v, None)] for k, v in data.items()}
    if not isinstance(data, list):
        raise UserError(f"{path}: expected {{segment id: sentence}} or a list of {{id, sentences}}")
    out = {}
    for k, obj in enumerate(data):
        where = f"{path}[{k}]"
        if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("sentences"), list) \
                or not obj["sentences"]:
            raise UserError(f"{where}: expected {{'id', 'sentences': [{{sentence, logp}}]}}")
        out[str(obj["id"])] = [parse_caption({"caption": s.get("sentence"), "logp": s.get("logp")}
                                        if isinstance(s, dict) else s, f"{where}.sentences[{j}]")
                               for j, s in enumerate(obj["sentences"])]
    return out


def _tuple_html(seg, labels: dict[str, list[str]]) -> str:
    cells = []
    for slot, lab in seg.tuple.items():
        p = seg.probs.get(slot)
        prob = f" ({float(p[labels[slot].index(lab)]):.2f})" if p is not None else ""
        cells.append(f"<tr><td>{esc(slot)}</td><td>{esc(lab)}{esc(prob)}</td></tr>")
    span = f"{esc(seg.video)} {seg.start:.1f}–{seg.end:.1f} s" if seg.video else ""
    return f'<div class="id">{span}</div><table class="kv">{"".join(cells)}</table>'


def write_describe_report(path: str | Path, nbest: dict[str, NBest], tuples_path: str | Path,
                          summary: dict | None = None, command: str | None = None) -> Path:
    """Write the video-description report: one card per described segment; returns the page path."""
    from ..data.tuples import load_tuples
    from .captions import per_image_scores

    ts = load_tuples(tuples_path)
    segs = {s.id: s for s in ts.segments}
    unknown = [i for i in nbest if i not in segs]
    if unknown:
        raise UserError(f"{len(unknown)} described segment(s) are not in {tuples_path}, e.g. {unknown[0]!r}")
    refs = {i: list(segs[i].sentences) for i in nbest}
    summary = dict(summary or {})
    fast = per_image_scores(nbest, refs)
    if fast and not summary.get("scores"):
        summary["scores"] = fast.scores
    cards = [Card(i, caps, refs[i], dict(fast.per_image.get(i, {})) if fast else {}, show_image=False,
                  extra=_tuple_html(segs[i], ts.labels)) for i, caps in nbest.items()]
    keys = ("checkpoint", "split", "tuples", "segments", "decode")
    rows = [("report command", command or command_line())] + [(k, summary[k]) for k in keys if k in summary]
    rows.append(("per-segment scores", "captionkit fast path (exact BLEU/CIDEr-D, raw references)"))
    scores = summary.get("scores") or {}
    sections = [("Summary", table(["metric", "score"], [[k, v] for k, v in scores.items()]) + kv_table(rows))]
    cider = [c.scores["CIDEr"] for c in cards if "CIDEr" in c.scores]
    if cider:
        sections.append(("Per-segment CIDEr-D", plots_html({"CIDEr-D": plots.cider_histogram(cider)})))
    sections.append(cards_section(cards, "Segments"))
    return write_page(path, page(f"captionkit video description report ({len(cards)} segments)", sections))
