"""agent.loop.batches: batches move forward only, and exactly one caller completes a batch."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from agent.loop import batches
from agent.store.db import Batch, Experiment, Result
from tests.conftest import add_batch


def add_result(engine, sample_id: str, outcome: str = "ok", sha: str | None = None) -> None:
    with Session(engine) as session:
        experiment = session.exec(select(Experiment).where(Experiment.sample_id == sample_id)).one()
        session.add(
            Result(experiment_id=experiment.id, outcome=outcome, discharge_mah_g=220.0,
                   source_sha256=sha or f"sha-{sample_id}")
        )  # fmt: skip
        session.commit()


def state(engine, batch_id: int) -> str:
    with Session(engine) as session:
        return session.get(Batch, batch_id).state


def test_batch_runs_then_completes_once(engine):
    batch = add_batch(engine, 1, size=3)
    add_result(engine, "B001-S01")
    assert batches.record_progress(engine, batch.id) is None
    assert state(engine, batch.id) == "running"
    with Session(engine) as session:
        assert batches.missing_samples(session, batch.id) == ["B001-S02", "B001-S03"]
    add_result(engine, "B001-S02", outcome="failed")
    add_result(engine, "B001-S03")
    assert batches.record_progress(engine, batch.id) == 1
    assert state(engine, batch.id) == "complete"
    # a re-test arriving later is stored but does not complete the batch a second time
    add_result(engine, "B001-S03", sha="retest")
    assert batches.record_progress(engine, batch.id) is None
    assert state(engine, batch.id) == "complete"


def race(engine, batch_id: int, callers: int = 8) -> list[int | None]:
    """``callers`` threads record progress on one batch at the same moment."""
    winners: list[int | None] = []
    barrier = threading.Barrier(callers)

    def call() -> None:
        barrier.wait()
        winners.append(batches.record_progress(engine, batch_id))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return winners


def test_racing_callers_complete_a_batch_exactly_once(engine):
    for attempt in range(5):
        number = 10 + attempt
        batch = add_batch(engine, number, size=10)
        for slot in range(1, 11):
            add_result(engine, f"B{number:03d}-S{slot:02d}")
        winners = race(engine, batch.id)
        assert winners.count(number) == 1 and winners.count(None) == 7, winners


def test_close_batch_completes_an_open_batch_once(engine):
    add_batch(engine, 3, size=2)
    add_result(engine, "B003-S01")
    assert batches.close_batch(engine, 3, "S02 cell lost in the glovebox") is True
    assert batches.close_batch(engine, 3, "again") is False
    with Session(engine) as session:
        batch = session.exec(select(Batch).where(Batch.number == 3)).one()
    assert batch.state == "complete"
    assert batch.closed_reason == "S02 cell lost in the glovebox"
    assert batches.unfinished_work(engine) == ([3], [])
