"""What every evaluating command writes and prints: JSON files in one folder, a table for people,
and with ``--json`` exactly one JSON object on stdout (the table and file list then go to stderr,
so ``captionkit evaluate --json | jq`` works).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import UserError


def decode_tag(cfg) -> str:
    """The decoding settings as a file-name part: greedy, beam5, beam5_ln0.5, sample10_T1.5."""
    if cfg.method == "beam":  # length normalisation changes the captions: its own files
        return f"beam{cfg.beam_size}" + (f"_ln{cfg.length_norm:g}" if cfg.length_norm else "")
    if cfg.method == "sample":
        return f"sample{cfg.n}_T{cfg.temperature:g}"
    return "greedy"


def write_outputs(out: str | Path, files: dict[str, object]) -> list[Path]:
    """Write ``{file name: JSON-able object}`` into folder ``out``; returns the paths written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, obj in files.items():
            (out / name).write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
            paths.append(out / name)
    except OSError as e:
        raise UserError(f"cannot write into {out}: {e.strerror or e}") from None
    return paths


def emit(summary: dict, text: str, as_json: bool, written: list[Path] = ()) -> None:
    """Print ``text`` (and the files written) for people; with ``as_json`` stdout gets only
    ``summary`` as one JSON line and the rest goes to stderr."""
    people = sys.stderr if as_json else sys.stdout
    print(text, file=people)
    if written:
        print("wrote " + " and ".join(map(str, written)), file=people)
    if as_json:
        print(json.dumps(summary), flush=True)
