"""Thumbnails for report cards: small JPEGs embedded as ``data:`` URIs, or links to the originals.

A 224x224 Flickr8k photo becomes a 192-pixel JPEG of about 9 KB (quality 80), so a 5,000-image page
stays near 60 MB. JPEG decoding uses Pillow's ``draft`` mode: large photos are decoded at a reduced
scale directly, which keeps a 1,000-image report to a few seconds. Image files are found by id in
a folder (``find_images``): by file name, by file name without extension, or (COCO) by the
zero-padded number at the end of the file name.
"""
from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from urllib.parse import quote

from PIL import Image

THUMB_SIDE = 192      # pixels, longest side
THUMB_QUALITY = 80    # JPEG quality
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def jpeg_uri(image: Image.Image, quality: int = THUMB_QUALITY) -> str:
    """A PIL image -> a base64 JPEG data URI."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(image: Image.Image) -> str:
    """A PIL image -> a base64 PNG data URI (for heat maps: sharp cells, no JPEG ringing)."""
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def open_small(source: Path | Image.Image, side: int = THUMB_SIDE) -> Image.Image | None:
    """A file (or an image already in memory) -> RGB, longest side <= ``side``; None if unreadable."""
    try:
        if isinstance(source, Image.Image):
            img = source.copy()
        else:
            img = Image.open(source)
            img.draft("RGB", (side, side))   # JPEG: decode at a reduced scale directly
        img = img.convert("RGB")
        img.thumbnail((side, side))
        return img
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def thumbnail_uri(source: Path | Image.Image, side: int = THUMB_SIDE,
                  quality: int = THUMB_QUALITY) -> str | None:
    """A file or image -> a small JPEG data URI; None when it cannot be read."""
    img = open_small(source, side)
    return None if img is None else jpeg_uri(img, quality)


def link_uri(path: Path, page_dir: Path) -> str:
    """A link to the original file, relative to the page's folder (the page can move together with
    its images), URL-quoted; absolute ``file:`` URI where no relative path exists (another drive)."""
    try:
        return quote(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())
    except ValueError:
        return path.resolve().as_uri()


def find_images(folder: str | Path, ids: list[str]) -> dict[str, Path | None]:
    """Image ids -> files in ``folder`` (None where no file matches); the folder is listed once."""
    folder = Path(folder)
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return {i: None for i in ids}
    by_name = {n: n for n in names}
    by_stem: dict[str, str] = {}
    by_number: dict[str, str] = {}
    for n in names:
        stem, suffix = os.path.splitext(n)
        if suffix.lower() not in IMAGE_SUFFIXES:
            continue
        by_stem.setdefault(stem, n)
        m = _TRAILING_NUMBER.search(stem)
        if m:
            by_number.setdefault(str(int(m.group(1))), n)
    out: dict[str, Path | None] = {}
    for i in ids:
        name = by_name.get(i) or by_stem.get(i) or (by_number.get(str(int(i))) if i.isdigit() else None)
        out[i] = folder / name if name else None
    return out
