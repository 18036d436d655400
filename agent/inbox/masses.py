"""The active mass of each cell: from the export, the masses.csv sidecar, or the default."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from agent.cycler.base import FirstCycle, MassSource, ReadError
from agent.inbox.sample_ids import normalise_sample_id

log = logging.getLogger(__name__)


def read_masses(path: Path) -> dict[str, float]:
    """``sample_id -> active_mass_mg`` from a masses.csv sidecar; {} when there is none.

    A malformed sidecar raises ReadError: guessing masses would corrupt every capacity.
    """
    if not path.is_file():
        return {}
    masses: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        if "sample_id" not in fields or "active_mass_mg" not in fields:
            raise ReadError(f"{path.name} needs the columns sample_id, active_mass_mg")
        for line, row in enumerate(reader, start=2):
            sample = (row[fields["sample_id"]] or "").strip()
            value = (row[fields["active_mass_mg"]] or "").strip()
            if not sample:
                continue
            try:
                mass = float(value)
            except ValueError:
                raise ReadError(
                    f"{path.name} line {line}: active_mass_mg {value!r} is not a number"
                ) from None
            if mass <= 0:
                raise ReadError(f"{path.name} line {line}: active_mass_mg must be > 0, got {mass}")
            masses[normalise_sample_id(sample)] = mass
    return masses


@dataclass(frozen=True)
class MassBook:
    """Where masses come from when the export does not carry one."""

    sidecar: dict[str, float]
    default_mg: float | None = None

    def resolve(self, cycle: FirstCycle, sample_id: str) -> tuple[float | None, MassSource | None]:
        """The mass to use for ``sample_id`` and where it came from."""
        if cycle.active_mass_mg is not None:
            return cycle.active_mass_mg, MassSource.FILE
        if sample_id in self.sidecar:
            return self.sidecar[sample_id], MassSource.SIDECAR
        if self.default_mg is not None:
            return self.default_mg, MassSource.DEFAULT
        return None, None
