"""Judging one dropped file: read it, name its sample, find its mass, classify its first cycle.

Everything a file can be refused for is a ``Rejected`` with the reason and what to do; the
ingest quarantines the file with that reason. Nothing here writes to the store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from agent.cycler import FirstCycle, ReadError, read_export
from agent.cycler.base import MassSource
from agent.errors import LabloopError
from agent.inbox.classify import CellTest, classify_cycle, from_sheet_row, needs_mass
from agent.inbox.masses import MassBook, read_masses
from agent.inbox.sample_ids import find_sample_id
from agent.protocol import Protocol
from agent.space.design import DesignSpace

log = logging.getLogger(__name__)


class Rejected(LabloopError):
    """The file cannot be recorded; the message says why and what to do."""

    def __init__(
        self, reason: str, cycler_format: str | None = None, cut_short: bool = False
    ) -> None:
        super().__init__(reason)
        self.cycler_format = cycler_format
        # unreadable as it stands, and empty or ending mid-line: maybe still being written
        self.cut_short = cut_short


class Judge:
    """Reads and judges files against one lab's protocol, masses and design space."""

    def __init__(
        self,
        protocol: Protocol,
        space: DesignSpace,
        masses_path: Path,
        default_mass_mg: float | None,
        known_sample: Callable[[str], str | None],
    ) -> None:
        self.protocol = protocol
        self.space = space
        self.masses_path = masses_path
        self.default_mass_mg = default_mass_mg
        # the sample id a text names among recorded experiments, or None (the ledger's)
        self.known_sample = known_sample

    def read(self, path: Path, name: str) -> list[CellTest]:
        """Read and judge the file, or raise Rejected with the reason."""
        try:
            export = read_export(path)
        except ReadError as error:
            raise Rejected(str(error), cut_short=ends_mid_line(path)) from None
        except Exception as error:  # a reader bug must not lose the file
            log.exception("reader crashed on %s", name)
            raise Rejected(f"reader failed unexpectedly: {type(error).__name__}: {error}") from None
        if isinstance(export, FirstCycle):
            return [self._judge_export(export, path)]
        return [from_sheet_row(row, "result-sheet") for row in export]

    def _judge_export(self, cycle: FirstCycle, path: Path) -> CellTest:
        sample_id = find_sample_id(path.name) or find_sample_id(cycle.test_name)
        if sample_id is None:
            sample_id = self._known(path.stem) or self._known(cycle.test_name)
        if sample_id is None:
            raise Rejected(
                f"no sample id in the file name {path.name!r} or the test name "
                f"{cycle.test_name!r}: name the file like B003-S07.csv",
                cycle.format_name,
            )
        try:
            book = MassBook(read_masses(self.masses_path), self.default_mass_mg)
        except ReadError as error:
            raise Rejected(str(error), cycle.format_name) from None
        mass, source = book.resolve(cycle, sample_id)
        if mass is None and needs_mass(cycle):
            raise Rejected(
                f"no active mass for {sample_id}: add it to {self.masses_path.name} in the "
                "inbox (sample_id,active_mass_mg) or set LABLOOP_DEFAULT_ACTIVE_MASS_MG, "
                "then drop the file again",
                cycle.format_name,
            )
        return classify_cycle(cycle, sample_id, mass, source, self.protocol)

    def _known(self, text: str | None) -> str | None:
        return self.known_sample(text) if text else None

    def check_new_sample(self, sample_id: str, test: CellTest) -> None:
        """A sample in no recipe file is recorded as a manual experiment only with a whole,
        well-spelt recipe; otherwise Rejected says what to fix."""
        if not test.parameters:
            raise Rejected(f"unknown sample id {sample_id}: not in any recipe file; " + (
                "give its recipe parameters as extra sheet columns to record it as a manual "
                "experiment" if test.mass_source == MassSource.SHEET else
                "check the sample id in the file name or the test name (as in the recipe "
                "file, e.g. B003-S07), rename the file and drop it again"
            ))  # fmt: skip
        known = self.space.columns
        unknown = sorted(set(test.parameters) - set(known))
        if unknown:  # a misspelt column would silently lose a recipe value
            raise Rejected(
                f"{sample_id}: unknown recipe parameter column(s) {', '.join(unknown)}; "
                f"known: {', '.join(known)}"
            )
        if stray := self.space.stray_values(test.parameters):  # "no coating" said one way only
            raise Rejected(f"{sample_id}: {'; '.join(stray)}")


def ends_mid_line(path: Path) -> bool:
    """Empty, or its last byte is not a line end: how a text file cut off looks."""
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) not in (b"\n", b"\r")
