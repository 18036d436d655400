"""What the broker and the workers are doing: tasks waiting, workers answering, tasks running.

Queue lengths are read straight from the broker (a few microseconds, every render).
Workers are asked by a Celery broadcast, which has to wait for answers: that runs in a
background thread and its answer is kept for a few seconds, so a page never waits for it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import redis
from celery import Celery
from kombu.transport.redis import PRIORITY_STEPS, Channel
from kombu.utils.url import maybe_sanitize_url

from agent.ops.heartbeat import ServiceBeat
from agent.ops.task_names import TASK_WORDS
from agent.store.db import as_utc

log = logging.getLogger(__name__)

# the queues, by what their tasks need: reading files is quick and parallel; learning
# (retrain, propose) is one long task at a time
INGEST_QUEUE = "ingest"
LEARNING_QUEUE = "learning"
ALL_QUEUES = (INGEST_QUEUE, LEARNING_QUEUE)


@dataclass(frozen=True)
class QueueLength:
    name: str
    tasks: int | None  # waiting for a worker; None: the broker did not answer
    # taken by a worker and not yet acknowledged: running, or about to
    running: int | None = None  # None: this broker cannot tell
    # taken by a worker that holds them until their retry time (ETA)
    retrying: int | None = None


@dataclass(frozen=True)
class QueueFacts:
    broker: str
    waiting: list[QueueLength]
    error: str | None = None


@dataclass(frozen=True)
class WorkerLine:
    name: str
    answering: bool
    last_heard: datetime
    running: int


@dataclass(frozen=True)
class RunningTask:
    worker: str
    task: str
    argument: str
    started_at: datetime | None


@dataclass(frozen=True)
class WorkerFacts:
    checked_at: datetime | None  # None: the first question is still out
    available: bool  # False: this broker could not carry the question
    note: str
    workers: list[WorkerLine]
    running: list[RunningTask]


class QueueCounter(Protocol):
    broker: str

    def count(self) -> QueueFacts: ...


class RedisQueues:
    """Lengths of the Redis lists Celery keeps its queues in."""

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.broker = broker_words(url)
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def count(self) -> QueueFacts:
        # kombu keeps a queue's prioritised messages in sibling lists: "ingest\x06\x163", ...
        names = {
            queue: [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]
            for queue in ALL_QUEUES
        }
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for lists in names.values():
                    for name in lists:
                        pipe.llen(name)
                pipe.hvals(Channel.unacked_key)
                *counts, unacked = pipe.execute()
        except redis.RedisError as error:
            log.warning("Redis did not answer: %s", error)
            return QueueFacts(self.broker, [QueueLength(q, None) for q in ALL_QUEUES], str(error))
        lengths = iter(counts)
        taken = _taken_by_workers(unacked, datetime.now(UTC))
        return QueueFacts(
            self.broker,
            [
                QueueLength(q, sum(next(lengths) for _ in lists), *taken.get(q, (0, 0)))
                for q, lists in names.items()
            ],
        )


def _taken_by_workers(unacked: list[bytes], now: datetime) -> dict[str, tuple[int, int]]:
    """{queue: (running, retrying)} from kombu's ``unacked`` hash, where a message a worker
    took stays until it is acknowledged; one whose ETA is still ahead waits for its retry."""
    running: Counter[str] = Counter()
    retrying: Counter[str] = Counter()
    for raw in unacked:
        try:
            message, _exchange, queue = json.loads(raw)
            eta = message.get("headers", {}).get("eta")
        except (ValueError, TypeError, AttributeError):  # not a kombu message: not ours
            continue
        later = eta is not None and as_utc(datetime.fromisoformat(eta)) > now
        (retrying if later else running)[queue] += 1
    return {queue: (running[queue], retrying[queue]) for queue in running | retrying}


class FolderQueues:
    """Message files of kombu's filesystem transport: ``<ms>_<uuid>.<queue>.msg``."""

    def __init__(self, folder: Path) -> None:
        self.broker = broker_words("filesystem://", folder.parent)
        self._folder = folder

    def count(self) -> QueueFacts:
        try:
            names = os.listdir(self._folder)
        except FileNotFoundError:  # no message was ever sent
            names = []
        # the same test kombu's own _size() applies to each file name
        per_queue = Counter(name.partition(".")[2] for name in names)
        return QueueFacts(self.broker, [QueueLength(q, per_queue[f"{q}.msg"]) for q in ALL_QUEUES])


def with_held_tasks(facts: QueueFacts, services: list[ServiceBeat]) -> QueueFacts:
    """Running and retrying tasks as the live workers' heartbeats count them, where the
    broker could not (the embedded broker forgets a task once a worker took it)."""
    held: dict[str, Counter[str]] = defaultdict(Counter)
    for service in services:
        if service.fresh:
            for queue, counts in service.holding.items():
                held[queue].update(counts)
    waiting = [
        q
        if q.running is not None
        else replace(q, running=held[q.name]["running"], retrying=held[q.name]["retrying"])
        for q in facts.waiting
    ]
    return replace(facts, waiting=waiting)


def broker_words(url: str, folder: Path | None = None) -> str:
    """The broker as a lab reads it: the embedded one is a folder (``folder``), not a URL;
    a password in a Redis URL is not shown."""
    if url.startswith("filesystem"):
        return f"embedded (a folder: {folder}, no server)"
    return f"Redis at {maybe_sanitize_url(url)}"


def queue_counter(celery: Celery) -> QueueCounter:
    """The counter for the broker ``celery`` is configured with."""
    url = celery.conf.broker_url
    if url.startswith("filesystem"):
        return FolderQueues(Path(celery.conf.broker_transport_options["data_folder_in"]))
    return RedisQueues(url)


class WorkerProbe:
    """Asks the workers who is alive and what each is running, in the background."""

    def __init__(
        self,
        control: Any,  # celery.app.control.Control, or a stand-in in tests
        broker: str,
        timeout: float = 0.5,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._control = control
        self._broker = broker
        self._timeout = timeout
        self._max_age = max_age
        self._clock = clock
        self._busy = threading.Lock()  # one question at a time
        self._asked_at: float | None = None
        self._last_heard: dict[str, datetime] = {}
        self._facts = WorkerFacts(None, True, "asking the workers…", [], [])

    def facts(self) -> WorkerFacts:
        """The latest answer, at once; if it is older than ``max_age``, ask again meanwhile."""
        stale = self._asked_at is None or self._clock() - self._asked_at > self._max_age
        if stale and self._busy.acquire(blocking=False):
            self._asked_at = self._clock()
            threading.Thread(
                target=self._ask_and_release, name="labloop-workers", daemon=True
            ).start()
        return self._facts

    def refresh(self) -> WorkerFacts:
        """Ask now and wait for the answer (at most about twice ``timeout``)."""
        with self._busy:
            self._asked_at = self._clock()
            return self._ask()

    def _ask_and_release(self) -> None:
        try:
            self._ask()
        finally:
            self._busy.release()

    def _ask(self) -> WorkerFacts:
        now = datetime.now(UTC)
        try:
            pongs = self._control.inspect(timeout=self._timeout).ping() or {}
            # only those who answered the ping: wait for their answers, not the whole timeout
            active = (
                self._control.inspect(timeout=self._timeout, limit=len(pongs)).active() or {}
                if pongs
                else {}
            )
        except Exception as error:  # a broker that cannot broadcast, or is down: show it
            log.warning("asking the workers failed: %s", error)
            self._facts = WorkerFacts(
                now, False, f"not available on the {self._broker}: {error}", self._lines({}, {}), []
            )
            return self._facts
        for name in pongs:
            self._last_heard[name] = now
        running = [_running(worker, task) for worker, tasks in active.items() for task in tasks]
        note = (
            f"{len(pongs)} worker(s) answering"
            if pongs
            else f"no worker answered within {self._timeout:g} s: is `labloop run` running?"
        )
        self._facts = WorkerFacts(now, True, note, self._lines(pongs, active), running)
        return self._facts

    def _lines(
        self, pongs: dict[str, Any], active: dict[str, list] | None = None
    ) -> list[WorkerLine]:
        active = active or {}
        return [
            WorkerLine(name, name in pongs, heard, len(active.get(name, [])))
            for name, heard in sorted(self._last_heard.items())
        ]


def _running(worker: str, task: dict[str, Any]) -> RunningTask:
    args = task.get("args") or []
    argument = ", ".join(map(str, args)) if isinstance(args, list | tuple) else str(args)
    started = task.get("time_start")
    return RunningTask(
        worker=worker,
        task=TASK_WORDS.get(task.get("name", ""), task.get("name", "?")),
        argument=argument,
        started_at=datetime.fromtimestamp(started, UTC) if started else None,
    )
