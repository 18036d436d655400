"""The ledger of drops: one ``IngestedFile`` row per drop, claimed, finished or forgotten.

The database is the source of truth, so every step can be repeated after a crash: the same
drop retried finds its row again (unique name + hash while processing), a lease renewed
while its worker lives stops two workers working on it at once, and content is archived at
most once (unique hash among archived rows).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from agent.errors import LabloopError
from agent.inbox.classify import CellTest
from agent.inbox.place import DUPLICATE, destination, duplicate_reason, error_note
from agent.inbox.sample_ids import normalise_sample_id
from agent.store.db import Experiment, FileStatus, IngestedFile, Origin, Result, utcnow


class AlreadyArchived(LabloopError):
    """Another worker archived the same content a moment ago; ``reason`` says which file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Ledger:
    """The rows of one installation's drops."""

    def __init__(self, engine: Engine, lease_seconds: float) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds

    def unfinished(self, name: str, sha: str) -> IngestedFile | None:
        """A finished row for this drop whose file was never moved (crash after commit)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(IngestedFile).where(
                    IngestedFile.original_name == name,
                    IngestedFile.sha256 == sha,
                    IngestedFile.status != FileStatus.PROCESSING,
                )
            ).all()
        for row in rows:
            if row.stored_path and not Path(row.stored_path).exists():
                return row
        return None

    def claim(self, name: str, sha: str, size: int) -> IngestedFile | None:
        """This drop's processing row, claimed for us; None when another worker holds it."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = _processing_row(session, name, sha)
            if row is None:
                session.add(IngestedFile(sha256=sha, original_name=name, size_bytes=size))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                row = _processing_row(session, name, sha)
                if row is None:
                    return None
            now = utcnow()
            claimed = session.exec(
                update(IngestedFile)
                .where(
                    IngestedFile.id == row.id,
                    IngestedFile.status == FileStatus.PROCESSING,
                    (IngestedFile.lease_until.is_(None)) | (IngestedFile.lease_until < now),
                )
                .values(lease_until=now + timedelta(seconds=self.lease_seconds))
            )
            session.commit()
            return row if claimed.rowcount == 1 else None

    def claim_unread(self, name: str, path: Path) -> IngestedFile:
        """A row for an entry whose content is never read (a link): keyed by its target."""
        target = os.readlink(path) if path.is_symlink() else str(path.resolve())
        with Session(self.engine, expire_on_commit=False) as session:
            row = IngestedFile(
                sha256=hashlib.sha256(os.fsencode(target)).hexdigest(),
                original_name=name,
                size_bytes=0,
            )
            session.add(row)
            session.commit()
        return row

    def archived_copy(self, sha: str) -> IngestedFile | None:
        """The drop whose same bytes are archived already, if any."""
        with Session(self.engine) as session:
            return session.exec(
                select(IngestedFile).where(
                    IngestedFile.sha256 == sha, IngestedFile.status == FileStatus.ARCHIVED
                )
            ).first()

    def known_sample(self, text: str) -> str | None:
        """The recorded sample id ``text`` names, or None."""
        with Session(self.engine) as session:
            return session.exec(
                select(Experiment.sample_id).where(
                    Experiment.sample_id == normalise_sample_id(text)
                )
            ).first()

    def archive(
        self,
        row: IngestedFile,
        tests: list[CellTest],
        folder: Path,
        check_new_sample: Callable[[str, CellTest], None],
    ) -> tuple[IngestedFile, tuple[int, ...]]:
        """Store the tests' results and mark the row archived, in one transaction.

        A sample in no recipe file becomes a manual experiment once ``check_new_sample``
        passes it (it raises otherwise, and nothing is stored). Returns the row and the
        batches the results belong to; raises AlreadyArchived when the same content won
        the race.
        """
        with Session(self.engine, expire_on_commit=False) as session:
            experiments = [_experiment_for(session, test, check_new_sample) for test in tests]
            row = session.get(IngestedFile, row.id)
            for test, experiment in zip(tests, experiments, strict=True):
                session.add(_result_row(test, experiment, row.sha256))
            row.status = FileStatus.ARCHIVED
            row.stored_path = str(destination(folder, row))
            row.cycler_format = tests[0].cycler_format
            row.results = len(tests)
            row.finished_at = utcnow()
            row.lease_until = None
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                first = self.archived_copy(row.sha256)
                raise AlreadyArchived(
                    duplicate_reason(first) if first else f"{DUPLICATE} content"
                ) from None
            batch_ids = tuple(sorted({e.batch_id for e in experiments if e.batch_id is not None}))
        return row, batch_ids

    def quarantine(
        self, row: IngestedFile, reason: str, cycler_format: str | None, folder: Path
    ) -> IngestedFile:
        """Mark the row quarantined with its reason and destination."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(IngestedFile, row.id)
            row.status = FileStatus.QUARANTINED
            row.error = reason
            row.cycler_format = cycler_format
            row.stored_path = str(destination(folder, row))
            row.finished_at = utcnow()
            row.lease_until = None
            session.commit()
        return row

    def forget(self, row: IngestedFile) -> None:
        """Delete a row that stands for nothing dropped (and a note written for it)."""
        if row.stored_path:
            error_note(Path(row.stored_path)).unlink(missing_ok=True)
        with Session(self.engine) as session:
            session.delete(session.get(IngestedFile, row.id))
            session.commit()

    def latest(self, name: str) -> IngestedFile | None:
        """The newest row of a drop of this name."""
        with Session(self.engine) as session:
            return session.exec(
                select(IngestedFile)
                .where(IngestedFile.original_name == name)
                .order_by(IngestedFile.id.desc())
            ).first()


def _processing_row(session: Session, name: str, sha: str) -> IngestedFile | None:
    return session.exec(
        select(IngestedFile).where(
            IngestedFile.original_name == name,
            IngestedFile.sha256 == sha,
            IngestedFile.status == FileStatus.PROCESSING,
        )
    ).first()


def _experiment_for(
    session: Session, test: CellTest, check_new_sample: Callable[[str, CellTest], None]
) -> Experiment:
    sample_id = normalise_sample_id(test.sample_id)
    experiment = session.exec(select(Experiment).where(Experiment.sample_id == sample_id)).first()
    if experiment is not None:
        return experiment
    check_new_sample(sample_id, test)
    experiment = Experiment(
        sample_id=sample_id, origin=Origin.MANUAL, parameters=dict(test.parameters)
    )
    session.add(experiment)
    session.flush()
    return experiment


def _result_row(test: CellTest, experiment: Experiment, sha: str) -> Result:
    return Result(
        experiment_id=experiment.id,
        outcome=test.outcome,
        failure_class=test.failure_class,
        reason=test.reason,
        charge_mah_g=test.charge_mah_g,
        discharge_mah_g=test.discharge_mah_g,
        coulombic_efficiency=test.coulombic_efficiency,
        active_mass_mg=test.active_mass_mg,
        mass_source=test.mass_source,
        cycler_format=test.cycler_format,
        source_sha256=sha,
        source_row=test.source_row,
    )
