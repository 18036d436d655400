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

from agent.db import Batch, BatchState, Experiment, Result, utcnow

log = logging.getLogger(__name__)

_BEFORE_COMPLETE = (BatchState.PROPOSED, BatchState.RUNNING)


def missing_samples(session: Session, batch_id: int) -> list[str]:
    """Sample ids of the batch that have no result yet (ok or failed)."""
    has_result = exists().where(Result.experiment_id == Experiment.id)
    return list(
        session.exec(
            select(Experiment.sample_id)
            .where(Experiment.batch_id == batch_id, ~has_result)
            .order_by(Experiment.sample_id)
        ).all()
    )


def record_progress(engine: Engine, batch_id: int) -> bool:
    """Move a batch forward after results were stored; True if this call completed it."""
    with Session(engine) as session:
        session.exec(
            update(Batch)
            .where(Batch.id == batch_id, Batch.state == BatchState.PROPOSED)
            .values(state=BatchState.RUNNING)
        )
        session.commit()
        samples = session.exec(
            select(func.count()).select_from(Experiment).where(Experiment.batch_id == batch_id)
        ).one()
        if samples == 0 or missing_samples(session, batch_id):
            return False
        moved = session.exec(
            update(Batch)
            .where(Batch.id == batch_id, Batch.state.in_(_BEFORE_COMPLETE))
            .values(state=BatchState.COMPLETE, completed_at=utcnow())
        )
        session.commit()
    if moved.rowcount == 1:
        log.info("batch %s complete", batch_id)
        return True
    return False
