"""A worker's hold on a dropped file, renewed while the worker is alive.

The hold (``IngestedFile.lease_until``) is short, so that a worker that dies (kill -9, out
of memory, power cut) lets go of its file soon and the file's next hand-on takes it over.
A live worker renews it every third of its length, so a file that takes long to read is
never taken from a worker still at it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from agent.store.db import FileStatus, IngestedFile, utcnow

log = logging.getLogger(__name__)


class LeaseKeeper:
    """While in its ``with`` block, keeps renewing the lease on one processing row."""

    def __init__(self, engine: Engine, file_id: int, lease_seconds: float) -> None:
        self.engine = engine
        self.file_id = file_id
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, daemon=True,
                                        name=f"lease-{file_id}")  # fmt: skip

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def renew(self) -> bool:
        """Extend the lease from now; False once the row is finished or gone."""
        until = utcnow() + timedelta(seconds=self.lease_seconds)
        with Session(self.engine) as session:
            renewed = session.exec(
                update(IngestedFile)
                .where(
                    IngestedFile.id == self.file_id,
                    IngestedFile.status == FileStatus.PROCESSING,
                )
                .values(lease_until=until)
            )
            session.commit()
        return renewed.rowcount == 1

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not self.renew():
                    return
            except OperationalError as error:  # a locked SQLite file, the database away
                log.warning("could not renew the lease on file #%d (%s); again shortly",
                            self.file_id, error.orig or error)  # fmt: skip
