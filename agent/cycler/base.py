"""What every cycler reader returns, and the errors it may raise.

A reader turns one export file into a `FirstCycle`: the first charge and first
discharge of the test, in the file's own absolute units (mAh) plus anything the
file says about specific capacity and active mass. It does not judge the test
(that is `classify`) and it does not know which sample the file belongs to
beyond the test name written inside it (that is `agent.inbox.sample_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from agent.errors import LabloopError


class ReadError(LabloopError):
    """The file is of a known format but its content cannot give a first cycle."""


class UnsupportedFormat(ReadError):
    """No reader knows this file. The message says what was recognised."""


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


class FailureClass(StrEnum):
    # the recipe itself failed: marks an infeasible region of the design space
    SYNTHESIS = "synthesis"
    # assembly or cell fault: says nothing about the recipe; the sample may be re-tested
    CELL = "cell"
    # the test is an artifact (aborted, cutoff not reached, implausible): flagged, not learned
    MEASUREMENT = "measurement"
    # the file holds no charge and no discharge (rest, impedance): recorded, but the sample's
    # cycling test has not run yet, so it neither completes the sample nor teaches the model
    UNTESTED = "untested"


# how a person writes the status of a result entered by hand (result sheets, history files)
STATUS_WORDS = {
    "ok": Outcome.OK, "success": Outcome.OK, "succeeded": Outcome.OK,
    "failed": Outcome.FAILED, "fail": Outcome.FAILED, "failure": Outcome.FAILED,
}  # fmt: skip


def hand_entered_failure(named: str | None) -> FailureClass:
    """The class of a failure entered by hand: as named, else **synthesis**. A result a
    person marks failed without saying why is a recipe that produced nothing to test.
    ValueError for a name that is not a class."""
    return FailureClass(named) if named else FailureClass.SYNTHESIS


class MassSource(StrEnum):
    FILE = "file"  # the export carries the active mass (or a specific-capacity column)
    SIDECAR = "sidecar"  # masses.csv in the inbox
    DEFAULT = "default"  # the configured default active mass
    SHEET = "sheet"  # a result sheet gives mAh/g directly: no mass involved


@dataclass(frozen=True)
class StepSummary:
    """One charge or discharge step as read: capacity in mAh and the voltages seen."""

    capacity_mah: float
    start_v: float
    end_v: float
    max_v: float
    min_v: float
    rows: int
    # the step ended by itself (another step or cycle followed it) rather than the file ending
    completed: bool
    # specific capacity in mAh/g when the file carries a column for it
    capacity_mah_g: float | None = None


@dataclass(frozen=True)
class FirstCycle:
    """The first charge and first discharge of a cycler test, as one reader saw them."""

    format_name: str
    charge: StepSummary | None
    discharge: StepSummary | None
    # name of the test / sample written inside the file, if any
    test_name: str | None = None
    # active mass if the file carries it, in mg
    active_mass_mg: float | None = None
    # True when the first current step of the test is a discharge (anode half cell, wrong program,
    # or a short conditioning discharge from open circuit)
    discharge_first: bool = False
    # only when discharge_first: the first discharge after the first charge, which is the first
    # cycle's discharge when the discharge before the charge was a conditioning step
    discharge_after_charge: StepSummary | None = None
    # data seen besides charge/discharge, e.g. {"rest", "impedance"}: explains an empty test
    other_steps: frozenset[str] = field(default_factory=frozenset)
    rows_read: int = 0


@dataclass(frozen=True)
class SheetRow:
    """One row of a plain result sheet entered by hand."""

    sample_id: str
    status: Outcome
    row_number: int
    discharge_mah_g: float | None = None
    charge_mah_g: float | None = None
    reason: str | None = None
    failure_class: FailureClass | None = None
    # recipe parameters given in the sheet (needed to record an unknown sample as `manual`)
    parameters: dict[str, float | str] = field(default_factory=dict)
