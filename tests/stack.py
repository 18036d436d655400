"""`labloop run` as a real subprocess, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.store.db import init_db, make_engine

# each test file that uses Redis has a database of its own: files run side by side (-n 2)
REDIS_URL = "redis://127.0.0.1:6379/7"


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A Redis server of the test's own on ``port`` (stop it with terminate())."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("private redis did not start")


def home_with_batches(home: Path, batches: int = 1) -> Engine:
    """A labloop home whose SQLite database names ``batches`` running batches of ten."""
    from tests.conftest import add_batch

    (home / "var").mkdir(parents=True, exist_ok=True)
    (home / "inbox").mkdir(exist_ok=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    for number in range(1, batches + 1):
        add_batch(engine, number)
    return engine


def sheet(path: Path, sample_id: str, capacity: float) -> Path:
    """A one-row result sheet, as lab staff write them."""
    path.write_text(
        f"sample_id,initial_discharge_mah_g,status,reason\n{sample_id},{capacity},ok,\n"
    )
    return path


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=lambda: ["run", "--concurrency", "2"])

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @staticmethod
    def command() -> list[str]:
        return [sys.executable, "-m", "agent.cli"]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.command(), *self.args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def count(self, model, **where) -> int:
        engine = make_engine(f"sqlite:///{self.home / 'var' / 'labloop.db'}")
        try:
            with Session(engine) as session:
                query = select(func.count()).select_from(model)
                for column, value in where.items():
                    query = query.where(getattr(model, column) == value)
                return session.exec(query).one()
        finally:
            engine.dispose()

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"labloop run exited: {self.log.read_text()[-3000:]}")
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()

    def database(self):
        return make_engine(f"sqlite:///{self.home / 'var' / 'labloop.db'}")
