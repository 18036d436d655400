"""Cycler exports in, first cycle out.

`read_export(path)` finds the format from the file's content and returns a `FirstCycle` (a
cycler export) or a list of `SheetRow` (a result sheet entered by hand). It raises only
`ReadError`, or its subclass `UnsupportedFormat` when no reader knows the file.

Formats: arbin-csv, maccor-text, neware-csv, biologic-mpt, biologic-mpr, result-sheet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.cycler import arbin, biologic, maccor, neware, sheet
from agent.cycler.base import (
    FailureClass,
    FirstCycle,
    MassSource,
    Outcome,
    ReadError,
    SheetRow,
    StepSummary,
    UnsupportedFormat,
)
from agent.cycler.detect import detect

__all__ = [
    "READERS",
    "FailureClass",
    "FirstCycle",
    "MassSource",
    "Outcome",
    "ReadError",
    "SheetRow",
    "StepSummary",
    "UnsupportedFormat",
    "detect",
    "read_export",
]

READERS: dict[str, Callable[[Path], FirstCycle | list[SheetRow]]] = {
    arbin.FORMAT: arbin.read,
    maccor.FORMAT: maccor.read,
    neware.FORMAT: neware.read,
    biologic.FORMAT: biologic.read,
    biologic.MPR_FORMAT: biologic.read_mpr,
    sheet.FORMAT: sheet.read,
}


def read_export(path: Path) -> FirstCycle | list[SheetRow]:
    """Detect the file's format and read it; only ReadError / UnsupportedFormat escape."""
    path = Path(path)
    fmt = "detect"
    try:
        fmt = detect(path)
        return READERS[fmt](path)
    except ReadError:
        raise
    except Exception as error:  # every reader is guarded; this is the last line of defence
        raise ReadError(f"{fmt}: {type(error).__name__}: {error}") from error
