"""The embedded broker writes each message atomically: a consumer polling the folder never
takes a message that is still being written (kombu's own transport lets it, and the message
is lost to a JSONDecodeError)."""

from __future__ import annotations

import threading
from pathlib import Path
from queue import Empty

import pytest

from agent.config import Settings
from agent.ops.task_names import INGEST_TASK
from workers import embedded_broker
from workers.app import make_app


@pytest.fixture
def app(tmp_path: Path):
    return make_app(Settings(home=tmp_path))


def test_the_embedded_broker_is_the_atomic_transport(app):
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, embedded_broker.Transport)


def test_a_message_is_invisible_to_consumers_until_it_is_complete(app, monkeypatch):
    seen_while_writing = []
    real_replace = embedded_broker.os.replace

    with app.connection_for_write() as writer, app.connection_for_read() as reader:
        consumer = reader.default_channel

        def replace_after_a_look(src: str, dst: str) -> None:
            try:
                seen_while_writing.append(consumer._get("ingest"))
            except Empty:
                seen_while_writing.append(None)
            real_replace(src, dst)

        monkeypatch.setattr(embedded_broker.os, "replace", replace_after_a_look)
        writer.default_channel._put("ingest", {"body": "x" * 10_000})
        assert seen_while_writing == [None]  # written, not yet in place: nothing to take
        assert consumer._get("ingest") == {"body": "x" * 10_000}


def test_a_consumer_racing_a_producer_gets_every_message_whole(app):
    count, received, errors = 400, [], []
    with app.connection_for_write() as writer, app.connection_for_read() as reader:
        producer = writer.default_channel
        consumer = reader.default_channel
        done = threading.Event()

        def consume() -> None:
            while len(received) < count and not done.wait(0):
                try:
                    received.append(consumer._get("ingest")["n"])
                except Empty:
                    continue
                except Exception as error:  # a half-written message
                    errors.append(error)

        thread = threading.Thread(target=consume)
        thread.start()
        for n in range(count):
            producer._put("ingest", {"n": n, "pad": "y" * 5_000})
        thread.join(timeout=60)
        done.set()
    assert errors == []
    assert sorted(received) == list(range(count))


def test_building_the_app_touches_no_disk_and_the_first_message_makes_the_folders(
    tmp_path: Path,
):
    """Importing workers.app (which builds the app) must not create folders in a home that
    may be a typo; the broker's folders appear when a message is first sent."""
    broker = tmp_path / "var" / "broker"
    app = make_app(Settings(home=tmp_path))
    assert not broker.exists()
    app.send_task(INGEST_TASK, args=["B001-S01.csv"])  # routed to the ingest queue
    assert (broker / "queue").is_dir() and (broker / "control").is_dir()
    assert [p.name.endswith(".ingest.msg") for p in (broker / "queue").iterdir()] == [True]
