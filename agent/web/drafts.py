"""What the page shows of the approval gate: drafts awaiting a person, who decided and how."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.loop.propose import samples_of
from agent.loop.recipe_files import recipe_table
from agent.space.design import DesignSpace
from agent.store.db import Batch


@dataclass(frozen=True)
class Draft:
    """A batch awaiting approval, its cells as its recipe file will hold them."""

    number: int
    header: list[str]
    rows: list[list[str]]
    sample_ids: list[str]
    editable: list[str]  # the parameters a person may change (fixed ones may not)


@dataclass(frozen=True)
class Approval:
    by: str
    at: datetime


@dataclass(frozen=True)
class GateFacts:
    drafts: dict[int, Draft]  # by batch number
    approvals: dict[int, Approval]
    rejections: dict[int, str]  # the reason, with who gave it


def gate_facts(engine: Engine, space: DesignSpace) -> GateFacts:
    """The drafts of batches awaiting approval and the approvals given, by batch number."""
    with Session(engine, expire_on_commit=False) as session:
        gated = session.exec(select(Batch).where(Batch.approval_required)).all()
    editable = [name for name, p in space.parameters.items() if p.kind != "fixed"]
    drafts = {}
    for batch in (b for b in gated if b.awaiting_approval):
        samples = samples_of(engine, batch)
        header, *rows = recipe_table(space, samples)
        drafts[batch.number] = Draft(
            batch.number, header, rows, [s.sample_id for s in samples], editable
        )
    approvals = {
        b.number: Approval(b.approved_by or "-", b.approved_at)
        for b in gated
        if b.approved_at is not None
    }
    rejections = {b.number: b.rejected_reason for b in gated if b.rejected_reason is not None}
    return GateFacts(drafts, approvals, rejections)
