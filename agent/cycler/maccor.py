"""Maccor text exports (tab-separated), in both layouts seen in practice.

* older: one header line (``Today's Date ... Filename: ... Procedure: ...``), then
  ``Rec# Cyc# Step TestTime StepTime Amp-hr Watt-hr Amps Volts State ES ...``
* newer: ``key<TAB>value`` lines (``Name:``, ``Channel:``, ``Started`` ...), a blank line, then
  ``Rec Cycle P Cycle C Step ... Cap. [Ah] ... Current [A] Voltage [V] Md ES ...``

The State / Md column says what the channel does (C charge, D discharge, R rest); Amp-hr is a
counter that restarts at every step. Unused columns may hold ``N/A``: they are not read.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from agent.cycler.base import FirstCycle, ReadError
from agent.cycler.parsing import Columns, guard, open_text
from agent.cycler.steps import (
    CHARGE,
    DISCHARGE,
    IMPEDANCE,
    OTHER,
    REST,
    CounterDelta,
    FirstCycleTracker,
    Sample,
    check_test_start,
)

FORMAT = "maccor-text"

# the column row is within the first lines; more header than this is not a Maccor export
_MAX_HEADER_LINES = 60
_STATES = {"C": CHARGE, "D": DISCHARGE, "R": REST, "FRA": IMPEDANCE, "EIS": IMPEDANCE}
_FILENAME = re.compile(r"Filename:\s*(.+?)(?:\s+Procedure:|\t|$)")


def _is_column_row(fields: list[str]) -> bool:
    names = {field.strip().lower() for field in fields}
    return (
        bool(fields)
        and fields[0].strip().lower() in ("rec#", "rec")
        and "step" in names
        and bool(names & {"state", "md"})
        and bool(names & {"volts", "voltage [v]"})
    )


def sniff(head_text: str) -> bool:
    lines = head_text.lstrip("\ufeff").splitlines()[:_MAX_HEADER_LINES]
    return any(_is_column_row(line.split("\t")) for line in lines)


def _test_name(header_lines: list[list[str]]) -> str | None:
    for fields in header_lines:
        if fields and fields[0].strip() == "Name:" and len(fields) > 1:
            value = fields[1]
        else:
            match = _FILENAME.search("\t".join(fields))
            if match is None:
                continue
            value = match.group(1)
        name = re.split(r"[\\/]", value.strip())[-1].strip()
        if name:
            return name
    return None


@guard(FORMAT)
def read(path: Path) -> FirstCycle:
    with open_text(path) as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header_lines: list[list[str]] = []
        for fields in rows:
            if _is_column_row(fields):
                break
            header_lines.append(fields)
            if len(header_lines) >= _MAX_HEADER_LINES:
                raise ReadError(f"{FORMAT}: no column row (Rec# ... State) in the first lines")
        else:
            raise ReadError(f"{FORMAT}: no column row (Rec# ... State) in the file")
        cols = Columns(FORMAT, fields, decimal_comma=True)
        cols.find("record", "rec#", "rec")
        cols.find("cycle", "cyc#", "cycle p", "cycle c", "cycle")
        cols.find("cycle_c", "cycle c", required=False)  # newer layout: a second cycle count
        cols.find("step", "step")
        cols.find("capacity", "amp-hr", "cap. [ah]")
        cols.find("voltage", "volts", "voltage [v]")
        cols.find("state", "state", "md")
        cols.check()
        tracker = FirstCycleTracker(FORMAT)
        capacity = CounterDelta()
        for row in rows:
            line = rows.line_num
            if not any(field.strip() for field in row):
                continue
            cols.fit(row, line)
            cycle = cols.number(row, "cycle", line)
            if tracker.rows_read == 0:
                check_test_start(FORMAT, cycle, cols.number(row, "record", line))
            cycle_c = cols.number(row, "cycle_c", line) if cols.has("cycle_c") else None
            step = (cycle, cycle_c, cols.number(row, "step", line))
            sample = Sample(
                kind=_STATES.get(cols.text(row, "state").upper(), OTHER),
                voltage=cols.number(row, "voltage", line),
                dq_mah=capacity(cols.number(row, "capacity", line) * 1000.0, step),
                step=step,
            )
            if tracker.add(sample):
                break
    return tracker.result(test_name=_test_name(header_lines))
