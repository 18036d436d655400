"""Neware BTS CSV exports, both kinds.

* the flat record export: one row per data point with ``Cycle Index, Step Index, Step Type,
  Current(A), Voltage(V), Capacity(Ah), Spec. Cap.(mAh/g) ...``; capacities restart every step.
* the layered "regular" export: a cycle layer, a step layer and a record layer interleaved, each
  with its own header row. Cycle rows start with a value, step rows with one empty field, record
  rows with two. The first charge and discharge come from the step layer (Step Type, Capacity,
  onset and end voltage); the record layer gives the rows and the voltage range.

Step Type names the step (``CC Chg``, ``CCCV Chg``, ``CC DChg``, ``Rest`` ...). Both kinds come
comma-separated, or semicolon-separated with decimal commas as a European locale writes them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.cycler.base import FirstCycle, ReadError, StepSummary
from agent.cycler.parsing import Columns, CsvRows, csv_dialect, delimiter_of, guard, open_text
from agent.cycler.steps import (
    AFTER_CHARGE,
    CHARGE,
    DISCHARGE,
    OTHER,
    REST,
    CounterDelta,
    FirstCycleTracker,
    Sample,
    check_test_start,
    kind_from_current,
    mass_from_specific,
)

FORMAT = "neware-csv"

_UNIT = re.compile(r"\((m?)(a|ah|v)\)$")


def _first_fields(head_text: str, count: int) -> list[list[str]]:
    lines = head_text.lstrip("\ufeff").splitlines()[:count]
    rows = csv.reader(lines, delimiter=delimiter_of(lines[0] if lines else ""))
    return [[field.strip().lower() for field in fields] for fields in rows]


def _is_layered(header: Sequence[Sequence[str]]) -> bool:
    return (
        len(header) >= 3
        and header[0][:1] == ["cycle index"]
        and header[1][:2] == ["", "step index"]
        and header[2][:2] == ["", ""]
    )


def sniff(head_text: str) -> bool:
    header = _first_fields(head_text, 3)
    if not header:
        return False
    if _is_layered(header):
        return True
    names = set(header[0])
    return {"cycle index", "step type", "voltage(v)"} <= names


def step_kind(step_type: str, current_ma: float | None = None) -> str:
    """charge / discharge / rest / other from Neware's Step Type text."""
    name = step_type.strip().lower()
    if "dchg" in name or "discharge" in name:
        return DISCHARGE
    if "chg" in name or "charge" in name:
        return CHARGE
    if "rest" in name:
        return REST
    if not name and current_ma is not None:
        return kind_from_current(current_ma)
    return OTHER


def _scale(column: str) -> float:
    """Factor to mA / mAh / V from a header such as 'Current(A)' or 'Capacity(mAh)'."""
    match = _UNIT.search(column.strip().lower())
    if match is None:
        raise ReadError(f"{FORMAT}: no unit in column {column!r}")
    milli, unit = match.groups()
    if unit == "v":
        return 0.001 if milli else 1.0
    return 1.0 if milli else 1000.0


@guard(FORMAT)
def read(path: Path) -> FirstCycle:
    with open_text(path) as handle:
        delimiter, decimal_comma = csv_dialect(handle)
        rows = csv.reader(handle, delimiter=delimiter)
        header = [next(rows, []) for _ in range(3)]
        if _is_layered([[field.strip().lower() for field in fields] for fields in header]):
            return _read_layered(rows, header, decimal_comma)
        return _read_flat(_chain(header[1:], rows), header[0], decimal_comma)


def _chain(first: list[list[str]], rows: CsvRows) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for the rows already taken and the rest of the reader."""
    for offset, fields in enumerate(first, start=2):
        yield offset, fields
    for fields in rows:
        yield rows.line_num, fields


# -- flat record export ------------------------------------------------------------------------


def _read_flat(
    rows: Iterator[tuple[int, list[str]]], header: list[str], decimal_comma: bool
) -> FirstCycle:
    cols = Columns(FORMAT, header, decimal_comma=decimal_comma, full_rows=True)
    cols.find("cycle", "cycle index", "cycle id")
    cols.find("step", "step index", "step id")
    cols.find("type", "step type")
    cols.find("current", "current(a)", "current(ma)")
    cols.find("voltage", "voltage(v)")
    # one capacity counter per row, or separate charge / discharge counters
    if not cols.find("capacity", "capacity(ah)", "capacity(mah)", required=False):
        cols.find("chg", "chg. cap.(ah)", "chg. cap.(mah)")
        cols.find("dchg", "dchg. cap.(ah)", "dchg. cap.(mah)")
    if not cols.find("spec", "spec. cap.(mah/g)", required=False):
        cols.find("chg_spec", "chg. spec. cap.(mah/g)", required=False)
        cols.find("dchg_spec", "dchg. spec. cap.(mah/g)", required=False)
    cols.find("record", "datapoint", "data point", "record id", required=False)
    cols.check()
    counters = [key for key in ("capacity", "chg", "dchg") if cols.has(key)]
    specific = [key for key in ("spec", "chg_spec", "dchg_spec") if cols.has(key)]
    scale = {key: _scale(cols.name(key)) for key in ("current", "voltage", *counters)}
    deltas = {key: CounterDelta() for key in counters + specific}
    tracker = FirstCycleTracker(FORMAT)
    for line, row in rows:
        if not any(field.strip() for field in row):
            continue
        cols.fit(row, line)
        cycle = cols.number(row, "cycle", line)
        if tracker.rows_read == 0:
            record = cols.number(row, "record", line) if cols.has("record") else None
            check_test_start(FORMAT, cycle, record)
        step = (cycle, cols.number(row, "step", line))
        current = cols.number(row, "current", line) * scale["current"]
        dq = sum(deltas[k](cols.number(row, k, line) * scale[k], step) for k in counters)
        dq_g = (
            sum(deltas[k](cols.number(row, k, line), step) for k in specific) if specific else None
        )
        sample = Sample(
            kind=step_kind(cols.text(row, "type"), current),
            voltage=cols.number(row, "voltage", line) * scale["voltage"],
            dq_mah=dq,
            dq_mah_g=dq_g,
            step=step,
        )
        if tracker.add(sample):
            break
    cycle_result = tracker.result()
    return replace(cycle_result, active_mass_mg=mass_from_specific(cycle_result))


# -- layered "regular" export ------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    kind: str
    capacity_mah: float
    capacity_mah_g: float | None
    onset_v: float
    end_v: float


def _read_layered(rows: CsvRows, header: list[list[str]], decimal_comma: bool) -> FirstCycle:
    cycle_cols = Columns(FORMAT, header[0], decimal_comma=decimal_comma)
    cycle_cols.find("cycle", "cycle index")
    cycle_cols.check()
    step_cols = Columns(FORMAT, header[1], decimal_comma=decimal_comma)
    step_cols.find("number", "step number", "step index")
    step_cols.find("type", "step type")
    step_cols.find("capacity", "capacity(ah)", "capacity(mah)")
    step_cols.find("onset", "oneset volt.(v)", "onset volt.(v)")
    step_cols.find("end", "end voltage(v)")
    step_cols.find("spec", "spec. cap.(mah/g)", "specific capacity(mah/g)", required=False)
    step_cols.check()
    record_cols = Columns(FORMAT, header[2], decimal_comma=decimal_comma)
    record_cols.find("record", "datapoint", "data point", required=False)
    record_cols.find("current", "current(a)", "current(ma)")
    record_cols.find("voltage", "voltage(v)")
    record_cols.find("capacity", "capacity(ah)", "capacity(mah)")
    record_cols.check()
    step_scale = _scale(step_cols.name("capacity"))
    scale = {key: _scale(record_cols.name(key)) for key in ("current", "voltage", "capacity")}

    steps: dict[Hashable, _Step] = {}
    current_step: Hashable = None
    capacity = CounterDelta()
    tracker = FirstCycleTracker(FORMAT)
    cycle_width = len(header[0])
    seen_cycle = False
    for row in rows:
        line = rows.line_num
        if not any(field.strip() for field in row):
            continue
        if row[0].strip():  # cycle row, sometimes with the first step row glued to its end
            cycle_cols.fit(row, line)
            if not seen_cycle:
                check_test_start(FORMAT, cycle_cols.number(row, "cycle", line), None)
                seen_cycle = True
            if len(row) <= cycle_width:
                continue
            row = ["", *row[cycle_width:]]
        if len(row) > 1 and row[1].strip():  # step row
            step_cols.fit(row, line)
            current_step = step_cols.text(row, "number")
            spec = step_cols.number(row, "spec", line) if step_cols.has("spec") else None
            steps[current_step] = _Step(
                kind=step_kind(step_cols.text(row, "type")),
                capacity_mah=step_cols.number(row, "capacity", line) * step_scale,
                capacity_mah_g=spec,
                onset_v=step_cols.number(row, "onset", line),
                end_v=step_cols.number(row, "end", line),
            )
            continue
        if current_step is None:
            raise ReadError(f"{FORMAT}: line {line}: record row before any step row")
        record_cols.fit(row, line)
        if tracker.rows_read == 0 and record_cols.has("record"):
            check_test_start(FORMAT, None, record_cols.number(row, "record", line))
        sample = Sample(
            kind=steps[current_step].kind,
            voltage=record_cols.number(row, "voltage", line) * scale["voltage"],
            dq_mah=capacity(
                record_cols.number(row, "capacity", line) * scale["capacity"], current_step
            ),
            step=current_step,
        )
        if tracker.add(sample):
            break

    cycle = tracker.result()

    def step_layer(summary: StepSummary | None, role: str) -> StepSummary | None:
        return _from_step_layer(summary, [steps[s] for s in tracker.steps_of(role)])

    cycle = replace(
        cycle,
        charge=step_layer(cycle.charge, CHARGE),
        discharge=step_layer(cycle.discharge, DISCHARGE),
        discharge_after_charge=step_layer(cycle.discharge_after_charge, AFTER_CHARGE),
    )
    return replace(cycle, active_mass_mg=mass_from_specific(cycle))


def _from_step_layer(summary: StepSummary | None, steps: list[_Step]) -> StepSummary | None:
    """The record-layer summary with capacity and end voltages taken from the step layer."""
    if summary is None or not steps:
        return summary
    specific = [step.capacity_mah_g for step in steps if step.capacity_mah_g is not None]
    start_v, end_v = steps[0].onset_v, steps[-1].end_v
    return replace(
        summary,
        capacity_mah=sum(step.capacity_mah for step in steps),
        capacity_mah_g=sum(specific) if len(specific) == len(steps) else None,
        start_v=start_v,
        end_v=end_v,
        max_v=max(summary.max_v, start_v, end_v),
        min_v=min(summary.min_v, start_v, end_v),
    )
