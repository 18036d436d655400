"""Heartbeats: rows a beating thread keeps fresh, read by `labloop status` and `labloop health`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, select

from agent.ops.heartbeat import Beater, beat, service_beats
from agent.store.db import Heartbeat, init_db, make_engine


def labloop(home: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABLOOP_HOME": str(home), "LABLOOP_DATABASE_URL": database_url,
           "LABLOOP_HEARTBEAT_SECONDS": "60", "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def age_beat(engine, service: str, seconds: float) -> None:  # noqa: ANN001 - an Engine
    with Session(engine) as session:
        moment = datetime.now(UTC) - timedelta(seconds=seconds)
        session.exec(update(Heartbeat).where(Heartbeat.service == service).values(beat_at=moment))
        session.commit()


def test_health_exits_0_for_a_fresh_beat_and_1_for_a_stale_or_missing_one(tmp_path, database_url):
    engine = make_engine(database_url)
    init_db(engine)
    beat(engine, "watcher", "lab-pc", None)
    beat(engine, "learning", "lab-pc", "retraining batch 3")

    fresh = labloop(tmp_path, database_url, "health", "watcher", "--host", "lab-pc")
    assert fresh.returncode == 0, fresh.stderr
    assert re.search(r"^watcher: beat \d+ s ago$", fresh.stdout, re.M), fresh.stdout
    # a check asks about its own machine: lab-pc's fresh watcher does not make it healthy
    here = labloop(tmp_path, database_url, "health", "watcher")
    assert here.returncode == 1
    assert f"watcher: no heartbeat from {socket.gethostname()} (it beats on lab-pc)" in (
        here.stderr
    )
    assert labloop(tmp_path, database_url, "health", "watcher", "--any-host").returncode == 0
    age_beat(engine, "learning", 6)  # a command starts in a few seconds on a loaded machine
    busy = labloop(tmp_path, database_url, "health", "learning", "--host", "lab-pc")
    assert busy.returncode == 0, busy.stderr
    assert re.search(r"learning worker: busy retraining batch 3, beat \d+ (s|min) ago", busy.stdout)

    age_beat(engine, "watcher", 600)  # three beats of 60 s missed, and more
    age_beat(engine, "learning", 6)
    stale = labloop(tmp_path, database_url, "health", "watcher", "--any-host")
    assert stale.returncode == 1
    assert "stale" in stale.stdout
    missing = labloop(tmp_path, database_url, "health", "ingest", "--any-host")
    assert missing.returncode == 1
    assert "ingest: no heartbeat recorded (services that beat: learning, watcher)" in (
        missing.stderr
    )

    status = labloop(tmp_path, database_url, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(
        r"learning worker: busy retraining batch 3, beat \d+ (s|min) ago$", status.stdout, re.M
    )
    assert re.search(r"watcher: beat 1\d min ago \(stale", status.stdout), status.stdout
    engine.dispose()


def test_a_beater_keeps_beating_while_its_process_is_busy(tmp_path):
    url = f"sqlite:///{tmp_path / 'labloop.db'}"
    engine = make_engine(url)
    init_db(engine)
    beater = Beater(url, "learning", every=0.2, host="lab-pc").start()
    try:
        beater.busy("task-1", "retraining batch 3")
        # the main thread busy in pure Python for a second, as a fit between two numpy calls
        beats = set()
        # four beats while this thread never sleeps; the deadline only bounds a loaded machine
        deadline = time.monotonic() + 20
        while len(beats) < 4 and time.monotonic() < deadline:
            sum(i * i for i in range(20_000))
            with Session(engine) as session:
                row = session.exec(select(Heartbeat)).first()
            if row is not None:  # the thread's first beat may be a moment away
                beats.add(row.beat_at)
        assert len(beats) >= 4, beats
        assert row.busy_with == "retraining batch 3" and row.pid == os.getpid()
        beater.done("task-1")
        line = _wait_for(engine, lambda line: line.busy_with is None)
        assert (line.label, line.host, line.busy_with, line.fresh) == (
            "learning worker",
            "lab-pc",
            None,
            True,
        )
    finally:
        beater.stop()
    line = _wait_for(engine, lambda line: not line.fresh)  # three beats missed: 0.6 s
    assert "stale" in line.describe()
    engine.dispose()


def _wait_for(engine, condition, timeout: float = 20.0):
    """The one service's line once ``condition`` holds (or the last seen, to be asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        (line,) = service_beats(engine, every=0.2)
        if condition(line) or time.monotonic() > deadline:
            return line
        time.sleep(0.05)


def test_a_service_whose_own_threads_died_stops_beating(tmp_path):
    """The watcher's beat asks whether its observer and settle loop still run."""
    from agent.inbox.watcher import InboxWatcher

    url = f"sqlite:///{tmp_path / 'labloop.db'}"
    engine = make_engine(url)
    init_db(engine)
    watcher = InboxWatcher(tmp_path / "inbox", lambda _name: None)
    watcher.start()
    beater = Beater(url, "watcher", every=0.1, alive=watcher.alive).start()
    try:
        deadline = time.monotonic() + 20
        while not (beats := service_beats(engine, every=0.1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beats[0].fresh
        watcher.stop()  # as if its threads had died under it
        deadline = time.monotonic() + 20
        while service_beats(engine, every=0.1)[0].fresh:
            assert time.monotonic() < deadline, "still beating 20 s after its threads stopped"
            time.sleep(0.05)
    finally:
        beater.stop()
        engine.dispose()
