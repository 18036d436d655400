"""Which reader a file needs, decided from its content (never its name).

Only the first 64 KiB are read: magic bytes for binaries, then the header lines of the text (and,
for a zip archive, its member list). Files that are recognised but not supported raise
UnsupportedFormat saying what they are and what to drop instead.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

from agent.cycler import arbin, biologic, maccor, neware, sheet
from agent.cycler.base import ReadError, UnsupportedFormat
from agent.cycler.parsing import decode_head, delimiter_of, read_head

log = logging.getLogger(__name__)

# first match wins: the specific layouts before the looser column-name checks
_TEXT_FORMATS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (biologic.FORMAT, biologic.sniff),
    (maccor.FORMAT, maccor.sniff),
    (neware.FORMAT, neware.sniff),
    (arbin.FORMAT, arbin.sniff),
    (sheet.FORMAT, sheet.sniff),
)
_ACCESS_DB = (b"Standard Jet DB", b"Standard ACE DB")
_GZIP = b"\x1f\x8b"
# control bytes other than tab, newline, form feed and carriage return
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13})
_PREFIX = "unsupported format: "


def detect(path: Path) -> str:
    """The format name of the reader for ``path``; UnsupportedFormat when there is none."""
    try:
        head = read_head(Path(path))
    except OSError as error:
        raise ReadError(f"cannot read {Path(path).name}: {error.strerror or error}") from error
    if not head.strip():
        raise UnsupportedFormat(_PREFIX + ("empty file" if not head else "empty file (blank)"))
    if biologic.sniff_mpr(head):
        return biologic.MPR_FORMAT
    if head.startswith(b"PK\x03\x04"):
        raise UnsupportedFormat(_PREFIX + _zip_archive(Path(path)))
    if head.startswith(_GZIP):
        raise UnsupportedFormat(
            _PREFIX + "gzip-compressed file (.gz): unpack it (gunzip, 7-Zip) and drop the "
            "export that comes out"
        )
    if any(magic in head[:64] for magic in _ACCESS_DB):
        raise UnsupportedFormat(_PREFIX + "Arbin .res binary (MS Access database)")
    if _is_binary(head):
        raise UnsupportedFormat(_PREFIX + "binary data (not text)")
    text = decode_head(head)
    known = _recognised_unsupported(text)
    if known is not None:
        raise UnsupportedFormat(_PREFIX + known)
    for name, sniff in _TEXT_FORMATS:
        if _sniffs(sniff, text):
            log.debug("%s: detected %s", Path(path).name, name)
            return name
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    raise UnsupportedFormat(
        _PREFIX + f"text with no known cycler header (first line: {first[:80]!r})"
    )


def _sniffs(sniff: Callable[[str], bool], text: str) -> bool:
    """A sniffer's verdict; one that trips over odd text (a bare CR, a NUL) just says no."""
    try:
        return sniff(text)
    except Exception:  # any failure to recognise is a "no"
        log.debug("sniffer %s failed", sniff.__module__, exc_info=True)
        return False


def _zip_archive(path: Path) -> str:
    """What a zip archive is, from its member names (the directory at its end, not the data)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # a damaged archive: its member list cannot be read, it is just a zip
        names = []
    # an .ndax holds data.ndc (and step, run-info and aux .ndc files) with a few .xml files
    if any(name.lower().endswith(".ndc") for name in names):
        return (
            "Neware NDAX binary (.ndax), which labloop cannot read: export the test from "
            "Neware's BTSDA as .csv and drop that"
        )
    return "zip archive (.xlsx?) — export as CSV"


def _is_binary(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False  # UTF-16 text: NUL bytes are expected
    if b"\x00" in head:
        return True
    sample = head[:4096]
    return sum(byte in _CONTROL for byte in sample) > len(sample) // 10


def _recognised_unsupported(text: str) -> str | None:
    """What a known but unsupported text export is, or None."""
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()[:60]]
    if lines and lines[0] == "[Summary]" and any("novonix" in line.lower() for line in lines[:5]):
        return "Novonix HPC export ([Summary] block)"
    if any(line.startswith("TestRegime") and "," in line for line in lines):
        return "PEC tester CSV (key,value header with 'TestRegime')"
    if "<MaccorTestProcedure" in text[:4096]:
        return (
            "a Maccor test procedure, not a data export: export the test's data from Maccor "
            "as a text file and drop that"
        )
    first = lines[0] if lines else ""
    # names compared in any case: the sheet turns up with them in lower and in upper case
    names = {field.strip().lower() for field in first.split(delimiter_of(first))}
    if {"test_id", "schedule_file_name"} <= names:
        return (
            "Arbin metadata sheet: drop the channel's data export (the CSV of the same test "
            "with Cycle_Index, Voltage, Charge_Capacity ... columns) instead"
        )
    return None
