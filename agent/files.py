"""File names as people and databases can read them."""

from __future__ import annotations

import os
import re

# control characters (a newline or an escape in a name would forge lines in logs and files)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def readable_name(name: str) -> str:
    """``name`` with bytes that are not UTF-8, and control characters, written as ``\\xNN``.

    A file system hands Python undecodable bytes as lone surrogates (``os.fsdecode``), which
    no database, log or web page can encode: a latin-1 name from an old share, ``résumé``,
    becomes ``r\\xe9sum\\xe9``. Other valid names come back unchanged.
    """
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
