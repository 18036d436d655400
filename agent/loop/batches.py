"""The loop's rules: batch states and the exactly-once move to `complete`.

A batch moves ``proposed -> running -> complete -> trained``, forward only. Each move
is a conditional UPDATE (``... WHERE state IN (earlier states)``), so when several
workers record a batch's last results at the same moment exactly one of them sees
its UPDATE change a row, and only that one starts the retrain.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.config import Settings
from agent.cycler.base import FailureClass
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, Experiment, ModelRun, Result, utcnow

log = logging.getLogger(__name__)

_BEFORE_COMPLETE = (BatchState.PROPOSED, BatchState.RUNNING)

# a rest- or impedance-only file is recorded as failed / untested, but the sample's test has not
# run yet: such a result neither completes its sample nor enters the training set
TEST_RAN = Result.failure_class.is_distinct_from(FailureClass.UNTESTED)


def missing_samples(session: Session, batch_id: int) -> list[str]:
    """Sample ids of the batch that have no result of a test yet (ok or failed)."""
    has_result = exists().where(Result.experiment_id == Experiment.id, TEST_RAN)
    return list(
        session.exec(
            select(Experiment.sample_id)
            .where(Experiment.batch_id == batch_id, ~has_result)
            .order_by(Experiment.sample_id)
        ).all()
    )


def record_progress(engine: Engine, batch_id: int) -> int | None:
    """Move a batch forward after results were stored.

    Returns the batch number when this call completed the batch (the caller then starts
    the retrain), else None. A batch awaiting approval does not move: results that come
    before its recipe file was released are kept as early results and count once it is.
    """
    released = Batch.id == batch_id, ~(Batch.approval_required & Batch.approved_at.is_(None))
    # running once a result is in: an approval alone leaves the batch proposed
    has_result = (
        select(Result.id)
        .join(Experiment, Result.experiment_id == Experiment.id)
        .where(Experiment.batch_id == batch_id)
        .exists()
    )
    with Session(engine) as session:
        session.exec(
            update(Batch)
            .where(*released, Batch.state == BatchState.PROPOSED, has_result)
            .values(state=BatchState.RUNNING)
        )
        session.commit()
        samples = session.exec(
            select(func.count()).select_from(Experiment).where(Experiment.batch_id == batch_id)
        ).one()
        if samples == 0 or missing_samples(session, batch_id):
            return None
        moved = session.exec(
            update(Batch)
            .where(*released, Batch.state.in_(_BEFORE_COMPLETE))
            .values(state=BatchState.COMPLETE, completed_at=utcnow())
        )
        session.commit()
        if moved.rowcount != 1:
            return None
        number = session.get(Batch, batch_id).number
    log.info("batch %d complete", number)
    return number


def batch_by_number(engine: Engine, number: int) -> Batch | None:
    with Session(engine) as session:
        return session.exec(select(Batch).where(Batch.number == number)).first()


def close_batch(engine: Engine, number: int, reason: str) -> bool:
    """Complete a batch whose missing samples will never come; True if it was open."""
    with Session(engine) as session:
        moved = session.exec(
            update(Batch)
            .where(Batch.number == number, Batch.state.in_(_BEFORE_COMPLETE))
            .values(state=BatchState.COMPLETE, completed_at=utcnow(), closed_reason=reason)
        )
        session.commit()
    return moved.rowcount == 1


def unfinished_work(engine: Engine) -> tuple[list[int], list[int]]:
    """What a crash may have left undone: batches complete but never trained, and model
    versions trained for a batch that proposed nothing yet."""
    with Session(engine) as session:
        complete = session.exec(
            select(Batch.number).where(Batch.state == BatchState.COMPLETE).order_by(Batch.number)
        ).all()
        proposed_by = select(Batch.id).where(Batch.model_version == ModelRun.version)
        unproposed = session.exec(
            select(ModelRun.version)
            .where(ModelRun.trigger_batch.is_not(None), ~exists(proposed_by))
            .order_by(ModelRun.version)
        ).all()
    return list(complete), list(unproposed)


def campaign_space(settings: Settings) -> DesignSpace:
    """The design space of this campaign: the TOML file with the campaign's pins and ranges."""
    return DesignSpace.load(settings.design_space).with_overrides(settings.campaign)
