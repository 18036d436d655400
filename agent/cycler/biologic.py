"""BioLogic EC-Lab / BT-Lab exports.

* ``biologic-mpt``: text. Either a real ``.mpt`` (``EC-Lab ASCII FILE``, ``Nb header lines : N``,
  N-3 header lines, then a tab-separated table) or a plain table without that header, separated
  by tabs or semicolons (as BT-Lab's CSV export). Decimal commas are accepted.
* ``biologic-mpr``: the binary ``.mpr``, read with galvani (whole file: it is binary).

What a row is doing comes from the current's sign (I/mA > 0 charges, i.e. oxidises the working
electrode), except rows of an impedance scan (freq/Hz > 0) and rows whose mode is 3 (rest).
The ``.mpr`` of a GCPL run (EC-Lab's galvanostatic cycling) has no current column: there the
current is the mean over each row's interval of the charge the row passed, ``dq/mA.h`` (else the
step of ``(Q-Qo)/mA.h``) over the step of ``time/s``, which is how EC-Lab computes ``<I>/mA``
for the ``.mpt`` export of the same run. ``control/V/mA`` is not used for this: it holds a
voltage, not a current, during a potentiostatic step.
``mode`` is read as ``int(value) & 3`` because some exports (BEEP's BT-Lab CSV among them) write
the whole EC-Lab flag byte into ``mode``/``ox``/``error``: there 21 means CC + oxidation, 17 CC +
reduction, 6 CV + oxidation, 7 and 23 rest. The ox/red flag itself is not needed.

Capacity: ``Q charge/mA.h`` and ``Q discharge/mA.h`` when present (each restarts when the current
changes direction), else the net counter ``(Q-Qo)/mA.h``, else ``Q charge/discharge/mA.h``, else
the per-row ``dq/mA.h``.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt
from galvani import BioLogic

from agent.cycler.base import FirstCycle, ReadError
from agent.cycler.parsing import Columns, delimiter_of, guard, open_text, parse_float
from agent.cycler.steps import (
    IMPEDANCE,
    REST,
    CounterDelta,
    FirstCycleTracker,
    NetCounterDelta,
    Sample,
    check_test_start,
    kind_from_current,
)

log = logging.getLogger(__name__)

FORMAT = "biologic-mpt"
MPR_FORMAT = "biologic-mpr"
MPR_MAGIC = b"BIO-LOGIC MODULAR FILE"
_ASCII_MAGIC = ("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")
_NB_HEADER = re.compile(r"Nb header lines\s*:\s*(\d+)")
_MASS = re.compile(r"Characteristic mass\s*:\s*([-+0-9.,eE]+)\s*([a-zA-Zµ]*)")
_FILE = re.compile(r"^\s*File\s*:\s*(.+?)\s*$")
_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "kg": 1e6, "µg": 0.001, "ug": 0.001}

# logical column -> accepted names (lower case); galvani maps some of these to one name too
_NAMES: dict[str, tuple[str, ...]] = {
    "voltage": ("ewe/v", "ecell/v", "<ewe>/v", "<ewe/v>"),
    "current": ("i/ma", "<i>/ma"),
    "mode": ("mode",),
    "freq": ("freq/hz",),
    "cycle": ("cycle number",),
    "ns": ("ns",),
    "q_charge": ("q charge/ma.h",),
    "q_discharge": ("q discharge/ma.h",),
    "q_net": ("(q-qo)/ma.h",),
    "q_half": ("q charge/discharge/ma.h",),
    "dq": ("dq/ma.h",),
}
_REQUIRED = ("voltage", "current")
_OPTIONAL = ("mode", "freq", "cycle", "ns")
# the capacity sources in order of preference; the first one the file has all columns of wins
_CAPACITY = (("q_charge", "q_discharge"), ("q_net",), ("q_half",), ("dq",))


def sniff(head_text: str) -> bool:
    lines = head_text.lstrip("\ufeff").splitlines()
    if not lines:
        return False
    if lines[0].strip() in _ASCII_MAGIC or (len(lines) > 1 and _NB_HEADER.match(lines[1])):
        return True
    names = {name.strip().lower() for name in re.split(r"[;\t]", lines[0])}
    return bool(names & set(_NAMES["voltage"])) and bool(names & set(_NAMES["current"]))


def sniff_mpr(head: bytes) -> bool:
    return head.startswith(MPR_MAGIC)


class _RowModel:
    """Which EC-Lab columns a file has, and how one row of values becomes a Sample."""

    def __init__(self, fmt: str, present: Sequence[str]) -> None:
        self.columns = [key for key in _REQUIRED + _OPTIONAL if key in present]
        missing = [key for key in _REQUIRED if key not in present]
        source = next((keys for keys in _CAPACITY if all(k in present for k in keys)), None)
        if missing or source is None:
            wanted = [" or ".join(_NAMES[key]) for key in missing]
            if source is None:
                wanted.append("a capacity column (Q charge/mA.h, (Q-Qo)/mA.h, dq/mA.h ...)")
            raise ReadError(f"{fmt}: missing column(s): {'; '.join(wanted)}")
        self.capacity = source
        self.columns += list(source)
        # a row must have these; the optional ones may be empty (BT-Lab leaves unused ones blank)
        self.needed = (*_REQUIRED, *source)
        self._split = (CounterDelta(), CounterDelta())
        self._net = NetCounterDelta()
        self._half = CounterDelta()

    def sample(self, values: Mapping[str, float]) -> Sample:
        if values.get("freq", 0.0) > 0:
            kind = IMPEDANCE
        elif "mode" in values and (int(values["mode"]) & 3) == 3:
            kind = REST
        else:
            kind = kind_from_current(values["current"])
        if self.capacity == ("q_charge", "q_discharge"):
            dq = self._split[0](values["q_charge"]) + self._split[1](values["q_discharge"])
        elif self.capacity == ("q_net",):
            dq = self._net(values["q_net"])
        elif self.capacity == ("q_half",):
            dq = self._half(abs(values["q_half"]))
        else:
            dq = abs(values["dq"])
        return Sample(kind=kind, voltage=values["voltage"], dq_mah=dq, step=values.get("ns"))


def _track(fmt: str, model: _RowModel, rows: Iterable[Mapping[str, float]]) -> FirstCycleTracker:
    """Feed rows (any iterable of value mappings) to a tracker until the first cycle is done."""
    tracker = FirstCycleTracker(fmt)
    for values in rows:
        if tracker.rows_read == 0:
            check_test_start(fmt, values.get("cycle"), None)
        if tracker.add(model.sample(values)):
            break
    return tracker


# -- text: .mpt and header-less tables ---------------------------------------------------------


def _mass_mg(header_lines: Sequence[str]) -> float | None:
    for text in header_lines:
        match = _MASS.search(text)
        if match is None:
            continue
        number, unit = match.group(1), match.group(2).lower() or "g"
        if number.replace(",", ".") in ("0.001",) and unit == "g":
            # EC-Lab's default when nobody entered a mass: not a real mass
            log.debug("characteristic mass is EC-Lab's default 0.001 g: ignored")
            return None
        mass = parse_float(number, decimal_comma=True) * _MASS_TO_MG.get(unit, 1000.0)
        return mass if mass > 0 else None
    return None


def _file_name(header_lines: Sequence[str]) -> str | None:
    for text in header_lines:
        match = _FILE.match(text)
        if match:
            return re.split(r"[\\/]", match.group(1))[-1] or None
    return None


def _header(handle: TextIO) -> tuple[list[str], list[str], str, int]:
    """(header lines before the table, column names, delimiter, lines consumed)."""
    first = handle.readline()
    if first.strip().lstrip("\ufeff") not in _ASCII_MAGIC:
        delimiter = delimiter_of(first, "\t;,")
        return [], _split_names(first, delimiter), delimiter, 1
    match = _NB_HEADER.match(handle.readline())
    if match is None:
        raise ReadError(f"{FORMAT}: second line is not 'Nb header lines : N'")
    count = int(match.group(1))
    if count < 3:
        raise ReadError(f"{FORMAT}: 'Nb header lines : {count}' is too few")
    comments = [handle.readline() for _ in range(count - 3)]
    return comments, _split_names(handle.readline(), "\t"), "\t", count


def _split_names(line: str, delimiter: str) -> list[str]:
    names = line.rstrip("\r\n").lstrip("\ufeff").split(delimiter)
    while names and not names[-1].strip():
        names.pop()  # EC-Lab ends the column row with a tab
    return names


@guard(FORMAT)
def read(path: Path) -> FirstCycle:
    with open_text(path) as handle:
        comments, header, delimiter, consumed = _header(handle)
        cols = Columns(FORMAT, header, decimal_comma=delimiter != ",", full_rows=True)
        present = [
            key for key, options in _NAMES.items() if cols.find(key, *options, required=False)
        ]
        model = _RowModel(FORMAT, present)
        rows = csv.reader(handle, delimiter=delimiter)

        def values() -> Iterator[dict[str, float]]:
            for row in rows:
                line = rows.line_num + consumed
                if not any(field.strip() for field in row):
                    continue
                cols.fit(row, line)
                numbers = {key: cols.maybe_number(row, key, line) for key in model.columns}
                for key in model.needed:
                    if numbers[key] is None:
                        raise ReadError(f"{FORMAT}: line {line}: {cols.name(key)} is empty")
                yield {key: value for key, value in numbers.items() if value is not None}

        tracker = _track(FORMAT, model, values())
    return tracker.result(test_name=_file_name(comments), active_mass_mg=_mass_mg(comments))


# -- binary: .mpr through galvani --------------------------------------------------------------


@guard(MPR_FORMAT)
def read_mpr(path: Path) -> FirstCycle:
    try:
        mpr = BioLogic.MPRfile(str(path))
    except Exception as error:  # galvani raises whatever its parsing hits
        raise ReadError(
            f"{MPR_FORMAT}: galvani could not read the file: {type(error).__name__}: {error}"
        ) from error
    data = mpr.data
    fields = {name.lower(): name for name in data.dtype.names or ()}
    arrays: dict[str, list[float]] = {}
    for key, options in _NAMES.items():
        name = next((fields[o] for o in options if o in fields), None)
        if name is not None:
            arrays[key] = data[name].tolist()
    if "mode" not in arrays and "flags" in fields:
        arrays["mode"] = mpr.get_flag("mode").tolist()  # galvani >= 0.5 keeps flags packed
    if "current" not in arrays and "time/s" in fields:  # a GCPL .mpr: derive it
        passed = _charge_per_row(arrays)
        if passed is not None:
            arrays["current"] = current_from_charge(data[fields["time/s"]], passed).tolist()
    model = _RowModel(MPR_FORMAT, list(arrays))
    columns = [(key, arrays[key]) for key in model.columns]
    rows = ({key: float(column[i]) for key, column in columns} for i in range(len(data)))
    return _track(MPR_FORMAT, model, rows).result()


def _charge_per_row(arrays: Mapping[str, Sequence[float]]) -> npt.NDArray[np.float64] | None:
    """The signed charge (mAh) each row passed: ``dq/mA.h``, else the step of ``(Q-Qo)/mA.h``."""
    if "dq" in arrays:
        return np.asarray(arrays["dq"], dtype=float)
    if "q_net" in arrays:
        net = np.asarray(arrays["q_net"], dtype=float)
        return np.diff(net, prepend=net[:1])
    return None


def current_from_charge(
    time_s: npt.ArrayLike, charge_mah: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Mean current (mA) over each row's interval from the charge (mAh) the row passed.

    The first row has no interval: 0 unless it passed charge. A row whose clock did not advance
    keeps only the sign of its charge (a huge current of that sign), which is all a row's kind
    needs.
    """
    time = np.asarray(time_s, dtype=float)
    charge = np.asarray(charge_mah, dtype=float)
    elapsed = np.diff(time, prepend=time[:1]).clip(min=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        current = charge * 3600.0 / elapsed
    # 0/0 (no charge, no time) is no current; q/0 becomes the largest float of q's sign
    return np.nan_to_num(current, nan=0.0)
