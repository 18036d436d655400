"""Run the services of one machine: Celery worker processes and the inbox watcher."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.config import Settings
from agent.inbox.watcher import InboxWatcher, Submit
from agent.ops.heartbeat import WATCHER, Beater
from workers.queues import INGEST_QUEUE, LEARNING_QUEUE

log = logging.getLogger(__name__)


def worker_command(queues: Sequence[str], concurrency: int, name: str) -> list[str]:
    """The command line of a Celery worker consuming ``queues``.

    A learning-only worker runs its one task at a time in the worker process itself
    (``solo`` pool): model fitting can then use both cores, which a pool child cannot.
    Any other worker runs ``concurrency`` tasks in threads of the worker process. Not
    prefork: on the embedded broker Celery feeds prefork children through one shared pipe
    whose lock an idle child holds while it waits, so a child killed there (kill -9, out of
    memory) leaves the lock taken and no task runs again while the worker looks alive.
    Threads ingest at least as fast as prefork children did (BENCHMARKS.md), and what can
    die is then the worker process, which `Workers` starts again.
    """
    pool = (
        ["--pool", "solo"]
        if list(queues) == [LEARNING_QUEUE]
        else ["--pool", "threads", "--concurrency", str(concurrency)]
    )
    return [
        sys.executable, "-m", "celery", "-A", "workers.app:app", "worker",
        "--queues", ",".join(queues), *pool,
        "--hostname", f"{name}@%h",
        "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def start_worker(
    queues: Sequence[str], concurrency: int, name: str, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a worker process; its output goes to ``log_file`` if given, else to ours."""
    log.info("starting worker %s on queues %s", name, ",".join(queues))
    output = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        output = log_file.open("ab")
    # the worker reads the same LABLOOP_* settings from the inherited environment
    return subprocess.Popen(
        worker_command(queues, concurrency, name),
        env=os.environ.copy(),
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """Warm shutdown (SIGTERM lets a task finish), then kill what is left."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class WorkerSpec:
    queues: tuple[str, ...]
    concurrency: int
    name: str
    log_file: Path | None = None


def machine_workers(ingest_concurrency: int, logs: Path | None = None) -> list[WorkerSpec]:
    """One machine's workers: an ingest worker and a learning worker (logs: their folder,
    else they log to ours)."""
    return [
        WorkerSpec((INGEST_QUEUE,), ingest_concurrency, INGEST_QUEUE,
                   logs / "ingest-worker.log" if logs else None),
        WorkerSpec((LEARNING_QUEUE,), 1, LEARNING_QUEUE,
                   logs / "learning-worker.log" if logs else None),
    ]  # fmt: skip


class Workers:
    """Worker processes kept alive: one that dies (killed, out of memory) is started again.

    Its unfinished work is not lost. The watcher hands a file still in the inbox on again
    every ``resubmit_after_seconds`` and the dead worker's hold on its file runs out within
    ``ingest_lease_seconds``, so an ingest is taken over within about a minute; a learning
    worker re-queues unfinished batches when it starts. (Redis also delivers the dead
    worker's unacknowledged tasks again, but only after its long visibility timeout; the
    embedded broker forgets a message once a worker has taken it.) The database tells the
    next attempt what was already done.
    """

    def __init__(self, specs: Sequence[WorkerSpec]) -> None:
        self.specs = list(specs)
        self.processes = [self._start(spec) for spec in self.specs]

    @staticmethod
    def _start(spec: WorkerSpec) -> subprocess.Popen[bytes]:
        return start_worker(spec.queues, spec.concurrency, spec.name, spec.log_file)

    def keep_alive(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                spec = self.specs[index]
                log.warning("worker %s exited (%s): starting it again", spec.name,
                            process.returncode)  # fmt: skip
                self.processes[index] = self._start(spec)

    def stop(self) -> None:
        stop_processes(self.processes)


@contextmanager
def watching(settings: Settings, submit: Submit) -> Iterator[InboxWatcher]:
    """The inbox watcher, running and beating for the watcher service while the block runs."""
    with (
        make_watcher(settings, submit) as watcher,
        heartbeat(settings, WATCHER, alive=watcher.alive),
    ):
        yield watcher


def make_watcher(settings: Settings, submit: Submit) -> InboxWatcher:
    return InboxWatcher(
        settings.inbox,
        submit,
        settle_seconds=settings.settle_seconds,
        polling=settings.polling,
        poll_interval=settings.poll_interval_seconds,
        resubmit_after=settings.resubmit_after_seconds,
        masses_file=settings.masses_file,
    )


@contextmanager
def heartbeat(
    settings: Settings, service: str, alive: Callable[[], bool] | None = None
) -> Iterator[Beater]:
    """Beat for ``service`` from this process while the block runs (and ``alive()`` holds)."""
    beater = Beater(settings.database_url, service, settings.heartbeat_seconds, alive=alive)
    beater.start()
    try:
        yield beater
    finally:
        beater.stop()


def wait_for_signal(
    stop: threading.Event | None = None, every_second: Callable[[], None] | None = None
) -> None:
    """Block until Ctrl-C / SIGTERM (or ``stop`` is set), calling ``every_second``."""
    stop = stop or threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if every_second is not None:
                every_second()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
