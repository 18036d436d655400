"""Notice finished files in the inbox and hand their names to an injected ``submit``.

The watcher never parses. A file is handed on once its size and mtime have stayed
the same for ``settle_seconds`` (a close-write event alone is not enough: some
writers open, append and close many times). Events only wake the check; a scan
at start-up and a periodic rescan catch files dropped while the watcher was down
or whose events were lost (network shares: use polling). A submit that fails
(broker down) is retried on the next tick: the path stays in memory and, since
the file stays in the inbox until a worker moves it, a restarted watcher finds
it again. A file still in the inbox ``resubmit_after`` seconds after it was
handed on is handed on again (ingest is idempotent).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = frozenset({".part", ".partial", ".tmp", ".temp", ".crdownload", ".swp", ".lock"})
Submit = Callable[[str], None]


def is_candidate(relative: Path, masses_file: str = "masses.csv") -> bool:
    """Whether a path (relative to the inbox) is a finished data file to hand on."""
    if any(part.startswith(".") for part in relative.parts):
        return False
    name = relative.name
    if name.startswith("~") or name == masses_file:
        return False
    return relative.suffix.lower() not in IGNORED_SUFFIXES


@dataclass
class _Pending:
    fingerprint: tuple[int, int]
    changed_at: float
    retry_at: float = 0.0


class InboxWatcher:
    def __init__(
        self,
        inbox: Path,
        submit: Submit,
        *,
        settle_seconds: float = 1.0,
        polling: bool = False,
        poll_interval: float = 1.0,
        resubmit_after: float = 300.0,
        rescan_interval: float = 30.0,
        masses_file: str = "masses.csv",
        tick: float = 0.1,
    ) -> None:
        self.inbox = inbox.resolve()
        self.submit = submit
        self.settle_seconds = settle_seconds
        self.resubmit_after = resubmit_after
        self.rescan_interval = rescan_interval
        self.masses_file = masses_file
        self.tick = tick
        self._pending: dict[str, _Pending] = {}
        # name -> (fingerprint, time handed on)
        self._submitted: dict[str, tuple[tuple[int, int], float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = PollingObserver(timeout=poll_interval) if polling else Observer()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        handler = _Handler(self)
        self._observer.schedule(handler, str(self.inbox), recursive=True)
        self._observer.start()
        self.scan()
        self._thread = threading.Thread(target=self._loop, name="inbox-settle", daemon=True)
        self._thread.start()
        log.info("watching %s", self.inbox)

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> InboxWatcher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- noticing ----------------------------------------------------------------------------

    def note(self, path: Path) -> None:
        """A path changed (or may have): check it until it settles."""
        # abspath, not resolve: a symlink must be handed on as itself (ingest refuses it)
        try:
            relative = Path(os.path.abspath(path)).relative_to(self.inbox)
        except ValueError:
            return
        if not is_candidate(relative, self.masses_file):
            return
        fingerprint = _fingerprint(path)
        if fingerprint is None:
            return
        name = relative.as_posix()
        with self._lock:
            entry = self._pending.get(name)
            if entry is None:
                self._pending[name] = _Pending(fingerprint, time.monotonic())
            elif entry.fingerprint != fingerprint:
                entry.fingerprint, entry.changed_at = fingerprint, time.monotonic()

    def scan(self) -> int:
        """Queue every candidate already in the inbox; returns how many were found."""
        found = 0
        for path in sorted(self.inbox.rglob("*")):
            if path.is_file() or path.is_symlink():
                found += 1
                self.note(self.inbox / path.relative_to(self.inbox))
        return found

    # -- handing on --------------------------------------------------------------------------

    def _loop(self) -> None:
        next_rescan = time.monotonic() + self.rescan_interval
        while not self._stop.wait(self.tick):
            self.settle_once()
            if time.monotonic() >= next_rescan:
                self.scan()
                next_rescan = time.monotonic() + self.rescan_interval

    def settle_once(self) -> None:
        """Hand on every pending file that has stopped changing."""
        now = time.monotonic()
        with self._lock:
            names = list(self._pending)
        for name in names:
            with self._lock:
                entry = self._pending.get(name)
            if entry is None or entry.retry_at > now:
                continue
            path = self.inbox / name
            fingerprint = _fingerprint(path)
            if fingerprint is None:  # moved away, by a worker or by staff
                with self._lock:
                    self._pending.pop(name, None)
                    self._submitted.pop(name, None)
                continue
            if fingerprint != entry.fingerprint:
                entry.fingerprint, entry.changed_at = fingerprint, now
                continue
            if now - entry.changed_at < self.settle_seconds:
                continue
            handed = self._submitted.get(name)
            if handed and handed[0] == fingerprint and now - handed[1] < self.resubmit_after:
                with self._lock:
                    self._pending.pop(name, None)
                continue
            try:
                self.submit(name)
            except Exception as error:  # broker down: keep the path, try again shortly
                log.warning("could not hand on %s (%s); will retry", name, error)
                entry.retry_at = now + 2.0
                continue
            log.info("handed on %s", name)
            with self._lock:
                self._submitted[name] = (fingerprint, now)
                self._pending.pop(name, None)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: InboxWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        target = getattr(event, "dest_path", "") or event.src_path
        self.watcher.note(Path(_text(target)))


def _text(path: str | bytes) -> str:
    return path.decode() if isinstance(path, bytes) else path


def _fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.lstat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns
