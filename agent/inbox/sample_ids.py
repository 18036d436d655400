"""Sample ids as written in recipe files (B003-S07): format, find, normalise."""

from __future__ import annotations

import re

# B<batch>-S<slot>, not glued to other letters or digits: "cell_B3-S7_run2.csv" -> B003-S07
_PATTERN = re.compile(r"(?<![A-Za-z0-9])B(\d{1,4})-S(\d{1,3})(?![0-9])", re.IGNORECASE)


def format_sample_id(batch: int, slot: int) -> str:
    return f"B{batch:03d}-S{slot:02d}"


def find_sample_id(text: str | None) -> str | None:
    """The first batch sample id in ``text``, normalised, or None."""
    if not text:
        return None
    match = _PATTERN.search(text)
    return format_sample_id(int(match.group(1)), int(match.group(2))) if match else None


def normalise_sample_id(text: str) -> str:
    """Batch ids in canonical form; any other id (historical, manual) stripped as given."""
    text = text.strip()
    found = _PATTERN.fullmatch(text)
    return format_sample_id(int(found.group(1)), int(found.group(2))) if found else text
