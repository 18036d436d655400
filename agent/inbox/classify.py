"""Judge a cell test against the lab's protocol: ok, or failed with a class and a reason.

A short conditioning discharge from open circuit before the first charge (at most
``conditioning_max_fraction`` of that charge) is skipped: the first cycle is then the first
charge and the discharge after it. The rules, in order (the first that applies wins):

1. the voltage never reaches ``cathode_min_v`` (an anode half cell) -> failed, measurement:
   not a cathode first-cycle test
2. no charge and no discharge at all (rest / impedance only, or a residual current below
   ``min_charge_mah_g``) -> failed, untested: recorded, but the sample's test has not run yet
3. the test discharges before it charges (an anode half cell, a wrong program) -> failed,
   measurement: not a cathode first-cycle test
4. first charge never reached the charge cutoff and passed more charge than the
   material can hold (> plausible max) -> failed, cell: "short circuit"
5. a first "charge" below ``min_charge_mah_g`` (a residual current) and a discharge that is
   not a dead cell's -> failed, measurement
6. charged but never discharged -> failed, cell: "no discharge after charge"
7. the file ends inside the first discharge above the discharge cutoff -> failed,
   measurement: "test aborted during the first discharge"
8. the first discharge stopped more than ``discharge_end_margin_v`` above the discharge
   cutoff -> failed, measurement
9. the first charge ended below the charge cutoff -> failed, measurement:
   "charge cutoff never reached"
10. first discharge below 1 mAh/g -> failed, cell: "dead cell"
11. coulombic efficiency above ``plausible_max_ce`` -> failed, measurement
12. first discharge outside the plausible window -> failed, measurement
13. otherwise ok.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.cycler.base import (
    FailureClass,
    FirstCycle,
    MassSource,
    Outcome,
    SheetRow,
    StepSummary,
)
from agent.protocol import Protocol

DEAD_CELL_MAH_G = 1.0


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
    # the file stops inside its first cycle: what a file still being written looks like
    cut_short: bool = False

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


def _skip_conditioning(cycle: FirstCycle, protocol: Protocol) -> FirstCycle:
    """The test as it stands, or without the short conditioning discharge before its charge."""
    pre, charge = cycle.discharge, cycle.charge
    if not cycle.discharge_first or pre is None or charge is None:
        return cycle
    if pre.capacity_mah > protocol.conditioning_max_fraction * charge.capacity_mah:
        return cycle  # a real discharge: the test discharges first
    return replace(
        cycle,
        discharge=cycle.discharge_after_charge,
        discharge_first=False,
        discharge_after_charge=None,
    )


def _discharges_first(cycle: FirstCycle, protocol: Protocol) -> str:
    pre, charge = cycle.discharge, cycle.charge
    if charge is None or pre is None:
        seen = "and never charges"
    else:
        share = pre.capacity_mah / charge.capacity_mah if charge.capacity_mah else float("inf")
        seen = (
            f"{pre.capacity_mah:.4g} mAh before a first charge of {charge.capacity_mah:.4g} mAh "
            f"({share:.0%}; a conditioning step passes at most "
            f"{protocol.conditioning_max_fraction:.0%})"
        )
    return (
        f"the test discharges first, {seen}: an anode half cell or a wrong program, "
        "not a cathode first-cycle test"
    )


def _judge(
    cycle: FirstCycle, charge: float | None, discharge: float | None, protocol: Protocol
) -> tuple[FailureClass, str] | None:
    """The failure class and reason of a cycler test, or None when it is ok."""
    tol = protocol.cutoff_tolerance_v
    steps = [step for step in (cycle.charge, cycle.discharge) if step is not None]
    # judged on voltages alone, so the verdict does not depend on the mass
    if steps and (top_v := max(step.max_v for step in steps)) < protocol.cathode_min_v:
        return FailureClass.MEASUREMENT, (
            f"the voltage never reaches {protocol.cathode_min_v:g} V (highest {top_v:.3f} V): "
            "an anode half cell, not a cathode first-cycle test"
        )
    residual = charge is not None and charge < protocol.min_charge_mah_g
    if cycle.discharge is None and (cycle.charge is None or residual):
        seen = ", ".join(sorted(cycle.other_steps)) or "no data"
        if residual:
            seen += f"; a residual current of {charge:.3g} mAh/g"
        return FailureClass.UNTESTED, (
            f"no charge and no discharge in the file ({seen}): the cycling test has not run yet"
        )
    if cycle.discharge_first:
        return FailureClass.MEASUREMENT, _discharges_first(cycle, protocol)
    charge_short = cycle.charge is not None and cycle.charge.max_v < protocol.charge_cutoff_v - tol
    if charge_short and charge is not None and charge > protocol.plausible_max_mah_g:
        return FailureClass.CELL, (
            f"short circuit: first charge passed {charge:.1f} mAh/g without reaching "
            f"{protocol.charge_cutoff_v} V (max {cycle.charge.max_v:.3f} V)"
        )
    dead = discharge is not None and discharge < DEAD_CELL_MAH_G
    if residual and not dead:
        return FailureClass.MEASUREMENT, (
            f"first charge {charge:.3g} mAh/g is below the {protocol.min_charge_mah_g:g} mAh/g "
            "a charge passes: a residual current, not the first charge"
        )
    if cycle.discharge is None:
        return FailureClass.CELL, "no discharge after the first charge"
    end_v, cutoff_v = cycle.discharge.end_v, protocol.discharge_cutoff_v
    if not cycle.discharge.completed and end_v > cutoff_v + tol:
        return FailureClass.MEASUREMENT, (
            f"test aborted during the first discharge at {end_v:.3f} V (cutoff {cutoff_v} V)"
        )
    if end_v > cutoff_v + protocol.discharge_end_margin_v:
        return FailureClass.MEASUREMENT, (
            f"first discharge stopped at {end_v:.3f} V, more than "
            f"{protocol.discharge_end_margin_v:g} V above the {cutoff_v} V cutoff: "
            "not the protocol's full discharge"
        )
    if charge_short:
        return FailureClass.MEASUREMENT, (
            f"charge cutoff never reached: first charge peaked at {cycle.charge.max_v:.3f} V "
            f"(cutoff {protocol.charge_cutoff_v} V)"
        )
    if dead:
        return FailureClass.CELL, f"dead cell: first discharge {discharge:.2f} mAh/g"
    if charge and discharge is not None and discharge / charge > protocol.plausible_max_ce:
        return FailureClass.MEASUREMENT, (
            f"coulombic efficiency {discharge / charge:.3g} is above the plausible maximum "
            f"{protocol.plausible_max_ce:g}: a first cycle cannot give back that much"
        )
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
    cycle = _skip_conditioning(cycle, protocol)
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
        cut_short=verdict is not None and ends_inside_first_cycle(cycle, protocol),
    )


def ends_inside_first_cycle(cycle: FirstCycle, protocol: Protocol) -> bool:
    """The file stops before its first cycle is done: before any discharge (rest only,
    inside the first charge or the rest after it), or inside the first discharge above its
    cutoff."""
    discharge = cycle.discharge
    if discharge is None:
        return True
    above_cutoff = discharge.end_v > protocol.discharge_cutoff_v + protocol.cutoff_tolerance_v
    return not discharge.completed and above_cutoff


def from_sheet_row(row: SheetRow, cycler_format: str) -> CellTest:
    """A hand-entered result is taken as the lab judged it."""
    return CellTest(
        sample_id=row.sample_id,
        outcome=row.status,
        failure_class=row.failure_class if row.status is Outcome.FAILED else None,
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
