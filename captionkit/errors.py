"""The one exception type the CLI turns into a one-line message and a non-zero exit.

Raise ``UserError`` for anything the user can fix (a bad file, field, value or option): the message
must name the file, field or value. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line (no traceback) and exit status 2."""
