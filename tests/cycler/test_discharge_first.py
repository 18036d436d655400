"""Tests that discharge before their first charge, read by the real readers and judged.

A cathode test may open with a short conditioning discharge from open circuit; the first cycle
is then the first charge and the discharge after it, so the reader reads on to that discharge
(`FirstCycle.discharge_after_charge`). The files are written here in Arbin's MITS layout (as
tests/data/arbin_mits_first_cycle.csv), with the capacity counters running through cycle 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cycler import FailureClass, FirstCycle, MassSource, Outcome, read_export
from agent.cycler.steps import CHARGE, DISCHARGE, REST, FirstCycleTracker, Sample
from agent.inbox.classify import CellTest, Protocol, classify_cycle

HEADER = (
    "Data_Point,Test_Name,Cycle_Index,Step_Index,Current(A),Voltage(V),"
    "Charge_Capacity(Ah),Discharge_Capacity(Ah)"
)
MASS_MG = 10.0
CONDITIONING_AH = 0.0000354  # 1.5 % of the 2.3601 mAh charge


def _rows(pre_ah: float) -> list[tuple[int, int, float, float, float, float]]:
    """(cycle, step, current A, voltage V, charge counter Ah, discharge counter Ah) per row."""
    charged = 0.0023601
    return [
        (1, 1, 0.0, 3.0512, 0.0, 0.0),  # rest at open circuit
        (1, 1, 0.0, 3.0519, 0.0, 0.0),
        (1, 2, -0.0002, 2.9801, 0.0, 0.0000001),  # discharge from open circuit: rows 3-5
        (1, 2, -0.0002, 2.8123, 0.0, pre_ah / 2),
        (1, 2, -0.0002, 2.7500, 0.0, pre_ah),
        (1, 3, 0.0, 2.9012, 0.0, pre_ah),
        (1, 4, 0.0002, 3.6021, 0.0000001, pre_ah),  # CC charge, then CV: rows 7-10
        (1, 4, 0.0002, 4.0580, 0.0012001, pre_ah),
        (1, 4, 0.0002, 4.3000, 0.0021001, pre_ah),
        (1, 5, 0.00001, 4.3000, charged, pre_ah),
        (1, 6, 0.0, 4.2415, charged, pre_ah),
        (1, 7, -0.0002, 4.1502, charged, pre_ah + 0.0000001),  # the discharge: rows 12-14
        (1, 7, -0.0002, 3.4120, charged, pre_ah + 0.0018001),
        (1, 7, -0.0002, 2.7500, charged, pre_ah + 0.0020301),
        (1, 8, 0.0, 3.1208, charged, pre_ah + 0.0020301),
        (2, 4, 0.0002, 3.5907, 0.0000001, 0.0),
        (2, 4, 0.0002, 3.9530, 0.0008001, 0.0),
    ]


def _write(path: Path, pre_ah: float, rows: int | None = None) -> Path:
    lines = [HEADER]
    for point, (cycle, step, amps, volts, charged, discharged) in enumerate(
        _rows(pre_ah)[:rows], start=1
    ):
        lines.append(
            f"{point},B004-S03_form,{cycle},{step},{amps},{volts},{charged:.7f},{discharged:.7f}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path: Path) -> FirstCycle:
    cycle = read_export(path)
    assert isinstance(cycle, FirstCycle)
    return cycle


def _judge(cycle: FirstCycle) -> CellTest:
    return classify_cycle(cycle, "B004-S03", MASS_MG, MassSource.SIDECAR, Protocol())


def test_short_conditioning_discharge_is_read_and_the_discharge_after_the_charge_judged(
    tmp_path: Path,
) -> None:
    cycle = _read(_write(tmp_path / "B004-S03.csv", CONDITIONING_AH))

    assert cycle.format_name == "arbin-csv" and cycle.discharge_first
    assert cycle.discharge is not None and cycle.charge is not None
    assert cycle.discharge.capacity_mah == pytest.approx(0.0354)  # rows 3-5
    assert cycle.charge.capacity_mah == pytest.approx(2.3601)  # rows 7-10
    after = cycle.discharge_after_charge
    assert after is not None
    # rows 12-14: the discharge counter runs on from the conditioning step's 0.0354 mAh
    assert after.capacity_mah == pytest.approx(2.0301)
    assert (after.rows, after.start_v, after.end_v, after.completed) == (3, 4.1502, 2.75, True)
    assert cycle.rows_read == 15  # stopped at the rest after it

    test = _judge(cycle)

    assert (test.outcome, test.reason) == (Outcome.OK, None)
    assert test.charge_mah_g == pytest.approx(236.01)
    assert test.discharge_mah_g == pytest.approx(203.01)


def test_a_test_that_really_discharges_first_is_still_rejected(tmp_path: Path) -> None:
    cycle = _read(_write(tmp_path / "B004-S03.csv", 0.0012))

    assert cycle.discharge is not None and cycle.discharge_after_charge is not None
    assert cycle.discharge.capacity_mah == pytest.approx(1.2)

    test = _judge(cycle)

    assert (test.outcome, test.failure_class) == (Outcome.FAILED, FailureClass.MEASUREMENT)
    assert "discharges first, 1.2 mAh before a first charge of 2.36 mAh (51%" in test.reason
    assert "not a cathode first-cycle test" in test.reason


def test_a_file_ending_inside_the_discharge_after_the_charge_is_cut_short(
    tmp_path: Path,
) -> None:
    # rows 1-13: the file stops inside the discharge after the charge, at 3.412 V
    cycle = _read(_write(tmp_path / "B004-S03.csv", CONDITIONING_AH, rows=13))

    after = cycle.discharge_after_charge
    assert after is not None and not after.completed
    assert (after.rows, after.end_v) == (2, 3.412)

    test = _judge(cycle)

    assert (test.outcome, test.failure_class) == (Outcome.FAILED, FailureClass.MEASUREMENT)
    assert "test aborted during the first discharge at 3.412 V" in test.reason
    assert test.cut_short  # a file still being written: tried again, not judged for good


def test_nothing_after_the_discharge_after_the_charge_is_read(tmp_path: Path) -> None:
    whole = _write(tmp_path / "whole.csv", CONDITIONING_AH)
    # the header, the 15 rows needed, then what would fail to parse if it were read
    spoiled = tmp_path / "spoiled.csv"
    lines = whole.read_text().splitlines(keepends=True)
    spoiled.write_text("".join(lines[:16]) + "not,a,row,of,this,export\n" * 1000)

    assert _read(spoiled) == _read(whole)


def _track(kinds: str) -> FirstCycle:
    """Feed one row per letter (c charge, d discharge, r rest) to a tracker."""
    tracker = FirstCycleTracker("test")
    names = {"c": CHARGE, "d": DISCHARGE, "r": REST}
    for letter in kinds:
        if tracker.add(Sample(kind=names[letter], voltage=3.5, dq_mah=1.0)):
            break
    return tracker.result()


def test_discharges_before_the_charge_are_not_the_discharge_after_it() -> None:
    # a discharge, a rest, a second discharge, the charge, then the discharge after it
    cycle = _track("ddrdrccrdddr" + "cd")

    assert cycle.discharge is not None and cycle.discharge.rows == 2
    assert cycle.charge is not None and cycle.charge.rows == 2
    assert cycle.discharge_after_charge is not None
    assert cycle.discharge_after_charge.rows == 3
    assert cycle.rows_read == 12  # up to the rest after it


def test_a_test_that_charges_first_stops_after_its_first_discharge() -> None:
    cycle = _track("rccrddr" + "cd")

    assert cycle.discharge_after_charge is None and not cycle.discharge_first
    assert cycle.rows_read == 7
