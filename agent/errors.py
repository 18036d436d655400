"""The one base of labloop's expected errors.

A ``LabloopError`` is a situation a person can act on (no history yet, no such batch, the
port is taken); its message says what to do. The command line prints it as one line and
exits with 2, the page shows it as it is; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LabloopError(Exception):
    """An expected situation; the message says what happened and what to do."""
