"""Files as labloop handles them: hashed, written whole, named readably."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

_CHUNK = 1 << 20

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


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read a megabyte at a time (exports can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_if_there(path: Path) -> str | None:
    """The sha256 of a file, None when it is not there."""
    try:
        return sha256_of(path)
    except FileNotFoundError:
        return None


def _temp_beside(path: Path) -> Path:
    # dot-prefixed (the watcher ignores it) and unique per writer, so two never share one
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _written_temp(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_beside(path)
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temp


def write_atomic(path: Path, data: bytes) -> Path:
    """Write (or replace) ``path`` so that a reader sees the old bytes or all the new ones."""
    os.replace(_written_temp(path, data), path)
    return path


def write_once(path: Path, data: bytes) -> Path:
    """Write ``path`` atomically; FileExistsError if it is there (never overwritten)."""
    temp = _written_temp(path, data)
    try:
        os.link(temp, path)  # atomic, and refuses to replace an existing file
    finally:
        temp.unlink()
    return path
