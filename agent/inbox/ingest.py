"""One dropped file -> one stored record: guard, claim, judge, store, then archive or quarantine.

The steps, each in a module of its own:

* the guard (`agent.inbox.guard`) decides whether a path may be read at all;
* the ledger (`agent.inbox.ledger`) holds each drop's row: claimed under a lease renewed
  while its worker lives (`agent.inbox.lease`), finished, or forgotten;
* the judge (`agent.inbox.judge`) reads the file and classifies its first cycle, or rejects
  it with the reason;
* placing (`agent.inbox.place`) moves the file to archive/ or quarantine/.

The row is committed with its destination *before* the file is moved, so a crash between
the two is finished by the next attempt instead of producing a second row.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from agent.config import Settings
from agent.inbox.classify import CellTest
from agent.inbox.guard import Admitted, Refused, admit
from agent.inbox.judge import Judge, Rejected
from agent.inbox.lease import LeaseKeeper
from agent.inbox.ledger import AlreadyArchived, Ledger
from agent.inbox.place import duplicate_reason, place_file
from agent.space.design import DesignSpace
from agent.store.db import FileStatus, IngestedFile, get_engine
from agent.store.files import readable_name, sha256_of

log = logging.getLogger(__name__)


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
        self.ledger = Ledger(self.engine, settings.ingest_lease_seconds)
        self.judge = Judge(
            settings.protocol(),
            DesignSpace.load(settings.design_space),
            masses_path=settings.inbox / settings.masses_file,
            default_mass_mg=settings.default_active_mass_mg,
            known_sample=self.ledger.known_sample,
        )

    def ingest(self, path: Path | str) -> IngestReport:
        """Record one file of the inbox (``path`` relative to it, or absolute inside it).

        The file moves to archive/ or quarantine/; a path the guard refuses stays where it is.
        """
        drop = admit(self.settings.inbox, path)
        if isinstance(drop, Refused):
            log.warning("refused %s: %s", drop.name, drop.reason)
            return IngestReport(name=drop.name, status="refused", reason=drop.reason)
        if isinstance(drop, Admitted):
            return self._record(drop.path, drop.name, move=True)
        row = self.ledger.claim_unread(drop.name, drop.path)
        return self._quarantine(drop.path, row, drop.reason, None, move=True)

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
        unfinished = self.ledger.unfinished(name, sha)
        if unfinished is not None:
            place_file(path, unfinished, move=move)
            return _report(unfinished)
        row = self.ledger.claim(name, sha, before[0])
        if row is None:
            return IngestReport(name=name, status="in-progress")
        with LeaseKeeper(self.engine, row.id, self.settings.ingest_lease_seconds):
            return self._judge(path, row, before, move)

    def _judge(
        self, path: Path, row: IngestedFile, before: tuple[int, int], move: bool
    ) -> IngestReport:
        """Read, judge and store a file whose row we hold; archive or quarantine it."""
        name, sha = row.original_name, row.sha256
        if (first := self.ledger.archived_copy(sha)) is not None:
            return self._quarantine(path, row, duplicate_reason(first), None, move)
        try:
            tests = self.judge.read(path, name)
        except Rejected as rejected:
            if rejected.cut_short and self._young(path):
                return self._not_yet(row, f"{rejected} (tried again: the file is new)")
            return self._quarantine(path, row, str(rejected), rejected.cycler_format, move)
        if _fingerprint(path) != before or sha256_of(path) != sha:
            # replaced while we read it: the bytes we hashed are gone, so is their row;
            # the watcher sees the change and hands the new content on
            self.ledger.forget(row)
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
        self.ledger.forget(row)
        log.info("not judged yet: %s: %s", row.original_name, reason)
        return IngestReport(name=row.original_name, status="unfinished", reason=reason)

    def _store(
        self, path: Path, row: IngestedFile, tests: list[CellTest], move: bool
    ) -> IngestReport:
        cycler_format = tests[0].cycler_format
        try:
            row, batch_ids = self.ledger.archive(
                row, tests, self.settings.archive, self.judge.check_new_sample
            )
        except (Rejected, AlreadyArchived) as refused:
            return self._quarantine(path, row, str(refused), cycler_format, move)
        place_file(path, row, move=move)
        for test in tests:
            log.info(
                "ingested %s sample=%s outcome=%s discharge=%s reason=%s",
                row.original_name,
                test.sample_id,
                test.outcome,
                None if test.discharge_mah_g is None else round(test.discharge_mah_g, 2),
                test.reason,
            )
        return _report(row, tuple(t.sample_id for t in tests), batch_ids)

    def _quarantine(
        self, path: Path, row: IngestedFile, reason: str, cycler_format: str | None, move: bool
    ) -> IngestReport:
        row = self.ledger.quarantine(row, reason, cycler_format, self.settings.quarantine)
        try:
            place_file(path, row, move=move)
        except FileNotFoundError:
            # another worker recorded and moved this very file while we read it: our row
            # stands for nothing that was dropped, so it goes (the drop keeps its own row)
            self.ledger.forget(row)
            return self._report_gone(row.original_name)
        log.warning("quarantined %s: %s", row.original_name, reason)
        return _report(row)

    def _report_gone(self, name: str) -> IngestReport:
        """The file is not there: done by an earlier attempt, or taken away before we came."""
        row = self.ledger.latest(name)
        if row is not None and row.status != FileStatus.PROCESSING:
            return _report(row)
        return IngestReport(name=name, status="missing", reason="file is no longer in the inbox")


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
