"""Import past experiments (one CSV row each) as `historical` experiments and results.

Columns: the design-space parameters (missing values allowed), ``initial_discharge_mah_g``,
``status`` (ok | failed), ``reason``; optional ``sample_id`` (default H<row>) and
``failure_class`` (a failed row without one counts as a synthesis failure, as in result
sheets). Failed rows are kept. A row marked ok without a value is stored as an experiment
with no result: poor results were often never measured, and that is data too.
Importing the same file again adds nothing (rows are keyed by file hash and row).

Rows are read as result sheets are (`agent.cycler.sheet.read_rows`): the same status words,
blanks and failure classes, commas, semicolons or tabs between fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.cycler.base import Outcome, ReadError, SheetRow
from agent.cycler.sheet import read_rows
from agent.errors import LabloopError
from agent.space.design import DesignSpace
from agent.store.db import Experiment, Origin, Result
from agent.store.files import sha256_of

REQUIRED = ("initial_discharge_mah_g", "status")
OPTIONAL = ("reason", "failure_class", "initial_charge_mah_g")


class HistoryError(LabloopError, ValueError):
    """A history file that cannot be imported as it stands; nothing of it is stored."""


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    added: int
    already_there: int
    ok: int
    failed: int
    unmeasured: int


def _read(path: Path) -> tuple[list[str], list[SheetRow]]:
    """The history's header and rows, or a HistoryError saying why they cannot be read."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise HistoryError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise HistoryError(f"{path} is a folder; give the history's CSV file") from None
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        raise HistoryError(f"{path.name}: not UTF-8 text; save it as CSV (UTF-8)") from None
    if not text.strip():
        raise HistoryError(f"{path.name}: empty, no header row")
    try:
        return read_rows(path, REQUIRED, what="history", history=True)
    except ReadError as error:
        raise HistoryError(f"{path.name}: {error}") from None


def import_history(engine: Engine, path: Path, space: DesignSpace) -> ImportSummary:
    """Store every row of the history file at ``path``; HistoryError if it cannot be read."""
    header, rows = _read(path)
    unknown = [
        c for c in header
        if c not in space.columns and c.lower() not in (*REQUIRED, *OPTIONAL, "sample_id")
    ]  # fmt: skip
    if unknown:
        raise HistoryError(f"{path.name}: unknown column(s) {', '.join(unknown)}")
    given = [name for name in space.columns if name in header]
    sha = sha256_of(path)
    counts = dict.fromkeys(("added", "already", "ok", "failed", "unmeasured"), 0)
    with Session(engine) as session:
        known = set(session.exec(select(Experiment.sample_id)).all())
        for index, row in enumerate(rows, start=1):
            sample_id = row.sample_id or f"H{index:05d}"
            if sample_id in known:
                counts["already"] += 1
                continue
            # a blank cell of a given column is None: the value was not recorded
            parameters = {name: row.parameters.get(name) for name in given}
            experiment = Experiment(
                sample_id=sample_id, origin=Origin.HISTORICAL, parameters=parameters
            )
            session.add(experiment)
            session.flush()
            result = _result(row, experiment.id, sha)
            if result is None:
                counts["unmeasured"] += 1
            else:
                session.add(result)
                counts[result.outcome] += 1
            counts["added"] += 1
            known.add(sample_id)
        session.commit()
    return ImportSummary(len(rows), counts["added"], counts["already"], counts["ok"],
                         counts["failed"], counts["unmeasured"])  # fmt: skip


def _result(row: SheetRow, experiment_id: int, sha: str) -> Result | None:
    """The row's result; None for an ok row never measured."""
    if row.status is Outcome.OK and row.discharge_mah_g is None:
        return None
    return Result(
        experiment_id=experiment_id, outcome=row.status, failure_class=row.failure_class,
        reason=row.reason, discharge_mah_g=row.discharge_mah_g, source_sha256=sha,
        source_row=row.row_number,
    )  # fmt: skip
