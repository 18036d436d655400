"""Each real export in shared/cycler_files read end to end.

Every expected number is computed here from the file itself with pandas / galvani (or written
down by hand with how it was found), not by the reader under test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from galvani import BioLogic

from agent.cycler import FirstCycle, ReadError, UnsupportedFormat, read_export

REL = 1e-6


def _read(path: Path) -> FirstCycle:
    result = read_export(path)
    assert isinstance(result, FirstCycle)
    return result


def _runs(labels: pd.Series) -> pd.Series:
    """A run number per row: it changes whenever the label changes."""
    return (labels != labels.shift()).cumsum()


def test_arbin_rest_only_file_has_no_charge_and_no_discharge(cycler_files: Path) -> None:
    path = cycler_files / "arbin" / "FastCharge_000025_CH8.csv"
    frame = pd.read_csv(path)
    assert (frame["Current"] == 0).all()  # the file really is rest only

    cycle = _read(path)

    assert cycle.format_name == "arbin-csv"
    assert cycle.charge is None and cycle.discharge is None
    assert cycle.other_steps == {"rest"}
    assert cycle.rows_read == len(frame)  # read to the end looking for a charge


def test_maccor_eis_file_has_rest_and_impedance_only(cycler_files: Path) -> None:
    path = cycler_files / "maccor" / "maccor_test_file_4267-66-6519.041"
    states = set(pd.read_csv(path, sep="\t", skiprows=1)["State"].dropna())
    assert "C" not in states and "D" not in states and {"R", "FRA"} <= states

    cycle = _read(path)

    assert cycle.format_name == "maccor-text"
    assert cycle.charge is None and cycle.discharge is None
    assert {"rest", "impedance"} <= cycle.other_steps
    assert cycle.test_name == "4267-66-6519.041"  # Filename: field, without its directory


def test_maccor_file_that_starts_mid_test_is_refused(cycler_files: Path) -> None:
    path = cycler_files / "maccor" / "PredictionDiagnostics_000151_test.052"
    with pytest.raises(ReadError, match=r"cycle 37 \(record 249791\)") as raised:
        read_export(path)
    assert "first cycle is not in this file" in str(raised.value)


def test_maccor_newer_layout_first_cycle(cycler_files: Path) -> None:
    path = cycler_files / "maccor" / "maccor_002.txt"
    # 13 key/value header lines and a blank one, then the column row; Amp-hr restarts each step
    frame = pd.read_csv(path, sep="\t", skiprows=13, encoding="latin-1", index_col=False)
    runs = _runs(frame["Md"])
    charge = frame[runs == runs[frame["Md"] == "C"].iloc[0]]
    discharge = frame[runs == runs[frame["Md"] == "D"].iloc[0]]
    assert charge["Cap. [Ah]"].iloc[0] < 1e-7  # each step's counter starts from zero

    cycle = _read(path)

    assert cycle.format_name == "maccor-text"
    assert cycle.test_name == "CW-SIMBA-FC-CT-NAPF6-015.053"
    assert not cycle.discharge_first
    assert cycle.discharge_after_charge is None
    assert cycle.charge is not None and cycle.discharge is not None
    # by hand: step 4 ends at 0.00244213 Ah, step 5 at 0.00225098 Ah
    assert cycle.charge.capacity_mah == pytest.approx(2.44213, rel=REL)
    assert cycle.charge.capacity_mah == pytest.approx(charge["Cap. [Ah]"].iloc[-1] * 1000, rel=REL)
    assert cycle.discharge.capacity_mah == pytest.approx(2.25098, rel=REL)
    assert cycle.discharge.capacity_mah == pytest.approx(
        discharge["Cap. [Ah]"].iloc[-1] * 1000, rel=REL
    )
    assert cycle.charge.rows == len(charge) and cycle.discharge.rows == len(discharge)
    assert cycle.charge.start_v == pytest.approx(charge["Voltage [V]"].iloc[0])
    assert cycle.charge.max_v == pytest.approx(charge["Voltage [V]"].max())
    assert cycle.discharge.end_v == pytest.approx(discharge["Voltage [V]"].iloc[-1])
    assert cycle.discharge.min_v == pytest.approx(discharge["Voltage [V]"].min())
    assert cycle.charge.completed and cycle.discharge.completed
    assert cycle.active_mass_mg is None


def test_neware_record_export_that_discharges_first(cycler_files: Path) -> None:
    path = cycler_files / "neware" / "neware_uio.csv"
    frame = pd.read_csv(path)
    runs = _runs(frame["Step Index"])
    first_discharge = frame[runs == runs[frame["Step Type"] == "CC DChg"].iloc[0]]
    first_charge = frame[runs == runs[frame["Step Type"] == "CC Chg"].iloc[0]]
    assert first_discharge.index[0] < first_charge.index[0]
    later = frame.index > first_charge.index[-1]
    after_charge = frame[runs == runs[later & (frame["Step Type"] == "CC DChg")].iloc[0]]
    # cycle 1 ends with the charge: the discharge after it is cycle 2's, counted from zero
    assert after_charge["Cycle Index"].iloc[0] == 2

    cycle = _read(path)

    assert cycle.format_name == "neware-csv"
    assert cycle.discharge_first
    assert cycle.discharge is not None and cycle.charge is not None
    # SOURCES.md: cycle 1 DChg. Cap. 0.00468031 Ah = 2250.15 mAh/g
    assert cycle.discharge.capacity_mah == pytest.approx(4.68031, rel=REL)
    assert cycle.discharge.capacity_mah_g == pytest.approx(2250.15, rel=REL)
    assert cycle.discharge.capacity_mah == pytest.approx(
        first_discharge["DChg. Cap.(Ah)"].iloc[-1] * 1000, rel=REL
    )
    assert cycle.charge.capacity_mah == pytest.approx(
        first_charge["Chg. Cap.(Ah)"].iloc[-1] * 1000, rel=REL
    )
    assert cycle.charge.capacity_mah_g == pytest.approx(
        first_charge["Chg. Spec. Cap.(mAh/g)"].iloc[-1], rel=REL
    )
    assert cycle.discharge.rows == len(first_discharge)
    assert cycle.discharge.start_v == pytest.approx(first_discharge["Voltage(V)"].iloc[0])
    assert cycle.discharge.end_v == pytest.approx(first_discharge["Voltage(V)"].iloc[-1])
    # 4.68031 mAh / 2250.15 mAh/g = 2.0800 mg
    assert cycle.active_mass_mg == pytest.approx(2.08, abs=0.001)
    # the discharge after the first charge is read too, then the reader stops
    after = cycle.discharge_after_charge
    assert after is not None and after.completed
    assert after.capacity_mah == pytest.approx(after_charge["DChg. Cap.(Ah)"].iloc[-1] * 1000)
    assert after.capacity_mah_g == pytest.approx(after_charge["DChg. Spec. Cap.(mAh/g)"].iloc[-1])
    assert after.rows == len(after_charge)
    assert (after.start_v, after.end_v) == tuple(after_charge["Voltage(V)"].iloc[[0, -1]])
    assert cycle.rows_read == after_charge.index[-1] + 2  # up to the first row after it


def _neware_step_rows(path: Path) -> list[tuple[list[str], int]]:
    """Step-layer rows of the layered export, each with the number of records under it."""
    steps: list[tuple[list[str], int]] = []
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    cycle_width = len(rows[0])
    for row in rows[3:]:
        if row[0]:  # a cycle row; the first one carries the first step row glued on
            row = ["", *row[cycle_width:]] if len(row) > cycle_width else []
        if len(row) > 1 and row[1]:
            steps.append((row, 0))
        elif row and steps:
            steps[-1] = (steps[-1][0], steps[-1][1] + 1)
    return steps


def test_neware_layered_export_uses_the_step_layer(cycler_files: Path) -> None:
    path = cycler_files / "neware" / "nw_regular_export_ife_example.csv"
    steps = _neware_step_rows(path)
    # step layer: ,Step Index,Step Number,Step Type,Step Time,Capacity(Ah),Energy(Wh),Oneset
    # Volt.(V),End Voltage(V) ...
    charge, charge_records = next(s for s in steps if s[0][3] == "CC Chg")
    discharge, discharge_records = next(s for s in steps if s[0][3] == "CC DChg")
    assert charge[5] == "0.02256" and discharge[5] == "0.33067"  # cycle 1 row says the same

    cycle = _read(path)

    assert cycle.format_name == "neware-csv"
    assert not cycle.discharge_first
    assert cycle.discharge_after_charge is None
    assert cycle.charge is not None and cycle.discharge is not None
    assert cycle.charge.capacity_mah == pytest.approx(float(charge[5]) * 1000, rel=REL)
    assert cycle.discharge.capacity_mah == pytest.approx(float(discharge[5]) * 1000, rel=REL)
    assert (cycle.charge.start_v, cycle.charge.end_v) == (float(charge[7]), float(charge[8]))
    assert (cycle.discharge.start_v, cycle.discharge.end_v) == (
        float(discharge[7]),
        float(discharge[8]),
    )
    assert cycle.charge.rows == charge_records
    assert cycle.discharge.rows == discharge_records
    assert cycle.active_mass_mg is None  # no specific-capacity column in this export


def test_biologic_semicolon_export_first_cycle(cycler_files: Path) -> None:
    path = cycler_files / "biologic" / "test_loopsnewoutput_MB_CE1_short10k.csv"
    frame = pd.read_csv(path, sep=";")
    current = frame["I/mA"]
    first_discharge = int(np.argmax(current < 0))
    charging = frame.iloc[:first_discharge][current.iloc[:first_discharge] > 0]
    after = current.iloc[first_discharge:]
    discharge_end = first_discharge + int(np.argmax(after >= 0))  # first row that is not < 0
    discharging = frame.iloc[first_discharge:discharge_end]
    # mode/ox/error all hold the same packed flag byte here, so the current's sign is the truth
    assert (frame["mode"] == frame["ox"]).all()
    assert frame["Q charge/mA.h"].iloc[0] == 0

    cycle = _read(path)

    assert cycle.format_name == "biologic-mpt"
    assert cycle.charge is not None and cycle.discharge is not None
    # a 2.5 A pulse, a rest, then CC-CV: all of it is the charge before the first discharge
    assert cycle.charge.capacity_mah == pytest.approx(charging["Q charge/mA.h"].iloc[-1], rel=REL)
    assert cycle.charge.capacity_mah == pytest.approx(1461.875059, rel=REL)
    assert cycle.discharge.capacity_mah == pytest.approx(
        discharging["Q discharge/mA.h"].iloc[-1], rel=REL
    )
    assert cycle.discharge.capacity_mah == pytest.approx(2324.597681, rel=REL)
    assert cycle.charge.rows == len(charging)
    assert cycle.discharge.rows == len(discharging)
    assert cycle.charge.max_v == pytest.approx(charging["Ecell/V"].max())
    assert cycle.discharge.min_v == pytest.approx(discharging["Ecell/V"].min())
    assert cycle.rows_read == discharge_end + 1  # stopped at the first row after the discharge


def _expected_first_charge(current: np.ndarray, freq: np.ndarray, q_net: np.ndarray) -> float:
    """(Q-Qo) at the last charging row minus its value before the first one (no discharge)."""
    charging = np.flatnonzero((current > 1e-4) & (freq == 0))
    assert not np.any((current < -1e-4) & (freq == 0))  # this test never discharges
    return float(q_net[charging[-1]] - q_net[charging[0] - 1])


def test_biologic_mpr_via_galvani(cycler_files: Path) -> None:
    path = cycler_files / "biologic" / "biol.mpr"
    data = BioLogic.MPRfile(str(path)).data
    expected = _expected_first_charge(data["I/mA"], data["freq/Hz"], data["(Q-Qo)/mA.h"])

    cycle = _read(path)

    assert cycle.format_name == "biologic-mpr"
    assert cycle.charge is not None
    # four CC charges with rests and impedance scans between, no discharge in the file
    assert cycle.charge.capacity_mah == pytest.approx(expected, rel=REL)
    assert cycle.charge.capacity_mah == pytest.approx(4.976893, rel=REL)
    assert cycle.discharge is None
    assert cycle.charge.completed  # rests followed the last charge
    assert {"rest", "impedance"} <= cycle.other_steps


def test_mpt_fixture_converted_from_the_mpr(local_data: Path) -> None:
    path = local_data / "biol_first_charge.mpt"
    table, _ = BioLogic.MPTfile(str(path))  # galvani's own .mpt parser as the reference
    expected = _expected_first_charge(table["I/mA"], table["freq/Hz"], table["(Q-Qo)/mA.h"])

    cycle = _read(path)

    assert cycle.format_name == "biologic-mpt"
    assert cycle.charge is not None and cycle.discharge is None
    assert cycle.charge.capacity_mah == pytest.approx(expected, rel=REL)
    assert cycle.charge.capacity_mah == pytest.approx(1.298721, rel=REL)  # mpr row 2278
    assert cycle.charge.rows == int(np.sum((table["I/mA"] > 1e-4) & (table["freq/Hz"] == 0)))
    assert cycle.other_steps == {"rest", "impedance"}
    assert cycle.test_name == "biol.mpr"
    assert cycle.active_mass_mg is None  # "Characteristic mass : 0.001 g" is EC-Lab's default


@pytest.mark.parametrize(
    ("line", "mass_mg"),
    [
        ("Characteristic mass : 12.345 mg", 12.345),
        ("Characteristic mass : 12,345 mg", 12.345),
        ("Characteristic mass : 0.0085 g", 8.5),
    ],
)
def test_mpt_characteristic_mass(
    local_data: Path, tmp_path: Path, line: str, mass_mg: float
) -> None:
    text = (local_data / "biol_first_charge.mpt").read_text(encoding="latin-1")
    copy = tmp_path / "with_mass.mpt"
    copy.write_text(text.replace("Characteristic mass : 0.001 g", line), encoding="latin-1")
    assert _read(copy).active_mass_mg == pytest.approx(mass_mg)


def test_arbin_mits_headers_with_units(local_data: Path) -> None:
    # hand-made (tests/data/SOURCES.md): counters cumulative within cycle 1
    cycle = _read(local_data / "arbin_mits_first_cycle.csv")

    assert cycle.format_name == "arbin-csv"
    assert cycle.test_name == "B004-S02_form"
    assert cycle.charge is not None and cycle.discharge is not None
    # CC (rows 3-6) + CV (rows 7-9): Charge_Capacity 0 -> 0.0023601 Ah
    assert cycle.charge.capacity_mah == pytest.approx(2.3601, rel=REL)
    assert cycle.charge.rows == 7
    assert (cycle.charge.start_v, cycle.charge.end_v, cycle.charge.max_v) == (3.6021, 4.3, 4.3001)
    # rows 11-14: Discharge_Capacity 0 -> 0.0020301 Ah, ends at 2.75 V, then a rest
    assert cycle.discharge.capacity_mah == pytest.approx(2.0301, rel=REL)
    assert cycle.discharge.rows == 4
    assert (cycle.discharge.start_v, cycle.discharge.end_v) == (4.1502, 2.75)
    assert cycle.discharge.completed
    assert cycle.discharge_after_charge is None  # it charged first
    assert cycle.rows_read == 15  # stopped at the rest row after the discharge


@pytest.mark.parametrize(
    ("relative", "word"),
    [
        ("novonix/test_Nova_Form-CH01-01_short.csv", "Novonix"),
        ("pec/Test25205.csv", "PEC"),
        ("arbin/FastCharge_000025_CH8_Metadata.csv", "Arbin metadata sheet"),
    ],
)
def test_recognised_but_unsupported_exports(cycler_files: Path, relative: str, word: str) -> None:
    with pytest.raises(UnsupportedFormat) as raised:
        read_export(cycler_files / relative)
    assert str(raised.value).startswith("unsupported format: ")
    assert word in str(raised.value)
