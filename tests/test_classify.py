"""agent.inbox.classify: each failure signature gets its class and a reason."""

from __future__ import annotations

import pytest

from agent.config import Settings
from agent.cycler.base import FailureClass, FirstCycle, MassSource, Outcome, SheetRow, StepSummary
from agent.inbox.classify import Protocol, classify_cycle, from_sheet_row, needs_mass

PROTOCOL = Protocol()
MASS_MG = 15.0  # 1 mAh on 15 mg = 66.7 mAh/g


def step(
    mah: float, start: float, end: float, completed: bool = True, rows: int = 100
) -> StepSummary:
    return StepSummary(
        capacity_mah=mah, start_v=start, end_v=end, max_v=max(start, end),
        min_v=min(start, end), rows=rows, completed=completed,
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
        (
            None,
            None,
            {"other_steps": frozenset({"rest"})},
            FailureClass.UNTESTED,
            "no charge and no discharge in the file (rest)",
        ),
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


@pytest.mark.parametrize("ce", [2.85, 14.66])
def test_coulombic_efficiency_above_the_plausible_maximum_is_a_measurement_failure(ce):
    # both were stored as ok: 20 mAh/g charged to the cutoff, 57 and 293 mAh/g discharged
    test = judge(step(0.3, 3.5, 4.25), step(0.3 * ce, 4.2, 2.75))
    assert test.outcome is Outcome.FAILED
    assert test.failure_class is FailureClass.MEASUREMENT
    assert test.coulombic_efficiency == pytest.approx(ce)
    assert f"coulombic efficiency {ce:.3g} is above the plausible maximum 1.1" in test.reason


def test_coulombic_efficiency_just_below_one_is_ok():
    assert judge(step(3.0, 3.5, 4.25), step(2.97, 4.2, 2.75)).outcome is Outcome.OK


@pytest.mark.parametrize("completed", [True, False])
@pytest.mark.parametrize("end_v", [3.9, 3.0])
def test_discharge_that_stops_well_above_the_cutoff_is_a_measurement_failure(end_v, completed):
    test = judge(step(3.6, 3.5, 4.25), step(3.3, 4.2, end_v, completed=completed))
    assert test.outcome is Outcome.FAILED
    assert test.failure_class is FailureClass.MEASUREMENT
    if completed:
        assert f"stopped at {end_v:.3f} V, more than 0.2 V above the 2.75 V cutoff" in test.reason
    else:
        assert f"aborted during the first discharge at {end_v:.3f} V" in test.reason


def test_discharge_end_margin_is_the_setting():
    cycle = FirstCycle("arbin-csv", charge=step(3.6, 3.5, 4.25), discharge=step(3.3, 4.2, 3.0))
    loose = Protocol(discharge_end_margin_v=0.3)
    assert classify_cycle(cycle, "B001-S01", MASS_MG, None, loose).outcome is Outcome.OK


# the case: one row of 0.66 uA residual current before a discharge, stored as the first
# charge with CE 593,538,562
RESIDUAL_MAH = 2.9 / 593_538_562


def test_one_row_of_residual_current_is_not_a_first_charge():
    test = judge(step(RESIDUAL_MAH, 4.2, 4.2, rows=1), step(2.9, 4.2, 2.75))
    assert test.outcome is Outcome.FAILED
    assert test.failure_class is FailureClass.MEASUREMENT
    assert test.coulombic_efficiency == pytest.approx(593_538_562)  # still stored as seen
    assert "first charge 3.26e-07 mAh/g is below the 1 mAh/g a charge passes" in test.reason
    assert "residual current" in test.reason


def test_residual_current_alone_is_no_test_yet():
    test = judge(step(RESIDUAL_MAH, 3.4, 3.4, rows=1), None, other_steps=frozenset({"rest"}))
    assert (test.outcome, test.failure_class) == (Outcome.FAILED, FailureClass.UNTESTED)
    assert "(rest; a residual current of 3.26e-07 mAh/g)" in test.reason


def test_impedance_only_file_is_no_test_yet_and_says_what_it_holds():
    test = judge(None, None, other_steps=frozenset({"rest", "impedance"}))
    assert (test.outcome, test.failure_class) == (Outcome.FAILED, FailureClass.UNTESTED)
    assert test.reason == (
        "no charge and no discharge in the file (impedance, rest): the cycling test has not run yet"
    )


# gcpl.issue_175.mpr (yadg, GPL-3.0, not shipped), read with galvani: a 1 h rest at open
# circuit, a discharge of 0.008657 mAh from 2.915 to 2.000 V, a charge of 0.544966 mAh from
# 2.256 to 4.200 V, then the first real discharge, 0.481579 mAh from 3.732 to 2.000 V
PRE_DISCHARGE = step(0.008657, 2.915, 2.000)
FIRST_CHARGE = step(0.544966, 2.256, 4.200)
FIRST_DISCHARGE = step(0.481579, 3.732, 2.000)
ITS_PROTOCOL = Protocol(charge_cutoff_v=4.2, discharge_cutoff_v=2.0)


def test_short_conditioning_discharge_before_the_first_charge_is_skipped():
    cycle = FirstCycle(
        "biologic-mpr", charge=FIRST_CHARGE, discharge=PRE_DISCHARGE, discharge_first=True,
        discharge_after_charge=FIRST_DISCHARGE, other_steps=frozenset({"rest"}),
    )  # fmt: skip
    test = classify_cycle(cycle, "B001-S01", 3.0, MassSource.SIDECAR, ITS_PROTOCOL)
    assert (test.outcome, test.reason) == (Outcome.OK, None)
    assert test.charge_mah_g == pytest.approx(0.544966 / 0.003)
    assert test.discharge_mah_g == pytest.approx(0.481579 / 0.003)


def test_discharge_first_beyond_the_conditioning_share_is_still_rejected():
    pre = step(0.06, 2.915, 2.000)  # 11 % of the charge
    cycle = FirstCycle(
        "biologic-mpr", charge=FIRST_CHARGE, discharge=pre, discharge_first=True,
        discharge_after_charge=FIRST_DISCHARGE,
    )  # fmt: skip
    test = classify_cycle(cycle, "B001-S01", 3.0, MassSource.SIDECAR, ITS_PROTOCOL)
    assert test.failure_class is FailureClass.MEASUREMENT
    assert "discharges first, 0.06 mAh before a first charge of 0.545 mAh (11%" in test.reason
    assert "a conditioning step passes at most 5%" in test.reason
    assert "not a cathode first-cycle test" in test.reason


@pytest.mark.parametrize("mass_mg", [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0])
def test_anode_half_cell_is_not_a_cathode_test_whatever_the_mass(mass_mg):
    # biol.mpr (Si/C against Li): one charge of 4.977 mAh from 0.133 to 1.000 V, no discharge;
    # it was a "short circuit" below ~17 mg and "no discharge" above
    charge = step(4.977, 0.133, 1.0)
    cycle = FirstCycle("biologic-mpr", charge=charge, discharge=None)
    test = classify_cycle(cycle, "B001-S01", mass_mg, MassSource.SIDECAR, PROTOCOL)
    assert test.failure_class is FailureClass.MEASUREMENT
    assert test.reason == (
        "the voltage never reaches 2.5 V (highest 1.000 V): "
        "an anode half cell, not a cathode first-cycle test"
    )


def test_protocol_defaults_are_the_settings_defaults(tmp_path):
    defaults = Settings(home=tmp_path)
    assert defaults.protocol() == Protocol()
    changed = Settings(home=tmp_path, plausible_max_ce=1.3, cathode_min_v=2.0)
    assert changed.protocol() == Protocol(plausible_max_ce=1.3, cathode_min_v=2.0)


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


def test_a_sheet_row_is_taken_as_the_lab_judged_it_and_ok_keeps_no_class():
    failed = from_sheet_row(
        SheetRow("B001-S02", Outcome.FAILED, 3, reason="sintered",
                 failure_class=FailureClass.SYNTHESIS), "sheet"
    )  # fmt: skip
    assert failed.failure_class is FailureClass.SYNTHESIS
    assert failed.source_row == 3
    ok = from_sheet_row(SheetRow("B001-S01", Outcome.OK, 2, discharge_mah_g=221.0), "sheet")
    assert ok.failure_class is None and ok.discharge_mah_g == 221.0
    cell = from_sheet_row(
        SheetRow("B001-S03", Outcome.FAILED, 4, failure_class=FailureClass.CELL), "sheet"
    )
    assert cell.failure_class is FailureClass.CELL
