"""agent.inbox.watcher: only complete files are handed on, once; nothing is dropped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.inbox.watcher import InboxWatcher, is_candidate


class Recorder:
    """A submit() that remembers each name and the file's size when it was handed on."""

    def __init__(self, inbox: Path, fail_first: int = 0) -> None:
        self.inbox = inbox
        self.calls: list[tuple[str, int]] = []
        self.handed_at: list[float] = []  # time.monotonic() of each call
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, name: str) -> None:
        with self.lock:
            if self.fail_first:
                self.fail_first -= 1
                raise ConnectionError("broker down")
            self.calls.append((name, (self.inbox / name).stat().st_size))
            self.handed_at.append(time.monotonic())

    def names(self) -> list[str]:
        with self.lock:
            return sorted(name for name, _ in self.calls)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("B001-S01.csv", True),
        ("run 3/B001-S02.mpt", True),
        (".hidden.csv", False),
        ("~$results.xlsx", False),
        ("B001-S01.csv.part", False),
        ("upload.tmp", False),
        (".sync/B001-S01.csv", False),
        ("masses.csv", False),
    ],
)
def test_candidates(name, expected):
    assert is_candidate(Path(name)) is expected


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def polling(request) -> bool:
    return request.param


def test_ten_files_at_once_are_each_handed_on_once(tmp_path, polling):
    recorder = Recorder(tmp_path)
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.3, polling=polling, poll_interval=0.2):
        for i in range(1, 11):
            (tmp_path / f"B001-S{i:02d}.csv").write_text("x" * i)
        assert wait_for(lambda: len(recorder.calls) >= 10)
        time.sleep(0.8)  # no second hand-over of the same files
    assert recorder.names() == [f"B001-S{i:02d}.csv" for i in range(1, 11)]


def test_slow_writer_is_handed_on_once_when_complete(tmp_path):
    recorder = Recorder(tmp_path)
    path = tmp_path / "B001-S01.csv"
    chunk = b"1,2,3,4\n" * 1000
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.5):
        with path.open("wb") as handle:
            for _ in range(10):  # two seconds of writing
                handle.write(chunk)
                handle.flush()
                time.sleep(0.2)
        assert wait_for(lambda: recorder.calls)
        time.sleep(1.0)
    assert recorder.calls == [("B001-S01.csv", 10 * len(chunk))]


def test_writer_holding_the_file_open_is_handed_on_only_after_close(tmp_path):
    """Pauses longer than the settle time, and an empty file held open, do not end a copy."""
    recorder = Recorder(tmp_path)
    path = tmp_path / "B001-S01.csv"
    chunk = b"1,2,3,4\n" * 1000
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.5):
        with path.open("wb") as handle:
            time.sleep(1.5)  # created, still empty, held open
            for _ in range(3):
                handle.write(chunk)
                handle.flush()
                time.sleep(1.5)
            assert recorder.calls == []
        assert wait_for(lambda: recorder.calls)
        time.sleep(1.0)
    assert recorder.calls == [("B001-S01.csv", 3 * len(chunk))]


def test_quick_open_append_close_cycles_are_handed_on_once_after_the_last(tmp_path):
    recorder = Recorder(tmp_path)
    path = tmp_path / "B001-S01.csv"
    line = b"1,2,3,4\n"
    with InboxWatcher(tmp_path, recorder, settle_seconds=5.0, quiet_seconds=0.5):
        for _ in range(20):
            with path.open("ab") as handle:
                handle.write(line)
            time.sleep(0.02)
        assert wait_for(lambda: recorder.calls)
        time.sleep(1.0)
    assert recorder.calls == [("B001-S01.csv", 20 * len(line))]


def test_file_created_empty_then_filled_by_a_second_open_is_handed_on_with_its_content(tmp_path):
    """The issue's case: created empty, filled 3 s later (the old settle time was 1 s)."""
    recorder = Recorder(tmp_path)
    path = tmp_path / "B001-S01.csv"
    with InboxWatcher(tmp_path, recorder):  # default settle time
        path.touch()
        time.sleep(3.0)
        assert recorder.calls == []
        path.write_bytes(b"1,2,3,4\n" * 100)
        assert wait_for(lambda: recorder.calls)
        time.sleep(1.0)
    assert recorder.calls == [("B001-S01.csv", 800)]


def test_file_closed_empty_is_handed_on_after_the_settle_time(tmp_path):
    recorder = Recorder(tmp_path)
    with InboxWatcher(tmp_path, recorder, settle_seconds=1.0):
        created = time.monotonic()
        (tmp_path / "B001-S01.csv").touch()
        assert wait_for(lambda: recorder.calls)
    assert recorder.calls == [("B001-S01.csv", 0)]
    assert recorder.handed_at[0] - created >= 1.0


def test_polling_hands_on_after_the_settle_time_not_at_close(tmp_path):
    """Polling sees no closes: a network copy (chunks, 2 s pauses) waits for the settle time."""
    recorder = Recorder(tmp_path)
    path = tmp_path / "B001-S01.csv"
    chunk = b"1,2,3,4\n" * 1000
    with InboxWatcher(tmp_path, recorder, polling=True, poll_interval=0.2) as watcher:
        assert not watcher.close_events
        for _ in range(3):
            with path.open("ab") as handle:
                handle.write(chunk)
            last_write = time.monotonic()
            time.sleep(2.0)
        assert wait_for(lambda: recorder.calls, timeout=watcher.settle_seconds + 20)
        time.sleep(1.0)
    assert recorder.calls == [("B001-S01.csv", 3 * len(chunk))]
    assert recorder.handed_at[0] - last_write >= watcher.settle_seconds


def test_files_dropped_while_down_are_found_at_start(tmp_path):
    for name in ("B002-S01.csv", "B002-S02.csv", "partial.csv.part"):
        (tmp_path / name).write_text("data")
    recorder = Recorder(tmp_path)
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.2):
        assert wait_for(lambda: len(recorder.calls) >= 2)
        time.sleep(0.5)
    assert recorder.names() == ["B002-S01.csv", "B002-S02.csv"]


def test_rename_from_part_to_final_name_is_noticed(tmp_path):
    recorder = Recorder(tmp_path)
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.2):
        part = tmp_path / "B003-S01.csv.part"
        part.write_text("data")
        time.sleep(0.5)
        assert recorder.calls == []
        part.rename(tmp_path / "B003-S01.csv")
        assert wait_for(lambda: recorder.calls)
    assert recorder.names() == ["B003-S01.csv"]


def test_file_moved_in_from_outside_is_handed_on_once(tmp_path):
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    staging.mkdir()
    recorder = Recorder(inbox)
    # a rename is the end of a copy: handed on long before the settle time
    with InboxWatcher(inbox, recorder, settle_seconds=60.0):
        (staging / "B003-S02.csv").write_text("data")
        (staging / "B003-S02.csv").rename(inbox / "B003-S02.csv")
        assert wait_for(lambda: recorder.calls)
        time.sleep(0.5)
    assert recorder.calls == [("B003-S02.csv", 4)]


def test_broker_down_keeps_the_path_and_retries(tmp_path):
    recorder = Recorder(tmp_path, fail_first=2)
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.1):
        (tmp_path / "B004-S01.csv").write_text("data")
        assert wait_for(lambda: recorder.calls, timeout=15)
    assert recorder.names() == ["B004-S01.csv"]


def test_file_left_in_inbox_is_handed_on_again_after_the_resubmit_delay(tmp_path):
    recorder = Recorder(tmp_path)
    watcher = InboxWatcher(
        tmp_path, recorder, settle_seconds=0.1, resubmit_after=0.5, rescan_interval=0.2
    )
    with watcher:
        (tmp_path / "B005-S01.csv").write_text("data")
        assert wait_for(lambda: len(recorder.calls) >= 2, timeout=10)
    assert set(recorder.names()) == {"B005-S01.csv"}


def test_a_file_left_in_the_inbox_is_handed_on_again_without_waiting_for_a_rescan(tmp_path):
    recorder = Recorder(tmp_path)
    watcher = InboxWatcher(
        tmp_path, recorder, settle_seconds=0.1, resubmit_after=0.5, rescan_interval=3600
    )
    with watcher:
        (tmp_path / "B005-S02.csv").write_text("data")
        assert wait_for(lambda: len(recorder.calls) >= 3, timeout=5)
    # every resubmit_after while it stays, counted from the last hand-on
    gaps = [b - a for a, b in zip(recorder.handed_at, recorder.handed_at[1:], strict=False)]
    assert all(0.45 <= gap < 1.0 for gap in gaps), gaps
    assert set(recorder.names()) == {"B005-S02.csv"}


def test_a_file_gone_from_the_inbox_is_not_handed_on_again(tmp_path):
    recorder = Recorder(tmp_path)
    with InboxWatcher(tmp_path, recorder, settle_seconds=0.1, resubmit_after=0.3):
        (tmp_path / "B005-S03.csv").write_text("data")
        assert wait_for(lambda: recorder.calls)
        (tmp_path / "B005-S03.csv").unlink()  # a worker recorded and moved it
        time.sleep(1.2)
    assert recorder.names() == ["B005-S03.csv"]


def test_symlink_is_handed_on_as_itself(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("secret")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "B001-S01.csv").symlink_to(outside)
    handed = []
    with InboxWatcher(inbox, handed.append, settle_seconds=0.1):
        assert wait_for(lambda: handed)
    assert handed == ["B001-S01.csv"]
