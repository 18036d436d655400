"""From rows to the first charge and first discharge: the part every reader shares.

A reader turns each data row into a `Sample` (what the cell was doing, its voltage, and the
charge passed since the previous row) and feeds it to a `FirstCycleTracker`, which decides
where the first charge and the first discharge begin and end and tells the reader when it can
stop reading.

What counts as the first charge and discharge:

* a **charge** runs from its first charging row until the first discharging row; rests or other
  non-current rows in between (a pulse, an OCV pause, an impedance scan, then more charging) do
  not end it, and the charge passed in all its charging segments is summed. CC then CV is one
  charge. This is the charge that the first discharge has to be compared with.
* a **discharge** runs from its first discharging row until the first row of anything else (a
  rest, a charge, the next step): what the cell gives at its first discharge to the cutoff.
  Later discharge steps before the next charge (a C-rate taper after a rest) are not added.
* when the first current-carrying row is a discharge (`discharge_first`), the first discharge is
  still that one and the charge is the first charge after it. The tracker then also reads the
  discharge that follows that charge (`AFTER_CHARGE`, `FirstCycle.discharge_after_charge`): when
  the discharge before the charge was only a short conditioning step, that one is the first
  cycle's discharge. Tests that charge first stop after their first discharge as before.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from agent.cycler.base import FirstCycle, ReadError, StepSummary

CHARGE = "charge"
DISCHARGE = "discharge"
REST = "rest"
IMPEDANCE = "impedance"
OTHER = "other"
CURRENT_KINDS = frozenset({CHARGE, DISCHARGE})
# the role of the discharge after the first charge of a test whose first current step discharged
AFTER_CHARGE = "discharge after charge"

# below this the current is zero (an open circuit reads 0 or noise well under a microamp)
ZERO_CURRENT_MA = 1e-4

# a test that begins later than this is not the start of a test
MAX_FIRST_CYCLE = 1
MAX_FIRST_RECORD = 1000


def kind_from_current(current_ma: float) -> str:
    """charge, discharge or rest from the sign of the current (positive = charge)."""
    if current_ma > ZERO_CURRENT_MA:
        return CHARGE
    if current_ma < -ZERO_CURRENT_MA:
        return DISCHARGE
    return REST


@dataclass(slots=True)
class Sample:
    """One data row as the tracker needs it."""

    kind: str  # charge | discharge | rest | impedance | other
    voltage: float
    # charge passed since the previous row (>= 0), in mAh and, if the file has it, mAh/g
    dq_mah: float = 0.0
    dq_mah_g: float | None = None
    # the cycler's step this row belongs to (any identifier), to map phases back to steps
    step: Hashable = None


class CounterDelta:
    """Per-row increments of a capacity counter that the cycler resets now and then.

    Cyclers write capacity as a counter that restarts at zero at each step (Maccor, Neware),
    each cycle (Arbin) or each half cycle (BioLogic). ``scope`` is what the counter restarts
    with (step or cycle id); a drop of the value is also taken as a restart.
    """

    _UNSET: Any = object()

    def __init__(self) -> None:
        self._previous: float | None = None
        self._scope: Hashable = self._UNSET

    def __call__(self, value: float, scope: Hashable = None) -> float:
        previous, same_scope = self._previous, scope == self._scope
        self._previous, self._scope = value, scope
        if previous is None or not same_scope:
            return value
        if value >= previous:
            return value - previous
        # a real restart goes back towards zero; a dip in the last digits is rounding
        if value < previous - 1e-9 * max(1.0, abs(previous)):
            return value
        return 0.0


class NetCounterDelta:
    """Per-row increments of a net charge counter such as BioLogic's (Q-Qo), which never resets."""

    def __init__(self) -> None:
        self._previous: float | None = None

    def __call__(self, value: float) -> float:
        previous, self._previous = self._previous, value
        return 0.0 if previous is None else abs(value - previous)


def check_test_start(fmt: str, cycle: float | None, record: float | None) -> None:
    """Raise ReadError when the first data row shows the file starts in the middle of a test."""
    late_cycle = cycle is not None and cycle > MAX_FIRST_CYCLE
    late_record = record is not None and record > MAX_FIRST_RECORD
    if not (late_cycle or late_record):
        return
    where = []
    if cycle is not None:
        where.append(f"cycle {cycle:g}")
    if record is not None:
        where.append(f"record {record:g}")
    at = where[0] + (f" ({where[1]})" if len(where) > 1 else "")
    raise ReadError(
        f"{fmt}: file starts mid-test at {at}: the first cycle is not in this file; "
        "export the whole test"
    )


class _Phase:
    """A first charge or first discharge being accumulated."""

    def __init__(self, sample: Sample) -> None:
        self.kind = sample.kind
        self.rows = 0
        self.capacity = 0.0
        self.capacity_g: float | None = 0.0
        self.start_v = sample.voltage
        self.end_v = sample.voltage
        self.max_v = -math.inf
        self.min_v = math.inf
        self.completed = False
        self.steps: list[Hashable] = []
        # charge passed during rows between two charging segments, kept if charging resumes
        self._pending = 0.0
        self._pending_g = 0.0
        self._interrupted = False
        self.add(sample)

    def add(self, sample: Sample) -> None:
        if self._interrupted:
            self._absorb(self._pending, self._pending_g)
            self._pending, self._pending_g = 0.0, 0.0
            self._interrupted = False
            self.completed = False
        self.rows += 1
        self._absorb(sample.dq_mah, sample.dq_mah_g)
        self.end_v = sample.voltage
        self.max_v = max(self.max_v, sample.voltage)
        self.min_v = min(self.min_v, sample.voltage)
        if not self.steps or self.steps[-1] != sample.step:
            self.steps.append(sample.step)

    def interlude(self, sample: Sample) -> None:
        """A non-current row inside a charge: it may resume, or this was its end."""
        self._interrupted = True
        self.completed = True
        self._pending += sample.dq_mah
        if sample.dq_mah_g is not None:
            self._pending_g += sample.dq_mah_g

    def _absorb(self, dq: float, dq_g: float | None) -> None:
        self.capacity += dq
        if dq_g is None:
            self.capacity_g = None
        elif self.capacity_g is not None:
            self.capacity_g += dq_g

    def summary(self) -> StepSummary:
        return StepSummary(
            capacity_mah=self.capacity,
            start_v=self.start_v,
            end_v=self.end_v,
            max_v=self.max_v,
            min_v=self.min_v,
            rows=self.rows,
            completed=self.completed,
            capacity_mah_g=self.capacity_g,
        )


class FirstCycleTracker:
    """Feed it samples in file order; `add` returns True once the needed steps are complete.

    Its phases are named by role: `CHARGE`, `DISCHARGE` and, for a test that discharges first,
    `AFTER_CHARGE`.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.rows_read = 0
        self._phases: dict[str, _Phase] = {}
        self._open: _Phase | None = None
        self._first_kind: str | None = None
        self._other: set[str] = set()

    @property
    def done(self) -> bool:
        needed = {CHARGE, DISCHARGE}
        if self._first_kind == DISCHARGE:
            needed.add(AFTER_CHARGE)
        return self._open is None and needed <= self._phases.keys()

    def add(self, sample: Sample) -> bool:
        if self.done:
            return True
        self.rows_read += 1
        phase = self._open
        if sample.kind not in CURRENT_KINDS:
            self._other.add(sample.kind)
            if phase is not None:
                if phase.kind == CHARGE:
                    phase.interlude(sample)
                else:
                    phase.completed = True
                    self._open = None
            return self.done
        if phase is not None:
            if sample.kind == phase.kind:
                phase.add(sample)
                return False
            phase.completed = True
            self._open = None
            if self.done:
                return True
        role = self._role_starting(sample.kind)
        if role is not None:
            self._open = self._phases[role] = _Phase(sample)
            self._first_kind = self._first_kind or sample.kind
        return False

    def _role_starting(self, kind: str) -> str | None:
        """The phase a current row of this kind begins, or None when it begins none."""
        if kind not in self._phases:
            return kind
        if kind == DISCHARGE and self._first_kind == DISCHARGE and CHARGE in self._phases:
            return None if AFTER_CHARGE in self._phases else AFTER_CHARGE
        return None

    def steps_of(self, role: str) -> list[Hashable]:
        """The cycler steps that made up the first charge, first discharge or `AFTER_CHARGE`."""
        phase = self._phases.get(role)
        return [] if phase is None else list(phase.steps)

    def result(self, **details: Any) -> FirstCycle:
        """What was seen so far (call at the end of the file or once `add` returned True)."""
        summaries = {role: phase.summary() for role, phase in self._phases.items()}
        return FirstCycle(
            format_name=self.fmt,
            charge=summaries.get(CHARGE),
            discharge=summaries.get(DISCHARGE),
            discharge_first=self._first_kind == DISCHARGE,
            discharge_after_charge=summaries.get(AFTER_CHARGE),
            other_steps=frozenset(self._other),
            rows_read=self.rows_read,
            **details,
        )


def mass_from_specific(cycle: FirstCycle) -> float | None:
    """Active mass in mg implied by a step's mAh and mAh/g (first discharge, else first charge)."""
    for step in (cycle.discharge, cycle.charge):
        if step is not None and step.capacity_mah_g and step.capacity_mah > 0:
            return step.capacity_mah / step.capacity_mah_g * 1000.0
    return None
