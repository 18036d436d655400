"""The virtual lab: recipes in, cycler export files out.

`VirtualLab.test` makes and tests each recipe (hidden truth, noise, synthesis and cell
failures) and returns what happened; `VirtualLab.run_batch` also writes what the lab bench
would drop into the inbox: one cycler export per cell (the four vendor formats mixed), the
masses.csv rows the mass-less formats need, and a result sheet row for each recipe whose
synthesis failed.

Everything random comes from a generator seeded by (lab seed, sample key), so the same seed
and sample ids give the same outcomes and byte-identical files whatever the order of calls.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.lab.exports import (
    BASE_DATE,
    FORMATS,
    CellRun,
    update_masses,
    write_export,
    write_result_sheet,
)
from agent.lab.failures import (
    NOISE_MAH_G,
    Kind,
    draw_cell_kind,
    failure_reasons,
    synthesis_risks,
)
from agent.lab.truth import BASELINE, Lab, true_capacity
from agent.space.design import DesignSpace

log = logging.getLogger(__name__)

# The electrodes of the loop's source paper (Lee et al., POSCO N.EX.T Hub): ~10 mg/cm² on a
# 14 mm disk (1.539 cm²), 96.5 wt % active material: ~14.9 mg of active material per cell.
LOADING_MG_CM2 = 10.0
DISK_AREA_CM2 = 1.539
ACTIVE_SHARE = 0.965

CELL_FAILURE_REASONS = {
    Kind.SHORT: "short circuit during the first charge",
    Kind.NO_DISCHARGE: "channel stopped after the first charge: no discharge",
    Kind.DEAD: "dead cell: no capacity",
    Kind.ABORTED: "test aborted during the first discharge",
}


@dataclass(frozen=True)
class LabOutcome:
    """What became of one recipe: the truth, the measured result and the cell's file numbers."""

    recipe: dict[str, Any]
    kind: Kind
    true_mah_g: float
    # the reported initial discharge capacity: only an ok cell gives one
    measured_mah_g: float | None
    # why it failed (synthesis or cell), None when ok
    reason: str | None
    # what the cycler records; None when the synthesis failed and no cell was made
    cell: CellRun | None

    @property
    def charge_mah_g(self) -> float | None:
        return None if self.cell is None else self.cell.charge_mah_g

    @property
    def discharge_mah_g(self) -> float | None:
        return None if self.cell is None else self.cell.discharge_mah_g

    @property
    def active_mass_mg(self) -> float | None:
        return None if self.cell is None else self.cell.active_mass_mg


def _cell(kind: Kind, measured: float, u: Sequence[float], mass_mg: float) -> CellRun:
    """The first-cycle numbers of a cell from its kind and uniform draws ``u`` (6 of them)."""
    efficiency = 0.85 + 0.05 * u[0]  # first-cycle coulombic efficiency of Ni-rich NCM
    common = {"active_mass_mg": mass_mg, "ocv_v": round(3.05 + 0.3 * u[1], 3)}
    charge = measured / efficiency
    if kind is Kind.SHORT:  # far more charge than the material holds, cutoff never reached
        return CellRun(kind, charge_mah_g=340.0 + 110.0 * u[2], discharge_mah_g=None, **common)
    if kind is Kind.NO_DISCHARGE:
        return CellRun(kind, charge_mah_g=charge, discharge_mah_g=None, **common)
    if kind is Kind.DEAD:
        return CellRun(
            kind, charge_mah_g=0.1 + 0.5 * u[2], discharge_mah_g=0.02 + 0.4 * u[3], **common
        )
    if kind is Kind.ABORTED:
        fraction = 0.25 + 0.55 * u[4]
        return CellRun(
            kind,
            charge_mah_g=charge,
            discharge_mah_g=measured * fraction,
            discharge_fraction=fraction,
            **common,
        )
    return CellRun(
        kind, charge_mah_g=charge, discharge_mah_g=measured, second_cycle=bool(u[5] < 0.5), **common
    )


class VirtualLab:
    """A lab that behaves like the paper's, on a hidden ground truth. Seeded."""

    def __init__(self, seed: int, space: DesignSpace | None = None, lab: Lab = BASELINE) -> None:
        self.seed = seed
        self.space = space or DesignSpace.load()
        self.lab = lab
        self._calls = 0

    def _rng(self, key: str, purpose: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(f"{purpose}:{key}".encode())])

    def test(
        self, recipes: Sequence[Mapping[str, Any]], sample_ids: Sequence[str] | None = None
    ) -> list[LabOutcome]:
        """Make and test each recipe. Without sample ids, outcomes depend on the seed and on
        how many times `test` was called before."""
        if sample_ids is None:
            sample_ids = [f"test{self._calls}-{i}" for i in range(len(recipes))]
            self._calls += 1
        return self._outcomes(recipes, sample_ids)

    def _outcomes(
        self, recipes: Sequence[Mapping[str, Any]], keys: Sequence[str]
    ) -> list[LabOutcome]:
        if len(keys) != len(recipes):
            raise ValueError(f"{len(recipes)} recipes but {len(keys)} sample ids")
        if not recipes:
            return []
        for recipe in recipes:
            self.space.validate(recipe)
        frame = pd.DataFrame([dict(r) for r in recipes])
        truth = true_capacity(frame, self.lab)
        # one generator per sample, always drawn in the same order
        rngs = [self._rng(key, "sample") for key in keys]
        draws = np.array([rng.random(2) for rng in rngs]).reshape(len(rngs), 2)
        reasons = failure_reasons(synthesis_risks(frame, self.lab), draws[:, 0], draws[:, 1])
        outcomes = []
        for recipe, true_value, reason, rng in zip(recipes, truth, reasons, rngs, strict=True):
            recipe, true_value = dict(recipe), float(true_value)
            if reason is not None:
                outcomes.append(
                    LabOutcome(recipe, Kind.SYNTHESIS_FAILED, true_value, None, reason, None)
                )
                continue
            measured = true_value + NOISE_MAH_G * rng.normal()
            # electrodes more than 10 % off the target loading are punched again
            loading = LOADING_MG_CM2 * (1.0 + np.clip(0.035 * rng.normal(), -0.1, 0.1))
            mass_mg = round(loading * DISK_AREA_CM2 * ACTIVE_SHARE, 2)
            kind = draw_cell_kind(rng)
            cell = _cell(kind, float(measured), rng.random(6).tolist(), mass_mg)
            reported = measured if kind is Kind.OK else None
            outcomes.append(
                LabOutcome(recipe, kind, true_value, reported, CELL_FAILURE_REASONS.get(kind), cell)
            )
        return outcomes

    def run_batch(
        self,
        sample_ids: Sequence[str],
        recipes: Sequence[Mapping[str, Any]],
        inbox: Path,
        rng_format: str | Sequence[str] | None = None,
        masses_file: str = "masses.csv",
    ) -> list[Path]:
        """Test the batch and write its files into ``inbox``; the paths written, in order.

        ``rng_format``: None mixes the four vendor formats (drawn per sample from the seed),
        a format name ("arbin", "maccor", "neware", "biologic") uses that one, a list draws
        among its names. Masses of Arbin and Maccor cells go to ``inbox/masses_file`` first,
        so a watcher that sees an export finds its mass already there.
        """
        inbox = Path(inbox)
        inbox.mkdir(parents=True, exist_ok=True)
        outcomes = self._outcomes(recipes, sample_ids)
        choices = [rng_format] if isinstance(rng_format, str) else list(rng_format or FORMATS)
        unknown = [name for name in choices if name not in FORMATS]
        if unknown or not choices:
            raise ValueError(
                f"unknown export format(s) {', '.join(unknown) or '(none given)'}; "
                f"known: {', '.join(FORMATS)}"
            )
        formats = [str(self._rng(s, "format").choice(choices)) for s in sample_ids]
        sidecar = {
            s: o.cell.active_mass_mg
            for s, o, fmt in zip(sample_ids, outcomes, formats, strict=True)
            if o.cell is not None and not FORMATS[fmt].mass_in_file
        }
        if sidecar:
            update_masses(inbox / masses_file, sidecar)
            log.info("lab: %d masses -> %s", len(sidecar), masses_file)
        paths = []
        for index, (sample_id, outcome, fmt) in enumerate(
            zip(sample_ids, outcomes, formats, strict=True)
        ):
            if outcome.cell is None:
                path = write_result_sheet(sample_id, outcome.reason or "synthesis failed", inbox)
            else:
                path = write_export(
                    outcome.cell,
                    sample_id,
                    fmt,
                    inbox,
                    start=BASE_DATE + timedelta(days=index),
                    channel=1 + index % 64,
                )
            log.info(
                "lab: %s -> %s (%s, true %.1f mAh/g)",
                sample_id,
                path.name,
                outcome.kind,
                outcome.true_mah_g,
            )
            paths.append(path)
        return paths
