"""The optional approval gate: a proposed batch reaches the lab only once someone approved it.

With ``approval = "required"`` a new batch is written as a draft
(``recipes/drafts/batch-NNN.csv``); before approval a sample's recipe may be edited (it is
validated and predicted again by the batch's model) or the whole batch rejected with a
reason. Approval records who and when, then writes the recipe file the lab follows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.errors import LabloopError
from agent.loop.batches import batch_by_number
from agent.loop.model_files import load_model, run_by_version
from agent.loop.propose import draft_path, predicted_as_proposed, release, samples_of
from agent.loop.recipe_files import write_draft
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, Experiment, utcnow


class ApprovalError(LabloopError, ValueError):
    """The batch is not awaiting approval (unknown, approved, rejected or not gated)."""


def _awaiting(number: int) -> Any:
    return (
        (Batch.number == number)
        & Batch.approval_required
        & Batch.approved_at.is_(None)
        & (Batch.state == BatchState.PROPOSED)
    )


def _batch(engine: Engine, number: int) -> Batch:
    batch = batch_by_number(engine, number)
    if batch is None:
        raise ApprovalError(f"there is no batch {number}")
    return batch


def approve(engine: Engine, space: DesignSpace, number: int, who: str) -> Batch:
    """Approve and release a batch's recipe file; records who and when."""
    with Session(engine) as session:
        moved = session.exec(
            update(Batch).where(_awaiting(number)).values(approved_by=who, approved_at=utcnow())
        )
        session.commit()
    if moved.rowcount != 1:
        raise ApprovalError(f"batch {number} is not awaiting approval")
    return release(engine, space, _batch(engine, number))


def reject(engine: Engine, number: int, reason: str, who: str) -> None:
    """Turn a proposal down; it never reaches the lab. `labloop propose` makes a new one."""
    with Session(engine) as session:
        moved = session.exec(
            update(Batch)
            .where(_awaiting(number))
            .values(state=BatchState.REJECTED, rejected_reason=f"{reason} (by {who})")
        )
        session.commit()
    if moved.rowcount != 1:
        raise ApprovalError(f"batch {number} is not awaiting approval")
    draft_path(_batch(engine, number)).unlink(missing_ok=True)


def edit(
    engine: Engine,
    space: DesignSpace,
    number: int,
    sample_id: str,
    changes: dict[str, Any],
    strategy: str = "trust-ei",
) -> Experiment:
    """Change parameters of one sample of a batch awaiting approval; predicted again as the
    proposal by ``strategy`` (the setting) predicted its other samples."""
    batch = _batch(engine, number)
    if not batch.awaiting_approval:
        raise ApprovalError(f"batch {number} is not awaiting approval: it can no longer change")
    with Session(engine, expire_on_commit=False) as session:
        experiment = session.exec(
            select(Experiment).where(
                Experiment.batch_id == batch.id, Experiment.sample_id == sample_id
            )
        ).first()
        if experiment is None:
            raise ApprovalError(f"{sample_id} is not a sample of batch {number}")
        recipe = {**experiment.parameters, **changes}
        for derived in space.derived:
            recipe[derived.name] = float(derived.compute(recipe))
        space.validate(recipe)  # ValueError naming the offending parameter
        model = load_model(run_by_version(engine, batch.model_version))
        mean, std, p_success = predicted_as_proposed(model, space, recipe, strategy)
        experiment.parameters = recipe
        experiment.predicted_mah_g = mean
        experiment.predicted_std_mah_g = std
        experiment.p_success = p_success
        session.add(experiment)
        session.commit()
    write_draft(draft_path(batch), space, samples_of(engine, batch))
    return experiment
