"""``captionkit`` command line: argparse subcommands that parse and call the library, nothing more.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``.
A ``UserError`` anywhere becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import UserError

COMMANDS = ("demo", "train", "caption", "evaluate", "score", "retrieve", "classify", "describe",
            "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captionkit", description="LRCN captioning, video description, activity recognition "
        "and image-sentence retrieval (run 'captionkit demo' first)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"captionkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"captionkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
