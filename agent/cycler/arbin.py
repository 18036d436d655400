"""Arbin CSV exports: MITS headers with units (``Current(A)``, ``Charge_Capacity(Ah)``) and
BEEP-style headers without them (``Current``, ``Charge_Capacity``: A and Ah). Comma-separated,
or semicolon-separated with decimal commas as a European locale writes them.

Arbin's charge and discharge capacities are counters that run through a cycle and restart at
the next one, so a step's capacity is the counter's rise over its rows.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from agent.cycler.base import FirstCycle, ReadError
from agent.cycler.parsing import Columns, csv_dialect, delimiter_of, guard, open_text
from agent.cycler.steps import (
    CounterDelta,
    FirstCycleTracker,
    Sample,
    check_test_start,
    kind_from_current,
)

FORMAT = "arbin-csv"

_UNIT = re.compile(r"\s*\(([^)]*)\)\s*$")
# factor to mA / mAh / V from the unit in the header; no unit (BEEP style) means A, Ah, V
_SCALE = {"a": 1000.0, "ma": 1.0, "ah": 1000.0, "mah": 1.0, "v": 1.0, "mv": 0.001}
_DEFAULT_UNIT = {"current": "a", "voltage": "v"}
_NEEDED = ("cycle_index", "current", "voltage", "charge_capacity", "discharge_capacity")
_NO_INDEX = (
    "the row does not say which cycle and step it belongs to, so the first cycle cannot be told "
    "from the later ones; export the channel's data again as Arbin writes it, with "
    "Cycle_Index and Step_Index filled on every row"
)


def _split(name: str) -> tuple[str, str]:
    """'Charge Capacity (Ah)' -> ('charge_capacity', 'ah')."""
    name = name.strip().strip('"')
    match = _UNIT.search(name)
    unit = match.group(1).strip().lower() if match else ""
    base = name[: match.start()] if match else name
    return re.sub(r"[\s_]+", "_", base.strip().lower()), unit


def _normalise(name: str) -> str:
    return _split(name)[0]


def sniff(head_text: str) -> bool:
    first = next(iter(head_text.lstrip("\ufeff").splitlines()), "")
    names = {_normalise(name) for name in first.split(delimiter_of(first))}
    return set(_NEEDED) <= names and bool(names & {"step_index", "data_point"})


@guard(FORMAT)
def read(path: Path) -> FirstCycle:
    with open_text(path) as handle:
        delimiter, decimal_comma = csv_dialect(handle)
        rows = csv.reader(handle, delimiter=delimiter)
        header = next(rows, [])
        cols = Columns(
            FORMAT,
            header,
            normalise=_normalise,
            decimal_comma=decimal_comma,
            full_rows=True,
            empty_means={"cycle_index": _NO_INDEX, "step_index": _NO_INDEX},
        )
        for key in _NEEDED:
            cols.find(key, key)
        cols.find("data_point", "data_point", required=False)
        cols.find("step_index", "step_index", required=False)
        cols.find("test_name", "test_name", required=False)
        cols.check()
        scale = {key: _scale(cols, key) for key in _NEEDED[1:]}
        tracker = FirstCycleTracker(FORMAT)
        charged, discharged = CounterDelta(), CounterDelta()
        test_name: str | None = None
        for row in rows:
            line = rows.line_num
            if not any(field.strip() for field in row):
                continue
            cols.fit(row, line)
            cycle = cols.number(row, "cycle_index", line)
            step = cols.number(row, "step_index", line) if cols.has("step_index") else None
            if tracker.rows_read == 0:
                record = cols.number(row, "data_point", line) if cols.has("data_point") else None
                check_test_start(FORMAT, cycle, record)
                if cols.has("test_name"):
                    test_name = cols.text(row, "test_name") or None
            current = cols.number(row, "current", line) * scale["current"]
            dq = charged(
                cols.number(row, "charge_capacity", line) * scale["charge_capacity"], cycle
            )
            dq += discharged(
                cols.number(row, "discharge_capacity", line) * scale["discharge_capacity"], cycle
            )
            sample = Sample(
                kind=kind_from_current(current),
                voltage=cols.number(row, "voltage", line) * scale["voltage"],
                dq_mah=dq,
                step=(cycle, step),
            )
            if tracker.add(sample):
                break
    return tracker.result(test_name=test_name)


def _scale(cols: Columns, key: str) -> float:
    unit = _split(cols.name(key))[1] or _DEFAULT_UNIT.get(key, "ah")
    if unit not in _SCALE:
        raise ReadError(f"{FORMAT}: unknown unit {unit!r} in column {cols.name(key)!r}")
    return _SCALE[unit]
