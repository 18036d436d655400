"""Which reader a file needs, decided from its content (never its name).

Only the first 64 KiB are read: magic bytes for binaries, then the header lines of the text.
Files that are recognised but not supported raise UnsupportedFormat saying what they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.cycler import arbin, biologic, maccor, neware, sheet
from agent.cycler.base import ReadError, UnsupportedFormat
from agent.cycler.parsing import decode_head, read_head

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
        raise UnsupportedFormat(_PREFIX + "zip archive (.xlsx?) — export as CSV")
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
    if lines and {"test_id", "schedule_file_name"} <= {f.strip() for f in lines[0].split(",")}:
        return "Arbin test metadata (no data: drop the data CSV of the test)"
    return None
