"""Heartbeats: each service writes a row every few seconds; a row that stops moving means
a service that stopped (or hangs), whatever the broker can or cannot tell.

The beat comes from a thread of its own, so a worker busy for minutes with a retrain (which
cannot answer Celery's pings meanwhile) still beats, and says what it is busy with.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from agent.store.db import Heartbeat, as_utc, get_engine, utcnow

log = logging.getLogger(__name__)

WATCHER = "watcher"
# a service is stale once this many beats are missing
MISSED_BEATS = 3


Holding = dict[str, dict[str, int]]  # {queue: {"running": n, "retrying": m}}


def beat(
    engine: Engine, service: str, host: str, busy_with: str | None, holding: Holding | None = None
) -> None:
    """Write the beat of ``service`` on ``host`` (one row per service and host)."""
    values = {
        "pid": os.getpid(),
        "beat_at": utcnow(),
        "busy_with": busy_with,
        "holding": holding or {},
    }
    where = (Heartbeat.service == service, Heartbeat.host == host)
    with Session(engine) as session:
        if session.exec(update(Heartbeat).where(*where).values(**values)).rowcount:
            session.commit()
            return
        session.add(Heartbeat(service=service, host=host, **values))
        try:
            session.commit()
        except IntegrityError:  # the same service on the same host started twice at once
            session.rollback()
            session.exec(update(Heartbeat).where(*where).values(**values))
            session.commit()


class Beater:
    """A daemon thread beating every ``every`` seconds, and at once when the work changes.

    It connects in its own thread: a database down at start delays the beats, not the service.
    ``alive``, if given, is asked before each beat: a service whose own threads died stops
    beating although this thread still could.
    """

    def __init__(
        self,
        database_url: str,
        service: str,
        every: float,
        host: str | None = None,
        alive: Callable[[], bool] | None = None,
    ):
        self.database_url = database_url
        self.alive = alive
        self.service = service
        self.host = host or socket.gethostname()
        self.every = every
        self._doing: dict[str, tuple[str, str]] = {}  # task id -> (queue, what it does)
        self._retrying: dict[str, str] = {}  # task id -> queue, held until its retry time
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{service}", daemon=True)

    def start(self) -> Beater:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=5)

    def busy(self, key: str, doing: str, queue: str = "") -> None:
        with self._lock:
            self._retrying.pop(key, None)
            self._doing[key] = (queue, doing)
        self._wake.set()

    def retrying(self, key: str, queue: str) -> None:
        with self._lock:
            self._retrying[key] = queue
        self._wake.set()

    def done(self, key: str) -> None:
        with self._lock:
            self._doing.pop(key, None)
            self._retrying.pop(key, None)
        self._wake.set()

    def busy_with(self) -> str | None:
        with self._lock:
            return "; ".join(doing for _, doing in self._doing.values()) or None

    def holding(self) -> Holding:
        with self._lock:
            running = Counter(queue for queue, _ in self._doing.values())
            retrying = Counter(self._retrying.values())
        return {
            queue: {"running": running[queue], "retrying": retrying[queue]}
            for queue in running | retrying
        }

    def _run(self) -> None:
        while not self._stopping:
            if self.alive is not None and not self.alive():
                log.error("%s is not running any more: no heartbeat", self.service)
                return
            self._wake.clear()  # before the beat: a change meanwhile beats again at once
            try:
                beat(
                    get_engine(self.database_url),
                    self.service,
                    self.host,
                    self.busy_with(),
                    self.holding(),
                )
            except SQLAlchemyError as error:  # the database is down: beat again next time
                log.warning("heartbeat of %s not written: %s", self.service, error)
            self._wake.wait(self.every)


@dataclass(frozen=True)
class ServiceBeat:
    service: str
    host: str
    pid: int
    beat_at: datetime
    busy_with: str | None
    age_seconds: float
    fresh: bool
    holding: Holding = field(default_factory=dict)

    @property
    def label(self) -> str:
        """'watcher', 'learning worker'."""
        return self.service if self.service == WATCHER else f"{self.service} worker"

    @property
    def worker_name(self) -> str:
        """The Celery name of a worker's process ("learning@host")."""
        return f"{self.service}@{self.host}"

    def describe(self) -> str:
        """'learning worker: busy retraining batch 3, beat 6 s ago'."""
        state = f"busy {self.busy_with}, " if self.busy_with else ""
        stale = "" if self.fresh else " (stale: not running?)"
        return f"{self.label}: {state}beat {age_words(self.age_seconds)} ago{stale}"


def age_words(seconds: float) -> str:
    """'4 s', '3 min', '2 h', '5 d'."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{max(0, int(seconds))} s"


def service_beats(engine: Engine, every: float, now: datetime | None = None) -> list[ServiceBeat]:
    """Every service's last beat, by service then host; fresh if under MISSED_BEATS old."""
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        rows = session.exec(select(Heartbeat).order_by(Heartbeat.service, Heartbeat.host)).all()
    beats = []
    for row in rows:
        age = (now - as_utc(row.beat_at)).total_seconds()
        fresh = age <= MISSED_BEATS * every
        beats.append(
            ServiceBeat(
                row.service,
                row.host,
                row.pid,
                as_utc(row.beat_at),
                row.busy_with,
                age,
                fresh,
                row.holding or {},
            )
        )
    return beats
