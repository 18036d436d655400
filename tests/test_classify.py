"""agent.cycler.classify: each failure signature gets its class and a reason."""

from __future__ import annotations

import pytest

from agent.cycler.base import FailureClass, FirstCycle, MassSource, Outcome, SheetRow, StepSummary
from agent.cycler.classify import Protocol, classify_cycle, from_sheet_row, needs_mass

PROTOCOL = Protocol()
MASS_MG = 15.0  # 1 mAh on 15 mg = 66.7 mAh/g


def step(mah: float, start: float, end: float, completed: bool = True) -> StepSummary:
    return StepSummary(
        capacity_mah=mah, start_v=start, end_v=end, max_v=max(start, end),
        min_v=min(start, end), rows=100, completed=completed,
    )  # fmt: skip


def judge(charge: StepSummary | None, discharge: StepSummary | None, **extra):
    cycle = FirstCycle("arbin-csv", charge=charge, discharge=discharge, **extra)
    return classify_cycle(cycle, "B001-S01", MASS_MG, MassSource.SIDECAR, PROTOCOL)


def test_good_cell_is_ok_with_specific_capacities():
    test = judge(step(3.6, 3.5, 4.25), step(3.3, 4.2, 2.75))
    assert test.outcome is Outcome.OK
    assert test.discharge_mah_g == pytest.approx(220.0)
    assert test.charge_mah_g == pytest.approx(240.0)
    assert test.coulombic_efficiency == pytest.approx(3.3 / 3.6)
    assert test.mass_source is MassSource.SIDECAR


@pytest.mark.parametrize(
    ("charge", "discharge", "extra", "failure_class", "words"),
    [
        (None, None, {"other_steps": frozenset({"rest"})}, FailureClass.CELL, "no discharge"),
        (step(6.0, 3.4, 3.9), None, {}, FailureClass.CELL, "short circuit"),
        (step(3.6, 3.5, 4.25), None, {}, FailureClass.CELL, "no discharge after"),
        (
            step(3.6, 3.5, 4.25),
            step(1.2, 4.2, 3.71, completed=False),
            {},
            FailureClass.MEASUREMENT,
            "aborted during the first discharge",
        ),
        (
            step(2.0, 3.5, 4.05),
            step(1.9, 4.0, 2.75),
            {},
            FailureClass.MEASUREMENT,
            "charge cutoff never reached",
        ),
        (step(0.01, 3.5, 4.25), step(0.005, 4.2, 2.75), {}, FailureClass.CELL, "dead cell"),
        (
            step(6.0, 3.5, 4.25),
            step(5.9, 4.2, 2.75),
            {},
            FailureClass.MEASUREMENT,
            "outside the plausible window",
        ),
    ],
)
def test_failure_signatures(charge, discharge, extra, failure_class, words):
    test = judge(charge, discharge, **extra)
    assert test.outcome is Outcome.FAILED
    assert test.failure_class is failure_class
    assert words in test.reason


def test_completed_discharge_ending_above_cutoff_is_not_an_abort():
    # a step that ended by itself (e.g. a time limit) is judged on its capacity, not as an abort
    test = judge(step(3.6, 3.5, 4.25), step(3.2, 4.2, 2.9, completed=True))
    assert test.outcome is Outcome.OK


def test_discharge_first_implausible_capacity_says_so():
    discharge = StepSummary(4.68, 2.9, 0.01, 2.9, 0.01, 50, True, capacity_mah_g=2250.15)
    cycle = FirstCycle(
        "neware-csv", charge=None, discharge=discharge, discharge_first=True, active_mass_mg=2.08
    )
    test = classify_cycle(cycle, "B001-S01", 2.08, MassSource.FILE, PROTOCOL)
    assert test.failure_class is FailureClass.MEASUREMENT
    assert "discharges first" in test.reason
    assert test.discharge_mah_g == 2250.15


def test_needs_mass_only_when_nothing_gives_one():
    plain = FirstCycle("arbin-csv", charge=step(1, 3, 4.25), discharge=step(1, 4.2, 2.75))
    assert needs_mass(plain)
    assert not needs_mass(
        FirstCycle(
            "biologic-mpt", charge=plain.charge, discharge=plain.discharge, active_mass_mg=12.0
        )
    )


def test_sheet_failure_defaults_to_synthesis_and_ok_keeps_no_class():
    failed = from_sheet_row(SheetRow("B001-S02", Outcome.FAILED, 3, reason="sintered"), "sheet")
    assert failed.failure_class is FailureClass.SYNTHESIS
    assert failed.source_row == 3
    ok = from_sheet_row(SheetRow("B001-S01", Outcome.OK, 2, discharge_mah_g=221.0), "sheet")
    assert ok.failure_class is None and ok.discharge_mah_g == 221.0
    cell = from_sheet_row(
        SheetRow("B001-S03", Outcome.FAILED, 4, failure_class=FailureClass.CELL), "sheet"
    )
    assert cell.failure_class is FailureClass.CELL
