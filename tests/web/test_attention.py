"""What needs someone: the page header names the batch, and a task failure stays open until
what it was for is done (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, update

from agent.config import Settings
from agent.ops.heartbeat import beat
from agent.ops.task_failures import open_failures, record_failure
from agent.ops.task_names import INGEST_TASK, PROPOSE_TASK, RETRAIN_TASK
from agent.store.db import Batch, BatchState, FileStatus, IngestedFile, ModelRun, utcnow
from agent.web.app import create_app
from tests.conftest import add_batch


def header(settings: Settings) -> str:
    page = create_app(settings).test_client().get("/").get_data(as_text=True)
    return page[page.index("<header>") : page.index("</header>")]


def test_the_header_names_the_batches_that_need_someone(settings: Settings, engine) -> None:
    with Session(engine) as session:
        session.add(Batch(number=4, state=BatchState.PROPOSED, approval_required=True))
        session.commit()
    complete = add_batch(engine, 3)
    with Session(engine) as session:
        session.exec(update(Batch).where(Batch.id == complete.id).values(state="complete"))
        session.commit()
    shown = header(settings)
    assert "Batch 4 awaits approval" in shown
    assert "Batch 3 is complete; its retrain waits for a worker" in shown

    beat(engine, "learning", "lab-pc", "retraining batch 3")
    assert "model retraining batch 3" in header(settings)

    beat(engine, "learning", "lab-pc", None)
    record_failure(engine, RETRAIN_TASK, [3], ValueError("design space: ni_fraction has no range"))
    shown = header(settings)
    assert "Batch 3: retrain failed" in shown and "model retraining" not in shown


def test_a_failure_stays_open_until_what_it_was_for_is_done(engine) -> None:
    record_failure(engine, INGEST_TASK, ["B001-S01.csv"], TimeoutError("database locked"))
    record_failure(engine, PROPOSE_TASK, [2], RuntimeError("swarm found no feasible recipe"))
    record_failure(engine, RETRAIN_TASK, [5], RuntimeError("first"))
    record_failure(engine, RETRAIN_TASK, [5], RuntimeError("second"))
    failures = {f.what: f for f in open_failures(engine)}
    assert set(failures) == {
        "reading B001-S01.csv",
        "recipe file of model v2",
        "retrain of batch 5",
    }
    assert failures["retrain of batch 5"].message == "second"  # the latest of each
    assert failures["reading B001-S01.csv"].describe() == (
        "reading B001-S01.csv failed: TimeoutError: database locked"
    )

    with Session(engine) as session:
        # a file of that name recorded before the failure resolves nothing
        earlier = utcnow() - timedelta(hours=1)
        session.add(IngestedFile(sha256="a", original_name="B001-S01.csv", size_bytes=1,
                                 status=FileStatus.ARCHIVED, finished_at=earlier))  # fmt: skip
        session.add(Batch(number=3, model_version=2))
        session.commit()
    assert {f.what for f in open_failures(engine)} == {"reading B001-S01.csv", "retrain of batch 5"}

    with Session(engine) as session:
        session.add(IngestedFile(sha256="b", original_name="B001-S01.csv", size_bytes=1,
                                 status=FileStatus.QUARANTINED, finished_at=utcnow()))  # fmt: skip
        session.add(ModelRun(version=3, trigger_batch=5, n_train=10, n_outcomes=10, cv_rmse=1.0,
                             cv_r2=0.5, model_path="m", model_sha256="s"))  # fmt: skip
        session.commit()
    assert open_failures(engine) == []
