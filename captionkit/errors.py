"""The one exception type the CLI turns into a one-line message and a non-zero exit (and
``read_utf8``, which reads a user's text file with that error for a file that is not UTF-8).

Raise ``UserError`` for anything the user can fix (a bad file, field, value or option): the message
must name the file, field or value. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line (no traceback) and exit status 2."""


def read_utf8(path, newline: str | None = None) -> str:
    """A user's text file, whole; a file that is not UTF-8 is a UserError naming it and the byte.
    ``newline`` is ``open``'s: None turns \\r\\n into \\n, "" keeps line endings as they are."""
    try:
        with open(path, encoding="utf-8", newline=newline) as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
