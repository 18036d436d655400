"""File names as people and databases can read them."""

from __future__ import annotations

import os


def readable_name(name: str) -> str:
    """``name`` with bytes that are not UTF-8 written as ``\\xNN``.

    A file system hands Python such bytes as lone surrogates (``os.fsdecode``), which no
    database, log or web page can encode: a latin-1 name from an old share, ``résumé``,
    becomes ``r\\xe9sum\\xe9``. Valid names come back unchanged.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")
