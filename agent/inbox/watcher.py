"""Notice finished files in the inbox and hand their names to an injected ``submit``.

The watcher never parses. When a file is finished depends on what the OS reports:

* **Close events (inotify, the default observer on Linux, local disks).** A file is
  finished when its writer has closed it: it is handed on ``quiet_seconds`` (0.2 s) after
  the last close-write, so a writer that opens, appends and closes in quick succession is
  handed on once, after it stops. It is never handed on while a write is open, whatever
  the pause: a write (IN_MODIFY) holds the file until the next close-write, and an empty
  file held open by anyone waits for its closing. A file that arrives whole (renamed or
  linked into the inbox) counts as closed when it appears.
* **No close seen: the settle rule.** In polling mode (network shares: inotify sees none
  of another machine's writes), with observers that report no closes (macOS, Windows),
  for files already there at start-up or found by the periodic rescan, and for empty
  files (one may be created, closed, then filled by a second open), a file is handed on
  once its size and mtime have stayed the same for ``settle_seconds`` (10 s: a network
  copy pauses for seconds between chunks; raise it for a share that stalls longer, the
  cost is only that much more latency).

Limits: one writer per file is assumed (the first of two concurrent writers to close ends
the hold); a write whose close-write never arrives (events lost to an inotify queue
overflow, truncate(2) by path) holds the file until the watcher restarts, when the
start-up scan applies the settle rule.

Events only wake the check; a scan at start-up and a periodic rescan catch files dropped
while the watcher was down or whose events were lost. A submit that fails (broker down)
is retried on the next tick: the path stays in memory and, since the file stays in the
inbox until a worker moves it, a restarted watcher finds it again. A file still in the
inbox ``resubmit_after`` seconds after it was handed on is handed on again, and again every
``resubmit_after`` seconds while it stays (ingest is idempotent). That is what brings back a
file whose task was lost (its worker killed, the embedded broker's message gone, the
database down past the task's retries), whatever the broker's own redelivery delay.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = frozenset({".part", ".partial", ".tmp", ".temp", ".crdownload", ".swp", ".lock"})
Submit = Callable[[str], None]
MOVE_PAIRING_SECONDS = 0.05
# a hand-on the broker refused is tried again this much later
SUBMIT_RETRY_SECONDS = 2.0


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
    # last close-write, or arrival by rename / link (close events only); None: settle rule
    closed_at: float | None = None
    retry_at: float = 0.0


@dataclass
class _Handles:
    """What the close events say about one path of the inbox (any file, not only candidates)."""

    opened: int = 0  # opens not yet closed
    writing: bool = False  # written since its last close-write


class InboxWatcher:
    def __init__(
        self,
        inbox: Path,
        submit: Submit,
        *,
        settle_seconds: float = 10.0,
        quiet_seconds: float = 0.2,
        polling: bool = False,
        poll_interval: float = 1.0,
        resubmit_after: float = 20.0,
        rescan_interval: float = 30.0,
        masses_file: str = "masses.csv",
        tick: float = 0.1,
    ) -> None:
        self.inbox = inbox.resolve()
        self.submit = submit
        self.settle_seconds = settle_seconds
        self.quiet_seconds = quiet_seconds
        self.resubmit_after = resubmit_after
        self.rescan_interval = rescan_interval
        self.masses_file = masses_file
        self.tick = tick
        self._pending: dict[str, _Pending] = {}
        self._handles: dict[str, _Handles] = {}
        # name -> (fingerprint handed on, when to hand it on again if it is still there)
        self._submitted: dict[str, tuple[tuple[int, int], float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = PollingObserver(timeout=poll_interval) if polling else Observer()
        self.close_events = _reports_closes(self._observer)
        if self.close_events:
            _pair_moves_promptly()
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
        rule = "close events" if self.close_events else f"settle {self.settle_seconds} s"
        log.info("watching %s (%s)", self.inbox, rule)

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def alive(self) -> bool:
        """Whether both its threads run: the OS events' observer and the settle loop."""
        return self._thread is not None and self._thread.is_alive() and self._observer.is_alive()

    def __enter__(self) -> InboxWatcher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- noticing ----------------------------------------------------------------------------

    def event(self, kind: str, path: Path, dest: Path | None = None) -> None:
        """A file event (watchdog's ``event_type``): track its writers, then check the file."""
        name = self._name(path)
        if kind == EVENT_TYPE_MOVED:
            target = self._name(dest) if dest is not None else None
            with self._lock:
                # a writer still holding the old name holds the new one
                handles = self._handles.pop(name, None) if name is not None else None
                if target is not None and handles is not None:
                    self._handles[target] = handles
            if target is not None:
                self.note(dest, closed=True)
            return
        if name is None:
            return
        if self.close_events:
            with self._lock:
                self._track(name, kind)
        if kind != EVENT_TYPE_DELETED:
            self.note(path, closed=kind in (EVENT_TYPE_CLOSED, EVENT_TYPE_CREATED))

    def _track(self, name: str, kind: str) -> None:
        handles = self._handles.setdefault(name, _Handles())
        if kind == EVENT_TYPE_OPENED:
            handles.opened += 1
        elif kind == EVENT_TYPE_MODIFIED:
            handles.writing = True
        elif kind in (EVENT_TYPE_CLOSED, EVENT_TYPE_CLOSED_NO_WRITE):
            # max: a file opened before the watcher started closes without a seen open
            handles.opened = max(0, handles.opened - 1)
            if kind == EVENT_TYPE_CLOSED:
                handles.writing = False
        if kind == EVENT_TYPE_DELETED or not (handles.opened or handles.writing):
            del self._handles[name]

    def note(self, path: Path, *, closed: bool = False) -> None:
        """A path changed (or may have): check it until it is complete.

        ``closed``: its writer has just closed it, or it arrived whole (rename, link);
        counted only where the observer reports closes.
        """
        name = self._name(path)
        if name is None or not is_candidate(Path(name), self.masses_file):
            return
        fingerprint = _fingerprint(path)
        if fingerprint is None:
            return
        now = time.monotonic()
        with self._lock:
            entry = self._pending.get(name)
            if entry is None:
                entry = self._pending[name] = _Pending(fingerprint, now)
            elif entry.fingerprint != fingerprint:
                entry.fingerprint, entry.changed_at, entry.closed_at = fingerprint, now, None
            if closed and self.close_events:
                entry.closed_at = now

    def scan(self) -> int:
        """Queue every candidate already in the inbox; returns how many were found."""
        found = 0
        for path in sorted(self.inbox.rglob("*")):
            if path.is_file() or path.is_symlink():
                found += 1
                self.note(self.inbox / path.relative_to(self.inbox))
        return found

    def _name(self, path: Path) -> str | None:
        """The inbox-relative name of a path, or None outside the inbox."""
        # abspath, not resolve: a symlink must be handed on as itself (ingest refuses it)
        try:
            return Path(os.path.abspath(path)).relative_to(self.inbox).as_posix()
        except ValueError:
            return None

    # -- handing on --------------------------------------------------------------------------

    def _loop(self) -> None:
        next_rescan = time.monotonic() + self.rescan_interval
        while not self._stop.wait(self.tick):
            self.settle_once()
            self.resubmit_due()
            if time.monotonic() >= next_rescan:
                self.scan()
                next_rescan = time.monotonic() + self.rescan_interval

    def settle_once(self) -> None:
        """Hand on every pending file that is complete."""
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
                # written since its last close: wait for the next one (its event may lag)
                with self._lock:
                    entry.fingerprint, entry.changed_at, entry.closed_at = fingerprint, now, None
                continue
            if not self._complete(name, entry, now):
                continue
            handed = self._submitted.get(name)
            if handed and handed[0] == fingerprint and now < handed[1]:
                # handed on already: resubmit_due hands it on again if it stays
                with self._lock:
                    self._pending.pop(name, None)
                continue
            try:
                self.submit(name)
            except Exception as error:  # broker down: keep the path, try again shortly
                log.warning("could not hand on %s (%s); will retry", name, error)
                entry.retry_at = now + SUBMIT_RETRY_SECONDS
                continue
            log.info("handed on %s", name)
            with self._lock:
                self._submitted[name] = (fingerprint, now + self.resubmit_after)
                self._pending.pop(name, None)

    def resubmit_due(self) -> None:
        """Hand on again every file still in the inbox ``resubmit_after`` seconds after it
        was last handed on, unchanged (a changed file goes through the settle rule again)."""
        now = time.monotonic()
        with self._lock:
            due = [(name, handed[0]) for name, handed in self._submitted.items()
                   if handed[1] <= now and name not in self._pending]  # fmt: skip
        for name, fingerprint in due:
            path = self.inbox / name
            current = _fingerprint(path)
            if current != fingerprint:  # recorded and moved away, or written to since
                with self._lock:
                    self._submitted.pop(name, None)
                if current is not None:
                    self.note(path)
                continue
            try:
                self.submit(name)
            except Exception as error:  # broker down: try again shortly
                log.warning("could not hand on %s again (%s); will retry", name, error)
                next_at = now + SUBMIT_RETRY_SECONDS
            else:
                log.info("handed on %s again: still in the inbox", name)
                next_at = now + self.resubmit_after
            with self._lock:
                self._submitted[name] = (fingerprint, next_at)

    def _complete(self, name: str, entry: _Pending, now: float) -> bool:
        empty = entry.fingerprint[0] == 0
        with self._lock:
            handles = self._handles.get(name)
            if handles is not None and (handles.writing or (handles.opened and empty)):
                return False  # a writer has it open
        if entry.closed_at is not None and not empty:
            return now - max(entry.closed_at, entry.changed_at) >= self.quiet_seconds
        return now - entry.changed_at >= self.settle_seconds

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
        path = Path(_text(event.src_path))
        if event.event_type == EVENT_TYPE_MOVED:
            self.watcher.event(EVENT_TYPE_MOVED, path, Path(_text(event.dest_path)))
        else:
            self.watcher.event(event.event_type, path)


def _reports_closes(observer: BaseObserver) -> bool:
    """Whether the observer reports close-write events (inotify; polling and others do not)."""
    try:  # the inotify module exists only where inotify does
        from watchdog.observers.inotify import InotifyObserver
    except (ImportError, OSError):
        return False
    return isinstance(observer, InotifyObserver)


def _pair_moves_promptly() -> None:
    """Shorten how long watchdog holds inotify events back to pair a move-out with a move-in.

    Every event queues behind an unpaired move-out for that long (0.5 s), and workers move
    each ingested file out of the inbox, so close events would reach the watcher up to
    0.5 s late. The kernel reports a rename's two halves together: 0.05 s still pairs them
    (and an unpaired rename reads as deleted + created, which the watcher handles alike).
    Process-wide, set before the observer starts; nothing else here uses watchdog.
    """
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # a watchdog without it: events may lag 0.5 s, still correct
        return
    InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS


def _text(path: str | bytes) -> str:
    return path.decode() if isinstance(path, bytes) else path


def _fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.lstat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns
