"""Expanding the file and folder arguments of ``caption`` and ``classify`` into input files."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .video import VIDEO_EXTENSIONS

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
KINDS = {"image": (IMAGE_SUFFIXES, False), "video": (frozenset(VIDEO_EXTENSIONS), True)}  # kind -> (suffixes, recurse)


def expand_inputs(inputs: list[str], kind: str = "image") -> list[Path]:
    """Files as given; folders expanded to their ``kind`` files, sorted (videos: class sub-folders too)."""
    suffixes, recurse = KINDS[kind]
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = path.rglob("*") if recurse else path.iterdir()
            files += sorted(p for p in found if p.suffix.lower() in suffixes and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"no such {kind} or folder: {path}")
    if not files:
        raise UserError(f"no {kind}s found in {', '.join(inputs)}")
    return files
