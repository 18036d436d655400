"""Cycler export files of the virtual lab, in the formats labloop reads.

One cell test becomes a `Trace` (its rows: time, step, current, voltage, capacity counters),
built from a `CellRun` by the shared curve model below; each vendor writer only formats the
trace's columns the way its instrument does:

* ``arbin``: Arbin MITS Pro CSV (``Current(A)``, ``Charge_Capacity(Ah)``: cycle counters);
* ``maccor``: Maccor text, tab-separated, one header line then ``Rec# Cyc# Step ...``
  (``Amp-hr`` counts per step), file extension = channel number (``.041``);
* ``neware``: Neware BTS flat record CSV, with specific capacities (the mass is in the file);
* ``biologic``: EC-Lab ASCII ``.mpt`` with ``Characteristic mass`` in its header.

Arbin and Maccor files carry no mass: `update_masses` puts it in the inbox's masses.csv.
The protocol is the paper's: CC 0.1C (1C = 210 mAh/g) charge to 4.25 V, discharge to 2.75 V.
Every file is written atomically (dot-prefixed temp name, then os.replace), so a watcher
never sees half a file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from agent.lab.failures import Kind
from agent.store.files import write_atomic

ONE_C_MAH_G = 210.0
C_RATE_MA_G = 0.1 * ONE_C_MAH_G  # the test current, 0.1C: 21 mA per g of active material
CHARGE_CUTOFF_V = 4.25
DISCHARGE_CUTOFF_V = 2.75
CC_INTERVAL_S = 120.0  # a row every 2 min during current steps: a few hundred rows per step
REST_INTERVAL_S = 300.0
BASE_DATE = datetime(2025, 1, 6, 8, 0, 0)  # fixed: the same seed gives the same bytes
NEWLINE = "\r\n"  # the instruments' PCs run Windows


@dataclass(frozen=True)
class CellRun:
    """What one coin cell does on the cycler, in the numbers its file must show.

    ``charge_mah_g`` / ``discharge_mah_g`` are the first charge / discharge as a reader will
    find them; ``discharge_fraction`` < 1 ends the file that far into the discharge (aborted).
    """

    kind: Kind
    active_mass_mg: float
    charge_mah_g: float
    discharge_mah_g: float | None
    discharge_fraction: float = 1.0
    second_cycle: bool = False
    ocv_v: float = 3.2


# -- voltage curves ---------------------------------------------------------------------------
# Each maps the fraction x in [0, 1] of a step's capacity to a voltage, monotone, built from
# smooth parts and scaled to hit its end voltages exactly.


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


Curve = Callable[[np.ndarray], np.ndarray]


def _scaled(raw: Curve, start_v: float, end_v: float) -> Curve:
    """``raw`` stretched to run from ``start_v`` at x = 0 to ``end_v`` at x = 1."""
    r0, r1 = raw(np.array([0.0]))[0], raw(np.array([1.0]))[0]
    return lambda x: start_v + (end_v - start_v) * (raw(np.asarray(x)) - r0) / (r1 - r0)


def _charge_raw(x: np.ndarray) -> np.ndarray:
    # Ni-rich NCM first charge: quick rise to ~3.7 V, a long slope, the H2-H3 step near 4.15 V,
    # then a steep climb into the cutoff
    return (
        0.12 * (1 - np.exp(-x / 0.03))
        + 0.30 * x
        + 0.06 * _sigmoid((x - 0.72) / 0.04)
        + 0.12 * np.exp((x - 1) / 0.035)
    )


def _discharge_raw(x: np.ndarray) -> np.ndarray:
    # discharge: relaxation below 4.2 V, the H3-H2 plateau ending at ~10 %, a long slope through
    # 3.9-3.6 V, the H2-M feature, and the steep fall to the cutoff in the last few %
    return (
        0.05 * (1 - np.exp(-x / 0.015))
        + 0.08 * _sigmoid((x - 0.10) / 0.03)
        + 0.55 * x
        + 0.10 * _sigmoid((x - 0.55) / 0.08)
        + 0.9 * np.exp((x - 1) / 0.03)
    )


def _short_charge(x: np.ndarray) -> np.ndarray:
    # a soft short: the voltage rises, stalls below 4 V, then sags as the short takes the current
    return 3.6 + 0.35 * (1 - np.exp(-x / 0.06)) - 0.12 * _sigmoid((x - 0.55) / 0.06)


CHARGE = _scaled(_charge_raw, 3.58, CHARGE_CUTOFF_V)
DISCHARGE = _scaled(_discharge_raw, 4.16, DISCHARGE_CUTOFF_V)
DEAD_CHARGE = _scaled(lambda x: x, 3.95, CHARGE_CUTOFF_V)  # a dead cell polarises at once
DEAD_DISCHARGE = _scaled(lambda x: x, 3.05, DISCHARGE_CUTOFF_V)


# -- the rows of a test -----------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """The rows of one test. ``step`` is the schedule's step number (repeats each cycle),
    ``segment`` counts every step run (0, 1, ...); ``step_mah`` / ``step_mwh`` restart with
    each segment; current is signed (charge > 0)."""

    time_s: np.ndarray
    step_time_s: np.ndarray
    segment: np.ndarray
    step: np.ndarray
    cycle: np.ndarray
    state: np.ndarray  # "R" rest, "C" charge, "D" discharge
    current_ma: np.ndarray
    voltage_v: np.ndarray
    step_mah: np.ndarray
    step_mwh: np.ndarray

    def __len__(self) -> int:
        return len(self.time_s)

    def first_row_of_segment(self) -> np.ndarray:
        return np.r_[True, self.segment[1:] != self.segment[:-1]]

    def row_change(self, values: np.ndarray) -> np.ndarray:
        """Change of ``values`` since the previous row of the same segment (0 on its first)."""
        return np.where(self.first_row_of_segment(), 0.0, np.diff(values, prepend=values[0]))

    def cycle_counter(self, values: np.ndarray, state: str) -> np.ndarray:
        """A per-segment counter (from 0) summed over the ``state`` steps of each cycle, as
        Arbin counts capacity."""
        step_delta = self.row_change(values) * (self.state == state)
        total = np.cumsum(step_delta)
        first = np.r_[True, self.cycle[1:] != self.cycle[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(self)), 0))
        return total - total[start] + step_delta[start]

    def in_state(self, values: np.ndarray, state: str) -> np.ndarray:
        """A per-segment counter where the cell is in ``state``, zero elsewhere."""
        return np.where(self.state == state, values, 0.0)


class _TraceBuilder:
    # schedule step numbers: rest, charge, rest, discharge, rest (cycles repeat 2-5)
    STEPS = {"rest0": 1, "C": 2, "rest_c": 3, "D": 4, "rest_d": 5}

    def __init__(self, mass_mg: float) -> None:
        self.current_ma = C_RATE_MA_G * mass_mg / 1000.0
        self.mass_g = mass_mg / 1000.0
        self.parts: list[dict[str, np.ndarray]] = []
        self.clock_s = 0.0
        self.voltage_v = 0.0

    def rest(self, step: str, cycle: int, duration_s: float, start_v: float, end_v: float) -> None:
        t = np.arange(0.0, duration_s + 1e-9, REST_INTERVAL_S)
        v = end_v + (start_v - end_v) * np.exp(-t / (duration_s / 4.0))
        self._add(step, cycle, "R", t, v, np.zeros_like(t), 0.0)

    def constant_current(
        self,
        state: str,
        cycle: int,
        mah_g: float,
        curve: Curve,
        fraction: float = 1.0,
    ) -> None:
        """A CC step passing ``mah_g``; ``fraction`` < 1: that far along the ``curve``."""
        end_s = mah_g * self.mass_g / self.current_ma * 3600.0
        t = np.arange(0.0, end_s, CC_INTERVAL_S)
        t = np.r_[t, end_s] if end_s - t[-1] > 1e-6 else t  # the last row at the cutoff
        q = self.current_ma * t / 3600.0
        v = curve(fraction * t / end_s)
        sign = 1.0 if state == "C" else -1.0
        self._add(state, cycle, state, t, v, q, sign * self.current_ma)

    def _add(
        self,
        step: str,
        cycle: int,
        state: str,
        t: np.ndarray,
        v: np.ndarray,
        q: np.ndarray,
        current: float,
    ) -> None:
        energy = np.cumsum(np.r_[0.0, np.diff(q) * (v[1:] + v[:-1]) / 2.0])
        n = len(t)
        self.parts.append(
            {
                "time_s": self.clock_s + t,
                "step_time_s": t,
                "segment": np.full(n, len(self.parts)),
                "step": np.full(n, self.STEPS[step]),
                "cycle": np.full(n, cycle),
                "state": np.full(n, state),
                "current_ma": np.full(n, current),
                "voltage_v": v,
                "step_mah": q,
                "step_mwh": energy,
            }
        )
        # the next step's first row comes a second after this step's last
        self.clock_s += t[-1] + 1.0
        self.voltage_v = float(v[-1])

    def trace(self) -> Trace:
        return Trace(**{k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]})


def build_trace(run: CellRun) -> Trace:
    """The rows a cycler records for ``run``, with the failure's signature."""
    b = _TraceBuilder(run.active_mass_mg)
    b.rest("rest0", 1, 3600.0, run.ocv_v, run.ocv_v + 0.01)
    if run.kind is Kind.SHORT:
        # the step's time limit ends a charge that never reaches the cutoff
        b.constant_current("C", 1, run.charge_mah_g, _short_charge)
        b.rest("rest_c", 1, 1800.0, b.voltage_v, 3.3)
        return b.trace()
    dead = run.kind is Kind.DEAD
    b.constant_current("C", 1, run.charge_mah_g, DEAD_CHARGE if dead else CHARGE)
    b.rest("rest_c", 1, 7200.0 if run.discharge_mah_g is None else 1800.0, b.voltage_v, 4.19)
    if run.discharge_mah_g is None:  # no discharge: the channel stopped after the rest
        return b.trace()
    curve = DEAD_DISCHARGE if dead else DISCHARGE
    b.constant_current("D", 1, run.discharge_mah_g, curve, run.discharge_fraction)
    if run.discharge_fraction < 1.0:  # aborted: the file ends inside the discharge
        return b.trace()
    b.rest("rest_d", 1, 1800.0, b.voltage_v, 3.45)
    if run.second_cycle:
        # second cycle: almost reversible (coulombic efficiency ~99 %)
        b.constant_current("C", 2, run.discharge_mah_g * 1.006, CHARGE)
        b.rest("rest_c", 2, 1800.0, b.voltage_v, 4.19)
        b.constant_current("D", 2, run.discharge_mah_g * 0.996, DISCHARGE)
        b.rest("rest_d", 2, 1800.0, b.voltage_v, 3.45)
    return b.trace()


# -- formatting -------------------------------------------------------------------------------


def _f(values: np.ndarray, spec: str) -> list[str]:
    return [format(v, spec) for v in values.tolist()]


def _clock(seconds: np.ndarray) -> list[str]:
    """H:MM:SS with hours past 24, as Neware writes durations."""
    s = np.rint(seconds).astype(int).tolist()
    return [f"{x // 3600:02d}:{x // 60 % 60:02d}:{x % 60:02d}" for x in s]


def _dates(start: datetime, seconds: np.ndarray, spec: str) -> list[str]:
    return [(start + timedelta(seconds=round(x))).strftime(spec) for x in seconds.tolist()]


def _table(header: Sequence[str], columns: Sequence[Sequence[str]], sep: str, tail: str) -> str:
    rows = (sep.join(cells) + tail for cells in zip(*columns, strict=True))
    return NEWLINE.join([sep.join(header) + tail, *rows]) + NEWLINE


@dataclass(frozen=True)
class RunInfo:
    """Who and when: the parts of a file that do not come from the cell."""

    sample_id: str
    start: datetime
    channel: int
    mass_mg: float


def _arbin(tr: Trace, info: RunInfo) -> str:
    ah = tr.step_mah / 1000.0
    wh = tr.step_mwh / 1000.0
    dt = tr.row_change(tr.step_time_s)
    dvdt = np.divide(tr.row_change(tr.voltage_v), dt, out=np.zeros(len(tr)), where=dt > 0)
    zeros = np.zeros(len(tr))
    columns = {
        "Data_Point": [str(i) for i in range(1, len(tr) + 1)],
        "Test_Time(s)": _f(tr.time_s, ".4f"),
        "Date_Time": _dates(info.start, tr.time_s, "%m/%d/%Y %H:%M:%S"),
        "Step_Time(s)": _f(tr.step_time_s, ".4f"),
        "Step_Index": [str(s) for s in tr.step.tolist()],
        "Cycle_Index": [str(c) for c in tr.cycle.tolist()],
        "Current(A)": _f(tr.current_ma / 1000.0, ".9f"),
        "Voltage(V)": _f(tr.voltage_v, ".6f"),
        "Charge_Capacity(Ah)": _f(tr.cycle_counter(ah, "C"), ".10f"),
        "Discharge_Capacity(Ah)": _f(tr.cycle_counter(ah, "D"), ".10f"),
        "Charge_Energy(Wh)": _f(tr.cycle_counter(wh, "C"), ".10f"),
        "Discharge_Energy(Wh)": _f(tr.cycle_counter(wh, "D"), ".10f"),
        "dV/dt(V/s)": _f(dvdt, ".9f"),
        "Internal_Resistance(Ohm)": _f(zeros, ".4f"),
        "Is_FC_Data": ["0"] * len(tr),
        "AC_Impedance(Ohm)": _f(zeros, ".4f"),
        "ACI_Phase_Angle(Deg)": _f(zeros, ".4f"),
    }
    return _table(list(columns), list(columns.values()), ",", "")


def _maccor(tr: Trace, info: RunInfo) -> str:
    # the older Maccor text layout: one header line, Amps negative on discharge
    day = info.start.strftime("%m/%d/%Y")
    first = (
        f"Today's Date {day}  Date of Test:\t{day}\t Filename:\tC:\\Maccor\\Data\\"
        f"{info.sample_id}{_maccor_suffix(info.channel)} Procedure: NCM_0.1C_4.25-2.75V.000"
        f"\tComment/Barcode: {info.sample_id}"
    )
    n = len(tr)
    columns = {
        "Rec#": [str(i) for i in range(1, n + 1)],
        "Cyc#": [str(c - 1) for c in tr.cycle.tolist()],
        "Step": [str(s) for s in tr.step.tolist()],
        "Test (Sec)": _f(tr.time_s, ".4f"),
        "Step (Sec)": _f(tr.step_time_s, ".4f"),
        "Amp-hr": _f(tr.step_mah / 1000.0, ".10f"),
        "Watt-hr": _f(tr.step_mwh / 1000.0, ".10f"),
        "Amps": _f(tr.current_ma / 1000.0, ".10f"),
        "Volts": _f(tr.voltage_v, ".8f"),
        "State": tr.state.tolist(),
        "ES": np.where(tr.first_row_of_segment(), "0", "1").tolist(),
        "DPt Time": _dates(info.start, tr.time_s, "%m/%d/%Y %H:%M:%S"),
        "ACImp/Ohms": ["0.00000"] * n,
        "DCIR/Ohms": ["0.00000"] * n,
        "WF Chg Cap": ["N/A"] * n,
        "WF Dis Cap": ["N/A"] * n,
        "WF Chg E": ["N/A"] * n,
        "WF Dis E": ["N/A"] * n,
        "Range": ["1"] * n,
    }
    return first + NEWLINE + _table(list(columns), list(columns.values()), "\t", "")


def _neware(tr: Trace, info: RunInfo) -> str:
    ah = tr.step_mah / 1000.0
    wh = tr.step_mwh / 1000.0
    per_g = 1.0 / (info.mass_mg / 1000.0)  # mAh -> mAh/g, mWh -> mWh/g
    step_type = {"R": "Rest", "C": "CC Chg", "D": "CC DChg"}
    dq, dv = tr.row_change(tr.step_mah), tr.row_change(tr.voltage_v)
    dqdv = np.divide(dq, dv, out=np.zeros(len(tr)), where=np.abs(dv) > 1e-6)
    columns = {
        "DataPoint": [str(i) for i in range(1, len(tr) + 1)],
        "Cycle Index": [str(c) for c in tr.cycle.tolist()],
        "Step Index": [str(s + 1) for s in tr.segment.tolist()],
        "Step Type": [step_type[s] for s in tr.state.tolist()],
        "Time": _clock(tr.step_time_s),
        "Cumulative Time": _clock(tr.time_s),
        "Current(A)": _f(tr.current_ma / 1000.0, ".8f"),
        "Voltage(V)": _f(tr.voltage_v, ".4f"),
        "Capacity(Ah)": _f(ah, ".8f"),
        "Spec. Cap.(mAh/g)": _f(tr.step_mah * per_g, ".2f"),
        "Chg. Cap.(Ah)": _f(tr.in_state(ah, "C"), ".8f"),
        "Chg. Spec. Cap.(mAh/g)": _f(tr.in_state(tr.step_mah * per_g, "C"), ".2f"),
        "DChg. Cap.(Ah)": _f(tr.in_state(ah, "D"), ".8f"),
        "DChg. Spec. Cap.(mAh/g)": _f(tr.in_state(tr.step_mah * per_g, "D"), ".2f"),
        "Energy(Wh)": _f(wh, ".8f"),
        "Spec. Energy(mWh/g)": _f(tr.step_mwh * per_g, ".2f"),
        "Chg. Energy(Wh)": _f(tr.in_state(wh, "C"), ".8f"),
        "Chg. Spec. Energy(mWh/g)": _f(tr.in_state(tr.step_mwh * per_g, "C"), ".2f"),
        "DChg. Energy(Wh)": _f(tr.in_state(wh, "D"), ".8f"),
        "DChg. Spec. Energy(mWh/g)": _f(tr.in_state(tr.step_mwh * per_g, "D"), ".2f"),
        "Date": _dates(info.start, tr.time_s, "%Y-%m-%d %H:%M:%S"),
        "Power(W)": _f(tr.current_ma * tr.voltage_v / 1000.0, ".8f"),
        "dQ/dV(mAh/V)": _f(dqdv, ".4f"),
        "dQm/dV(mAh/V.g)": _f(dqdv * per_g, ".4f"),
        "Contact resistance(mO)": ["0"] * len(tr),
        "Module start-stop switch": ["Close"] * len(tr),
    }
    return _table(list(columns), list(columns.values()), ",", "")


def _biologic(tr: Trace, info: RunInfo) -> str:
    capacity_mah = ONE_C_MAH_G * info.mass_mg / 1000.0
    comments = [
        "",
        "Galvanostatic Cycling with Potential Limitation",
        "",
        f"Run on channel : {info.channel} (SN 0{info.channel + 400})",
        "User : labloop virtual lab",
        "Ewe ctrl range : min = 0.00 V, max = 5.00 V",
        f"Acquisition started on : {info.start.strftime('%m/%d/%Y %H:%M:%S')}",
        "Saved on :",
        f"\tFile : {info.sample_id}.mpr",
        "\tDirectory : C:\\Data\\NCM\\",
        "Device : BCS-805",
        "Electrode material : Ni-rich NCM",
        "Electrolyte : 1 M LiPF6 in EC/DMC 3:7",
        "Comments : CR2032 coin cell vs Li, CC 0.1C, 4.25-2.75 V",
        "Electrode surface area : 1.539 cm²",
        f"Characteristic mass : {info.mass_mg:.2f} mg",
        f"Battery capacity : {capacity_mah:.3f} mA.h",
        "Cycle Definition : Charge/Discharge alternance",
        "",
    ]
    charge = tr.state == "C"
    first = tr.first_row_of_segment()
    dq = tr.row_change(tr.step_mah) * np.sign(tr.current_ma)
    half_cycle = np.cumsum(first & (tr.state != "R")) - 1
    columns = {
        "mode": np.where(tr.state == "R", "3", "1").tolist(),
        "ox/red": np.where(charge, "1", "0").tolist(),
        "error": ["0"] * len(tr),
        "control changes": first.astype(int).astype(str).tolist(),
        "Ns changes": first.astype(int).astype(str).tolist(),
        "counter inc.": ["0"] * len(tr),
        "Ns": [str(s) for s in tr.segment.tolist()],
        "I Range": ["41"] * len(tr),
        "time/s": _f(tr.time_s, ".15E"),
        "control/mA": _f(tr.current_ma, ".7E"),
        "Ewe/V": _f(tr.voltage_v, ".7E"),
        "I/mA": _f(tr.current_ma, ".7E"),
        "dq/mA.h": _f(dq, ".15E"),
        "(Q-Qo)/mA.h": _f(np.cumsum(dq), ".15E"),
        "Q charge/discharge/mA.h": _f(tr.step_mah * np.sign(tr.current_ma), ".15E"),
        "half cycle": [str(h) for h in np.maximum(half_cycle, 0).tolist()],
        "Q discharge/mA.h": _f(tr.in_state(tr.step_mah, "D"), ".15E"),
        "Q charge/mA.h": _f(tr.in_state(tr.step_mah, "C"), ".15E"),
        "cycle number": _f(tr.cycle - 1.0, ".15E"),
    }
    lines = ["EC-Lab ASCII FILE", f"Nb header lines : {len(comments) + 3}", *comments]
    return NEWLINE.join(lines) + NEWLINE + _table(list(columns), list(columns.values()), "\t", "\t")


def _maccor_suffix(channel: int) -> str:
    return f".{channel:03d}"


@dataclass(frozen=True)
class ExportFormat:
    """How one vendor's files are named, rendered and encoded."""

    suffix: Callable[[int], str]
    render: Callable[[Trace, RunInfo], str]
    encoding: str
    mass_in_file: bool


FORMATS: dict[str, ExportFormat] = {
    "arbin": ExportFormat(lambda _: ".csv", _arbin, "utf-8", False),
    "maccor": ExportFormat(_maccor_suffix, _maccor, "latin-1", False),
    "neware": ExportFormat(lambda _: ".csv", _neware, "utf-8", True),
    "biologic": ExportFormat(lambda _: ".mpt", _biologic, "latin-1", True),
}


# -- files ------------------------------------------------------------------------------------


def write_export(
    run: CellRun,
    sample_id: str,
    fmt: str,
    folder: Path,
    *,
    start: datetime = BASE_DATE,
    channel: int = 1,
) -> Path:
    """Write ``run`` as ``fmt`` (a key of FORMATS) to ``folder/<sample_id><suffix>``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    export = FORMATS[fmt]
    info = RunInfo(sample_id, start, channel, run.active_mass_mg)
    text = export.render(build_trace(run), info)
    path = Path(folder) / f"{sample_id}{export.suffix(channel)}"
    return write_atomic(path, text.encode(export.encoding))


def write_result_sheet(sample_id: str, reason: str, folder: Path) -> Path:
    """A hand-entered result sheet: the sample failed in synthesis, no cell was made."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sample_id", "initial_discharge_mah_g", "status", "reason"])
    writer.writerow([sample_id, "", "failed", reason])
    return write_atomic(Path(folder) / f"{sample_id}.csv", out.getvalue().encode("utf-8"))


def update_masses(path: Path, masses: Mapping[str, float]) -> Path:
    """Merge ``sample_id -> active_mass_mg`` into the masses.csv at ``path``, atomically.

    Existing rows (and columns) are kept; a sample already listed gets its new mass.
    """
    fields = ["sample_id", "active_mass_mg"]
    rows: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or fields)
            rows = list(reader)
    index = {row.get("sample_id", "").strip(): row for row in rows}
    for sample_id, mass in masses.items():
        if sample_id not in index:
            index[sample_id] = {name: "" for name in fields} | {"sample_id": sample_id}
            rows.append(index[sample_id])
        index[sample_id]["active_mass_mg"] = f"{mass:.2f}"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_atomic(path, out.getvalue().encode("utf-8"))
