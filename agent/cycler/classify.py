"""Judge a cell test against the lab's protocol: ok, or failed with a class and a reason.

The rules, in order (the first that applies wins):

1. no charge and no discharge at all (rest / impedance only) -> failed, cell: "no discharge"
2. the test discharges before it charges (an anode half cell, a wrong program) -> failed,
   measurement: not a cathode first-cycle test
3. first charge never reached the charge cutoff and passed more charge than the
   material can hold (> plausible max) -> failed, cell: "short circuit"
4. charged but never discharged -> failed, cell: "no discharge after charge"
5. the file ends inside the first discharge above the discharge cutoff -> failed,
   measurement: "test aborted during the first discharge"
6. the first charge ended below the charge cutoff -> failed, measurement:
   "charge cutoff never reached"
7. first discharge below 1 mAh/g -> failed, cell: "dead cell"
8. first discharge outside the plausible window -> failed, measurement
9. otherwise ok.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.cycler.base import (
    FailureClass,
    FirstCycle,
    MassSource,
    Outcome,
    SheetRow,
    StepSummary,
)

DEAD_CELL_MAH_G = 1.0


@dataclass(frozen=True)
class Protocol:
    """The lab's first-cycle test protocol and what counts as a plausible result."""

    charge_cutoff_v: float = 4.25
    discharge_cutoff_v: float = 2.75
    tolerance_v: float = 0.05
    plausible_min_mah_g: float = 50.0
    plausible_max_mah_g: float = 300.0


@dataclass(frozen=True)
class CellTest:
    """One judged test of one sample, ready to be stored as a Result."""

    sample_id: str
    outcome: Outcome
    cycler_format: str
    failure_class: FailureClass | None = None
    reason: str | None = None
    charge_mah_g: float | None = None
    discharge_mah_g: float | None = None
    active_mass_mg: float | None = None
    mass_source: MassSource | None = None
    source_row: int = 0
    parameters: dict[str, float | str] = field(default_factory=dict)

    @property
    def coulombic_efficiency(self) -> float | None:
        if self.charge_mah_g and self.discharge_mah_g is not None:
            return self.discharge_mah_g / self.charge_mah_g
        return None


def _specific(step: StepSummary | None, mass_mg: float | None) -> float | None:
    if step is None:
        return None
    if step.capacity_mah_g is not None:
        return step.capacity_mah_g
    if mass_mg is None:
        return None
    return step.capacity_mah / (mass_mg / 1000.0)


def _judge(
    cycle: FirstCycle, charge: float | None, discharge: float | None, protocol: Protocol
) -> tuple[FailureClass, str] | None:
    """The failure class and reason of a cycler test, or None when it is ok."""
    tol = protocol.tolerance_v
    if cycle.charge is None and cycle.discharge is None:
        seen = ", ".join(sorted(cycle.other_steps)) or "nothing"
        return FailureClass.CELL, f"no discharge: the file holds no charge or discharge ({seen})"
    if cycle.discharge_first:
        return FailureClass.MEASUREMENT, (
            "the test discharges first (an anode half cell or a wrong program): "
            "not a cathode first-cycle test"
        )
    charge_short = cycle.charge is not None and cycle.charge.max_v < protocol.charge_cutoff_v - tol
    if charge_short and charge is not None and charge > protocol.plausible_max_mah_g:
        return FailureClass.CELL, (
            f"short circuit: first charge passed {charge:.1f} mAh/g without reaching "
            f"{protocol.charge_cutoff_v} V (max {cycle.charge.max_v:.3f} V)"
        )
    if cycle.discharge is None:
        return FailureClass.CELL, "no discharge after the first charge"
    if not cycle.discharge.completed and cycle.discharge.end_v > protocol.discharge_cutoff_v + tol:
        return FailureClass.MEASUREMENT, (
            f"test aborted during the first discharge at {cycle.discharge.end_v:.3f} V "
            f"(cutoff {protocol.discharge_cutoff_v} V)"
        )
    if charge_short:
        return FailureClass.MEASUREMENT, (
            f"charge cutoff never reached: first charge peaked at {cycle.charge.max_v:.3f} V "
            f"(cutoff {protocol.charge_cutoff_v} V)"
        )
    if discharge is not None and discharge < DEAD_CELL_MAH_G:
        return FailureClass.CELL, f"dead cell: first discharge {discharge:.2f} mAh/g"
    if discharge is not None and not (
        protocol.plausible_min_mah_g <= discharge <= protocol.plausible_max_mah_g
    ):
        return FailureClass.MEASUREMENT, (
            f"first discharge {discharge:.1f} mAh/g is outside the plausible window "
            f"{protocol.plausible_min_mah_g:g}-{protocol.plausible_max_mah_g:g} mAh/g"
        )
    return None


def classify_cycle(
    cycle: FirstCycle,
    sample_id: str,
    mass_mg: float | None,
    mass_source: MassSource | None,
    protocol: Protocol,
) -> CellTest:
    """Turn what a reader saw into a judged CellTest (capacities in mAh/g)."""
    charge = _specific(cycle.charge, mass_mg)
    discharge = _specific(cycle.discharge, mass_mg)
    verdict = _judge(cycle, charge, discharge, protocol)
    return CellTest(
        sample_id=sample_id,
        outcome=Outcome.OK if verdict is None else Outcome.FAILED,
        failure_class=None if verdict is None else verdict[0],
        reason=None if verdict is None else verdict[1],
        cycler_format=cycle.format_name,
        charge_mah_g=charge,
        discharge_mah_g=discharge,
        active_mass_mg=mass_mg,
        mass_source=mass_source,
    )


def from_sheet_row(row: SheetRow, cycler_format: str) -> CellTest:
    """A hand-entered result is taken as the lab judged it."""
    failure_class = row.failure_class
    if row.status is Outcome.FAILED and failure_class is None:
        failure_class = FailureClass.SYNTHESIS
    return CellTest(
        sample_id=row.sample_id,
        outcome=row.status,
        failure_class=failure_class if row.status is Outcome.FAILED else None,
        reason=row.reason,
        cycler_format=cycler_format,
        charge_mah_g=row.charge_mah_g,
        discharge_mah_g=row.discharge_mah_g,
        mass_source=MassSource.SHEET,
        source_row=row.row_number,
        parameters=dict(row.parameters),
    )


def needs_mass(cycle: FirstCycle) -> bool:
    """True when a capacity must be divided by a mass the file does not give."""
    steps = [s for s in (cycle.charge, cycle.discharge) if s is not None]
    return any(s.capacity_mah_g is None for s in steps) and cycle.active_mass_mg is None
