"""``captionkit`` command line: argparse subcommands that parse and call the library, nothing more.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``.
A ``UserError`` anywhere, and any argument argparse rejects, becomes one line on stderr and exit
status 2. A reader that closes the pipe early (``captionkit caption DIR | head``) ends the command
quietly, as Unix filters do: no traceback, exit status 141 (128 + SIGPIPE, what a shell reports for
a process ended by a closed pipe).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import UserError

COMMANDS = ("demo", "train", "caption", "evaluate", "score", "retrieve", "classify", "describe",
            "report")


EXIT_BROKEN_PIPE = 141


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one ``--help`` away); subcommands inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="captionkit", description="LRCN captioning, video description, activity recognition "
        "and image-sentence retrieval (run 'captionkit demo' first)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return run(build_parser(), argv)
    except BrokenPipeError:
        # The reader is gone: send what is still buffered nowhere, so the exit flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run its subcommand; UserError and Ctrl-C become one line on stderr."""
    args = parser.parse_args(argv)  # --help writes here: inside main's closed-pipe handler
    try:
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return status
    except UserError as e:
        print(f"captionkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"captionkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
