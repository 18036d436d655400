"""Plain result sheets entered by hand: one row per sample.

Columns (header names case-insensitive, separated by commas, semicolons or tabs):

* required: ``sample_id, initial_discharge_mah_g, status, reason``
* optional: ``initial_charge_mah_g``, ``failure_class`` (synthesis | cell | measurement)
* any other column is a recipe parameter: a number if it parses as one, else text
  (empty cells are left out).

``status`` is ``ok``/``success``/``succeeded`` or ``failed``/``fail``/``failure``
(`base.STATUS_WORDS`, as in history files). An ok row needs a positive number in
``initial_discharge_mah_g``. A failed row without a ``failure_class`` is a **synthesis**
failure: a result entered by hand as failed is a recipe that produced nothing to test. Row
numbers are the file's line numbers (the header is row 1), as a spreadsheet shows them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.cycler.base import (
    STATUS_WORDS,
    FailureClass,
    Outcome,
    ReadError,
    SheetRow,
    hand_entered_failure,
)
from agent.cycler.parsing import delimiter_of, guard, open_text, parse_float

FORMAT = "result-sheet"

REQUIRED = ("sample_id", "initial_discharge_mah_g", "status", "reason")
OPTIONAL = ("initial_charge_mah_g", "failure_class")
_BLANK = {"", "-", "none", "n/a", "na"}


def _header(line: str) -> tuple[list[str], str]:
    """The header's column names as written (stripped) and the delimiter."""
    line = line.rstrip("\r\n").lstrip("\ufeff")
    delimiter = delimiter_of(line, ",;\t")
    fields = next(csv.reader([line], delimiter=delimiter), [])
    return [field.strip() for field in fields], delimiter


def sniff(head_text: str) -> bool:
    names, _ = _header(next(iter(head_text.splitlines()), ""))
    return "sample_id" in (name.lower() for name in names)


@guard(FORMAT)
def read(path: Path) -> list[SheetRow]:
    _, rows = read_rows(path, REQUIRED)
    if not rows:
        raise ReadError("result sheet has no rows")
    return rows


def read_rows(
    path: Path, required: Sequence[str], *, what: str = "result sheet", history: bool = False
) -> tuple[list[str], list[SheetRow]]:
    """The header (as written) and the rows of a CSV of results entered by hand: a result
    sheet, or with ``history`` a file of past experiments, where a row may have no
    sample_id (the caller numbers it) and an ok row no value (it was never measured).

    One reading of both: delimiter (comma, semicolon, tab) and decimal comma from the
    header, the same status words, blanks and failure classes. ReadError says what is wrong.
    """
    with open_text(path) as handle:
        header, delimiter = _header(handle.readline())
        names = [name.lower() for name in header]
        missing = [name for name in required if name not in names]
        if missing:
            raise ReadError(f"missing column(s): {', '.join(missing)}")
        lines = csv.reader(handle, delimiter=delimiter)
        rows = []
        for fields in lines:
            if not any(field.strip() for field in fields):
                continue
            cells = {name: "" for name in names}
            cells.update(zip(names, (field.strip() for field in fields), strict=False))
            rule = _Rule(what, lines.line_num + 1, delimiter != ",", history)
            rows.append(_row(cells, header, names, rule))
    return header, rows


@dataclass(frozen=True)
class _Rule:
    """How one row is read: where it is (for messages) and how strictly."""

    what: str
    number: int
    comma: bool
    history: bool


def _row(cells: dict[str, str], header: list[str], names: list[str], rule: _Rule) -> SheetRow:
    sample_id = cells.get("sample_id", "")
    where = f"{rule.what} row {rule.number} ({sample_id or 'no sample_id'})"
    if not sample_id and not rule.history:
        raise ReadError(f"{where}: sample_id is empty")
    comma = rule.comma
    status = STATUS_WORDS.get(cells["status"].lower())
    if status is None:
        raise ReadError(f"{where}: status {cells['status']!r} is not ok or failed")
    discharge = _number(cells, "initial_discharge_mah_g", where, comma)
    charge = _number(cells, "initial_charge_mah_g", where, comma)
    failure = cells.get("failure_class", "").lower()
    failure_class: FailureClass | None = None
    # a history's ok row without a value was never measured (under-reported): data too
    unmeasured = rule.history and discharge is None
    if status is Outcome.OK:
        if not unmeasured and (discharge is None or discharge <= 0):
            raise ReadError(
                f"{where}: an ok row needs a positive number in initial_discharge_mah_g, "
                f"got {cells['initial_discharge_mah_g']!r}"
            )
        if failure not in _BLANK:
            raise ReadError(f"{where}: failure_class {failure!r} given for an ok row")
    else:
        try:
            failure_class = hand_entered_failure(None if failure in _BLANK else failure)
        except ValueError:
            allowed = ", ".join(item.value for item in FailureClass)
            raise ReadError(f"{where}: failure_class {failure!r} is not one of {allowed}") from None
    known = set(REQUIRED) | set(OPTIONAL)
    parameters = {
        column: _parameter(cells[name], comma)
        for column, name in zip(header, names, strict=False)
        if name not in known and column and cells[name]
    }
    return SheetRow(
        sample_id=sample_id,
        status=status,
        row_number=rule.number,
        discharge_mah_g=discharge,
        charge_mah_g=charge,
        reason=cells.get("reason") or None,
        failure_class=failure_class,
        parameters=parameters,
    )


def _number(cells: dict[str, str], name: str, where: str, comma: bool) -> float | None:
    text = cells.get(name, "")
    if text.lower() in _BLANK:
        return None
    try:
        return parse_float(text, decimal_comma=comma)
    except ValueError:
        raise ReadError(f"{where}: {name} {text!r} is not a number") from None


def _parameter(text: str, comma: bool) -> float | str:
    try:
        return parse_float(text, decimal_comma=comma)
    except ValueError:
        return text
