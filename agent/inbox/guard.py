"""The inbox guard: which dropped paths may be read at all.

Nothing outside the inbox is touched: a path that leads out of it (``..``, a linked folder)
is refused as it stands, and a link inside it is quarantined without being followed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.store.files import readable_name


@dataclass(frozen=True)
class Admitted:
    """A regular file inside the inbox: to be read."""

    path: Path
    name: str


@dataclass(frozen=True)
class Unread:
    """Inside the inbox but never to be read (a link): quarantined with the reason."""

    path: Path
    name: str
    reason: str


@dataclass(frozen=True)
class Refused:
    """Not the inbox's to handle: left where it is."""

    name: str
    reason: str


def admit(inbox: Path, path: Path | str) -> Admitted | Unread | Refused:
    """What may be done with ``path`` (relative to the inbox, or absolute inside it)."""
    path = Path(os.path.normpath(inbox / path))  # '..' collapsed before any check
    if not is_inside(path, inbox):
        return Refused(name=str(path), reason="not in the inbox")
    name = readable_name(path.relative_to(inbox).as_posix())
    if path.is_symlink():
        return Unread(path, name, "symbolic link: refused, never followed")
    if not is_inside(path.resolve(), inbox.resolve()):
        return Refused(name=name, reason="linked folder outside the inbox")
    if path.is_file() and path.stat().st_nlink > 1:
        return Unread(
            path, name, "hard link: refused (its content can change through its other "
            "name); copy the file into the inbox instead",
        )  # fmt: skip
    return Admitted(path, name)


def is_inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True
