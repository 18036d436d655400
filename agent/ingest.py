"""One dropped file -> one stored record: hash, dedupe, read, match, store, archive or quarantine.

The database is the source of truth, so every step can be repeated after a crash:

* every drop gets one ``IngestedFile`` row; the same drop retried finds its row again
  (unique name + hash while processing) and a lease, renewed while its worker lives
  (`agent.lease`), stops two workers working on it at once;
* results are unique by (file hash, row), and content is archived at most once
  (unique hash among archived rows): the same bytes dropped again are quarantined as a duplicate;
* the row is committed with its destination *before* the file is moved, so a crash between
  the two is finished by the next attempt instead of producing a second row.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from agent.config import Settings
from agent.cycler import FirstCycle, ReadError, read_export
from agent.cycler.base import MassSource
from agent.cycler.classify import CellTest, Protocol, classify_cycle, from_sheet_row, needs_mass
from agent.db import Experiment, FileStatus, IngestedFile, Origin, Result, get_engine, utcnow
from agent.errors import LabloopError
from agent.files import readable_name, sha256_of, write_atomic
from agent.lease import LeaseKeeper
from agent.masses import MassBook, read_masses
from agent.sample_ids import find_sample_id, normalise_sample_id
from agent.space import DesignSpace

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


@dataclass(frozen=True)
class IngestReport:
    name: str
    # archived | quarantined | in-progress | missing | changed | unfinished | refused
    status: str
    file_id: int | None = None
    stored_path: Path | None = None
    reason: str | None = None
    sample_ids: tuple[str, ...] = ()
    batch_ids: tuple[int, ...] = field(default=())


def _fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class Ingestor:
    """Ingests files for one installation (its folders, database and protocol)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or get_engine(settings.database_url)
        self.protocol = Protocol.from_settings(settings)
        self.space = DesignSpace.load(settings.design_space)

    # -- entry point -------------------------------------------------------------------------

    def ingest(self, path: Path | str) -> IngestReport:
        """Record one file of the inbox (``path`` relative to it, or absolute inside it).

        The file moves to archive/ or quarantine/. Nothing outside the inbox is touched:
        a path that leads out of it (``..``, a linked folder) is refused as it stands.
        """
        inbox = self.settings.inbox
        path = Path(os.path.normpath(inbox / path))  # '..' collapsed before any check
        if not _is_inside(path, inbox):
            log.warning("refused %s: not in the inbox", path)
            return IngestReport(name=str(path), status="refused", reason="not in the inbox")
        name = readable_name(path.relative_to(inbox).as_posix())
        if path.is_symlink():
            return self._quarantine_now(path, name, "symbolic link: refused, never followed")
        if not _is_inside(path.resolve(), inbox.resolve()):
            log.warning("refused %s: it lies in a linked folder outside the inbox", name)
            return IngestReport(name=name, status="refused", reason="linked folder")
        if path.is_file() and path.stat().st_nlink > 1:
            return self._quarantine_now(
                path, name, "hard link: refused (its content can change through its other "
                "name); copy the file into the inbox instead",
            )  # fmt: skip
        return self._record(path, name, move=True)

    def backfill(self, path: Path | str) -> IngestReport:
        """Record a file from outside the inbox (old results): it is copied to archive/ or
        quarantine/ and left where it is."""
        path = Path(path).resolve()
        return self._record(path, readable_name(path.name), move=False)

    def _record(self, path: Path, name: str, move: bool) -> IngestReport:
        if not path.is_file():
            return self._report_gone(name)
        before = _fingerprint(path)
        sha = sha256_of(path)
        unfinished = self._unfinished(name, sha)
        if unfinished is not None:
            self._place(path, unfinished, move=move)
            return self._report(unfinished)
        row = self._open_row(name, sha, before[0])
        if row is None:
            return IngestReport(name=name, status="in-progress")
        with LeaseKeeper(self.engine, row.id, self.settings.ingest_lease_seconds):
            return self._judge(path, row, before, move)

    def _judge(
        self, path: Path, row: IngestedFile, before: tuple[int, int], move: bool
    ) -> IngestReport:
        """Read, judge and store a file whose row we hold; archive or quarantine it."""
        name, sha = row.original_name, row.sha256
        try:
            tests = self._read(path, name, sha)
        except Rejected as rejected:
            if rejected.cut_short and self._young(path):
                return self._not_yet(row, f"{rejected} (tried again: the file is new)")
            return self._finish_quarantined(path, row, str(rejected), rejected.cycler_format, move)
        if _fingerprint(path) != before or sha256_of(path) != sha:
            # replaced while we read it: the bytes we hashed are gone, so is their row;
            # the watcher sees the change and hands the new content on
            self._forget(row)
            return IngestReport(name=name, status="changed", reason="file changed while read")
        if any(test.cut_short for test in tests) and self._young(path):
            return self._not_yet(row, "the file stops inside its first cycle and is new")
        return self._store(path, row, tests, move)

    def _young(self, path: Path) -> bool:
        """Written to so recently that its writer may still be at work."""
        age = time.time() - path.stat().st_mtime
        return age < self.settings.cut_short_grace

    def _not_yet(self, row: IngestedFile, reason: str) -> IngestReport:
        """Leave a file that looks cut off where it is, with no row, to be tried again."""
        self._forget(row)
        log.info("not judged yet: %s: %s", row.original_name, reason)
        return IngestReport(name=row.original_name, status="unfinished", reason=reason)

    # -- reading -----------------------------------------------------------------------------

    def _read(self, path: Path, name: str, sha: str) -> list[CellTest]:
        """Read and judge the file, or raise Rejected with the reason."""
        with Session(self.engine) as session:
            duplicate = session.exec(
                select(IngestedFile).where(
                    IngestedFile.sha256 == sha, IngestedFile.status == FileStatus.ARCHIVED
                )
            ).first()
        if duplicate is not None:
            raise Rejected(_duplicate_reason(duplicate))
        try:
            export = read_export(path)
        except ReadError as error:
            raise Rejected(str(error), cut_short=_ends_mid_line(path)) from None
        except Exception as error:  # a reader bug must not lose the file
            log.exception("reader crashed on %s", name)
            raise Rejected(f"reader failed unexpectedly: {type(error).__name__}: {error}") from None
        if isinstance(export, FirstCycle):
            return [self._judge_export(export, path)]
        return [from_sheet_row(row, "result-sheet") for row in export]

    def _judge_export(self, cycle: FirstCycle, path: Path) -> CellTest:
        sample_id = find_sample_id(path.name) or find_sample_id(cycle.test_name)
        if sample_id is None:
            sample_id = self._known_sample(path.stem) or self._known_sample(cycle.test_name)
        if sample_id is None:
            raise Rejected(
                f"no sample id in the file name {path.name!r} or the test name "
                f"{cycle.test_name!r}: name the file like B003-S07.csv",
                cycle.format_name,
            )
        try:
            book = MassBook(
                read_masses(self.settings.inbox / self.settings.masses_file),
                self.settings.default_active_mass_mg,
            )
        except ReadError as error:
            raise Rejected(str(error), cycle.format_name) from None
        mass, source = book.resolve(cycle, sample_id)
        if mass is None and needs_mass(cycle):
            raise Rejected(
                f"no active mass for {sample_id}: add it to {self.settings.masses_file} in the "
                "inbox (sample_id,active_mass_mg) or set LABLOOP_DEFAULT_ACTIVE_MASS_MG, "
                "then drop the file again",
                cycle.format_name,
            )
        return classify_cycle(cycle, sample_id, mass, source, self.protocol)

    def _known_sample(self, text: str | None) -> str | None:
        if not text:
            return None
        with Session(self.engine) as session:
            found = session.exec(
                select(Experiment.sample_id).where(
                    Experiment.sample_id == normalise_sample_id(text)
                )
            ).first()
        return found

    # -- rows --------------------------------------------------------------------------------

    def _unfinished(self, name: str, sha: str) -> IngestedFile | None:
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

    def _open_row(self, name: str, sha: str, size: int) -> IngestedFile | None:
        """This drop's processing row, claimed for us; None when another worker holds it."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = self._processing_row(session, name, sha)
            if row is None:
                session.add(IngestedFile(sha256=sha, original_name=name, size_bytes=size))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                row = self._processing_row(session, name, sha)
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
                .values(lease_until=now + timedelta(seconds=self.settings.ingest_lease_seconds))
            )
            session.commit()
            return row if claimed.rowcount == 1 else None

    @staticmethod
    def _processing_row(session: Session, name: str, sha: str) -> IngestedFile | None:
        return session.exec(
            select(IngestedFile).where(
                IngestedFile.original_name == name,
                IngestedFile.sha256 == sha,
                IngestedFile.status == FileStatus.PROCESSING,
            )
        ).first()

    def _destination(self, folder: Path, row: IngestedFile) -> Path:
        safe = row.original_name.replace("/", "__")
        return folder / f"{row.id:06d}_{safe}"

    def _store(
        self, path: Path, row: IngestedFile, tests: list[CellTest], move: bool
    ) -> IngestReport:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                experiments = [self._experiment_for(session, test) for test in tests]
            except Rejected as rejected:
                session.rollback()
                return self._finish_quarantined(
                    path, row, str(rejected), tests[0].cycler_format, move
                )
            row = session.get(IngestedFile, row.id)
            for test, experiment in zip(tests, experiments, strict=True):
                session.add(_result_row(test, experiment, row.sha256))
            row.status = FileStatus.ARCHIVED
            row.stored_path = str(self._destination(self.settings.archive, row))
            row.cycler_format = tests[0].cycler_format
            row.results = len(tests)
            row.finished_at = utcnow()
            row.lease_until = None
            try:
                session.commit()
            except IntegrityError:
                # the same content was archived by another worker a moment ago
                session.rollback()
                with Session(self.engine) as fresh:
                    first = fresh.exec(
                        select(IngestedFile).where(
                            IngestedFile.sha256 == row.sha256,
                            IngestedFile.status == FileStatus.ARCHIVED,
                        )
                    ).first()
                reason = _duplicate_reason(first) if first else f"{DUPLICATE} content"
                return self._finish_quarantined(path, row, reason, tests[0].cycler_format, move)
            batch_ids = tuple(sorted({e.batch_id for e in experiments if e.batch_id is not None}))
        self._place(path, row, move=move)
        for test in tests:
            log.info(
                "ingested %s sample=%s outcome=%s discharge=%s reason=%s",
                row.original_name,
                test.sample_id,
                test.outcome,
                None if test.discharge_mah_g is None else round(test.discharge_mah_g, 2),
                test.reason,
            )
        return self._report(row, tuple(t.sample_id for t in tests), batch_ids)

    def _experiment_for(self, session: Session, test: CellTest) -> Experiment:
        sample_id = normalise_sample_id(test.sample_id)
        experiment = session.exec(
            select(Experiment).where(Experiment.sample_id == sample_id)
        ).first()
        if experiment is not None:
            return experiment
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
        experiment = Experiment(
            sample_id=sample_id, origin=Origin.MANUAL, parameters=dict(test.parameters)
        )
        session.add(experiment)
        session.flush()
        return experiment

    def _finish_quarantined(
        self, path: Path, row: IngestedFile, reason: str, cycler_format: str | None, move: bool
    ) -> IngestReport:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(IngestedFile, row.id)
            row.status = FileStatus.QUARANTINED
            row.error = reason
            row.cycler_format = cycler_format
            row.stored_path = str(self._destination(self.settings.quarantine, row))
            row.finished_at = utcnow()
            row.lease_until = None
            session.commit()
        try:
            self._place(path, row, move=move)
        except FileNotFoundError:
            # another worker recorded and moved this very file while we read it: our row
            # stands for nothing that was dropped, so it goes (the drop keeps its own row)
            self._forget(row)
            return self._report_gone(row.original_name)
        log.warning("quarantined %s: %s", row.original_name, reason)
        return self._report(row)

    def _forget(self, row: IngestedFile) -> None:
        if row.stored_path:
            Path(row.stored_path + ".error.txt").unlink(missing_ok=True)
        with Session(self.engine) as session:
            session.delete(session.get(IngestedFile, row.id))
            session.commit()

    def _quarantine_now(self, path: Path, name: str, reason: str) -> IngestReport:
        """Quarantine without reading (links, paths outside the inbox)."""
        # the content is never read: the row is keyed by what the entry points at instead
        target = os.readlink(path) if path.is_symlink() else str(path.resolve())
        with Session(self.engine, expire_on_commit=False) as session:
            row = IngestedFile(
                sha256=hashlib.sha256(os.fsencode(target)).hexdigest(),
                original_name=name,
                size_bytes=0,
            )
            session.add(row)
            session.commit()
        return self._finish_quarantined(path, row, reason, None, move=True)

    # -- files -------------------------------------------------------------------------------

    def _place(self, path: Path, row: IngestedFile, move: bool) -> None:
        """Put the file where its committed row says, with the reason beside a quarantined one."""
        destination = Path(row.stored_path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if row.status == FileStatus.QUARANTINED:
            write_atomic(
                destination.with_name(destination.name + ".error.txt"), _error_text(row).encode()
            )
        if destination.exists() or destination.is_symlink():
            return
        if not move:
            shutil.copy2(path, destination)
        elif path.is_symlink():
            # keep the link itself as evidence; never copy what it points to
            os.rename(path, destination)
        else:
            shutil.move(path, destination)

    def _report_gone(self, name: str) -> IngestReport:
        """The file is not there: done by an earlier attempt, or taken away before we came."""
        with Session(self.engine) as session:
            row = session.exec(
                select(IngestedFile)
                .where(IngestedFile.original_name == name)
                .order_by(IngestedFile.id.desc())
            ).first()
        if row is not None and row.status != FileStatus.PROCESSING:
            return self._report(row)
        return IngestReport(name=name, status="missing", reason="file is no longer in the inbox")

    @staticmethod
    def _report(
        row: IngestedFile, sample_ids: tuple[str, ...] = (), batch_ids: tuple[int, ...] = ()
    ) -> IngestReport:
        return IngestReport(
            name=row.original_name,
            status=row.status,
            file_id=row.id,
            stored_path=Path(row.stored_path) if row.stored_path else None,
            reason=row.error,
            sample_ids=sample_ids,
            batch_ids=batch_ids,
        )


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


# how every duplicate's reason starts: its note then says there is nothing to fix
DUPLICATE = "duplicate"


def _duplicate_reason(first: IngestedFile) -> str:
    when = first.finished_at.strftime("%Y-%m-%d %H:%M") if first.finished_at else "earlier"
    return (
        f"{DUPLICATE}: the same bytes were recorded from {first.original_name!r} "
        f"(file #{first.id}, {when}); nothing new to store"
    )


def _error_text(row: IngestedFile) -> str:
    what_now = (
        "nothing to do: its content is recorded already; this copy may be deleted."
        if (row.error or "").startswith(DUPLICATE)
        else "fix the cause, then drop the corrected file into the inbox again."
    )
    return (
        f"file:     {row.original_name}\n"
        f"reason:   {row.error}\n"
        f"sha256:   {row.sha256}\n"
        f"record:   ingested file #{row.id}, {row.finished_at:%Y-%m-%d %H:%M:%S} UTC\n"
        f"what now: {what_now}\n"
    )


def _ends_mid_line(path: Path) -> bool:
    """Empty, or its last byte is not a line end: how a text file cut off looks."""
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) not in (b"\n", b"\r")


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True
