"""``captionkit evaluate --report`` (on by default): the HTML page next to the files evaluate wrote.

Captioners: the split's references, images (files, or the rendered synthetic images) and training
captions are read again from the checkpoint's data config (the same ``load_split`` evaluate used),
so the page needs nothing evaluate does not already have. Video describers: the segments come from
the tuple file named in the summary. Activity models: the page is drawn from the scores file.
"""
from __future__ import annotations

from pathlib import Path


def write_evaluation_report(out: str | Path, tag: str, kind: str, task, split: str, generated,
                            summary: dict, per_image: dict | None = None) -> Path:
    """The report for one ``evaluate`` run into folder ``out``; returns the page path.

    ``generated``: what evaluate wrote, COCO results [{image_id, caption}] (captioners) or
    {segment id: sentence} (describers); activity kinds read ``<tag>_scores.json`` in ``out``."""
    out = Path(out)
    if kind == "caption":
        from ..tasks.caption_data import load_split
        from .captions import images_of_source, write_caption_report

        nbest = {str(g["image_id"]): [(g["caption"], None)] for g in generated}
        src = load_split(task.cfg.data, split)
        refs = {it.image_id: list(it.captions) for it in src.items if it.image_id in nbest}
        train = [c for it in load_split(task.cfg.data, "train").items for c in it.captions]
        return write_caption_report(out / f"report_{tag}.html", nbest, refs, train_captions=train,
                                    image_of=images_of_source(src), per_image=per_image,
                                    summary=summary)
    if kind == "describe":
        from .video import write_describe_report

        nbest = {str(i): [(s, None)] for i, s in generated.items()}
        return write_describe_report(out / f"report_{tag}.html", nbest, summary["tuples"], summary)
    from .video import write_activity_report

    return write_activity_report(out / f"{tag}_scores.json", out / f"{tag}_report.html")
