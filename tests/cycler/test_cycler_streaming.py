"""Text readers stream: they stop at the first row after the first discharge (for a test that
discharges first, after the discharge that follows its first charge).

Proof: whatever follows the first cycle (100,000 more valid rows, or garbage that would fail to
parse) changes neither the result nor the number of rows read.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.cycler import FirstCycle, read_export

GARBAGE = "this is not a data row;\t,,garbage 0xff\n" * 1000


def _read(path: Path) -> FirstCycle:
    result = read_export(path)
    assert isinstance(result, FirstCycle)
    return result


def test_maccor_stops_after_the_first_discharge_despite_100k_more_rows(
    cycler_files: Path, tmp_path: Path
) -> None:
    original = cycler_files / "maccor" / "maccor_002.txt"
    raw = original.read_bytes()
    last_row = raw.rstrip(b"\r\n").rsplit(b"\n", 1)[1]  # a valid cycle-2 discharge row
    longer = tmp_path / "maccor_long.txt"
    longer.write_bytes(raw.rstrip(b"\r\n") + b"\n" + (last_row + b"\n") * 100_000)

    baseline, streamed = _read(original), _read(longer)

    assert streamed == baseline
    # 361 rest + 1928 charge + 1707 discharge + the first row of cycle 2: nowhere near 107,000
    assert streamed.rows_read == 361 + 1928 + 1707 + 1


@pytest.mark.parametrize(
    "relative",
    [
        "maccor/maccor_002.txt",
        "neware/neware_uio.csv",  # discharges first: read to the discharge after its charge
        "neware/nw_regular_export_ife_example.csv",
        "biologic/test_loopsnewoutput_MB_CE1_short10k.csv",
    ],
)
def test_garbage_after_the_first_cycle_is_never_read(
    cycler_files: Path, tmp_path: Path, relative: str
) -> None:
    original = cycler_files / relative
    baseline = _read(original)
    assert baseline.charge is not None and baseline.discharge is not None
    # keep the header (at most 20 lines in these files), the rows the reader needed and a few
    # more, then garbage instead of the rest of the file
    lines = original.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[: 20 + baseline.rows_read + 5])
    spoiled = tmp_path / ("spoiled_" + original.name)
    spoiled.write_bytes(kept + GARBAGE.encode())

    streamed = _read(spoiled)

    assert replace(streamed, rows_read=0) == replace(baseline, rows_read=0)
    assert streamed.rows_read == baseline.rows_read


def test_a_file_ending_inside_the_first_discharge_is_not_completed(
    cycler_files: Path, tmp_path: Path
) -> None:
    original = cycler_files / "maccor" / "maccor_002.txt"
    lines = original.read_bytes().splitlines(keepends=True)
    first_row = next(i for i, line in enumerate(lines) if line.startswith(b"1\t"))
    # the header, 361 rest, 1928 charge, then 500 of the 1707 discharge rows
    cut = tmp_path / "aborted.txt"
    cut.write_bytes(b"".join(lines[: first_row + 361 + 1928 + 500]))

    cycle = _read(cut)

    assert cycle.charge is not None and cycle.charge.completed
    assert cycle.discharge is not None
    assert not cycle.discharge.completed
    assert cycle.discharge.rows == 500
