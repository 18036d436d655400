"""Where a recorded file goes: archive/ or quarantine/, with the reason beside a quarantined one.

The row is committed with its destination before the file is moved (`agent.inbox.ingest`),
so placing is repeatable: a file already at its destination is left alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from agent.store.db import FileStatus, IngestedFile
from agent.store.files import write_atomic

# how every duplicate's reason starts: its note then says there is nothing to fix
DUPLICATE = "duplicate"


def destination(folder: Path, row: IngestedFile) -> Path:
    """The file's name in archive/ or quarantine/: its row id first, so names never clash."""
    safe = row.original_name.replace("/", "__")
    return folder / f"{row.id:06d}_{safe}"


def place_file(path: Path, row: IngestedFile, move: bool) -> None:
    """Put the file where its committed row says, with the reason beside a quarantined one."""
    target = Path(row.stored_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if row.status == FileStatus.QUARANTINED:
        write_atomic(error_note(target), error_text(row).encode())
    if target.exists() or target.is_symlink():
        return
    if not move:
        shutil.copy2(path, target)
    elif path.is_symlink():
        # keep the link itself as evidence; never copy what it points to
        os.rename(path, target)
    else:
        shutil.move(path, target)


def error_note(stored: Path) -> Path:
    """The note beside a quarantined file."""
    return stored.with_name(stored.name + ".error.txt")


def duplicate_reason(first: IngestedFile) -> str:
    when = first.finished_at.strftime("%Y-%m-%d %H:%M") if first.finished_at else "earlier"
    return (
        f"{DUPLICATE}: the same bytes were recorded from {first.original_name!r} "
        f"(file #{first.id}, {when}); nothing new to store"
    )


def error_text(row: IngestedFile) -> str:
    what_now = (
        "nothing to do: its content is recorded already; this copy may be deleted."
        if (row.error or "").startswith(DUPLICATE)
        else "fix the cause, then drop the corrected file into the inbox again."
    )
    return (
        f"file:     {row.original_name}\n"
        f"reason:   {row.error}\n"
        f"sha256:   {row.sha256}\n"
        f"record:   ingested file #{row.id}, {row.finished_at:%Y-%m-%d %H:%M:%S} UTC\n"
        f"what now: {what_now}\n"
    )
