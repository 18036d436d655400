"""The approval gate: with approval required, nothing reaches the lab before a person says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from agent.loop.approval import ApprovalError, approve, edit, reject
from agent.loop.batches import batch_by_number, campaign_space, record_progress
from agent.loop.propose import draft_path, propose_next_batch
from agent.loop.recipe_files import read_recipe_file
from agent.loop.retrain import retrain
from agent.store.db import Batch
from tests.conftest import add_ok_results


@pytest.fixture
def gated(small):
    return small.model_copy(update={"approval": "required"})


def proposed(engine, settings):
    space = campaign_space(settings)
    return space, propose_next_batch(engine, settings, space, retrain(engine, settings, space))


def test_a_gated_batch_is_a_draft_until_approved(engine, gated, with_history):
    space, batch = proposed(engine, gated)
    assert batch.awaiting_approval
    assert not Path(batch.recipe_file).exists()
    assert len(read_recipe_file(draft_path(batch), space)) == 10
    approved = approve(engine, space, batch.number, "dr. kim")
    assert approved.approved_by == "dr. kim" and approved.approved_at is not None
    # released, but no result yet: still proposed (the page's legend), not running
    assert record_progress(engine, batch.id) is None
    assert batch_by_number(engine, batch.number).state == "proposed"
    assert len(read_recipe_file(Path(batch.recipe_file), space)) == 10
    assert not draft_path(batch).exists()
    with pytest.raises(ApprovalError, match="not awaiting approval"):
        approve(engine, space, batch.number, "someone else")


def test_an_edit_is_validated_and_predicted_again(engine, gated, with_history):
    space, batch = proposed(engine, gated)
    with pytest.raises(ValueError, match="calcination_temp_c"):
        edit(engine, space, batch.number, "B001-S03", {"calcination_temp_c": 722.0})
    changed = edit(engine, space, batch.number, "B001-S03", {"calcination_temp_c": 650.0,
                                                             "co_fraction": 0.0})  # fmt: skip
    assert changed.parameters["calcination_temp_c"] == 650.0
    assert changed.parameters["mn_fraction"] == pytest.approx(1 - changed.parameters["ni_fraction"])
    draft = {s.sample_id: s for s in read_recipe_file(draft_path(batch), space)}
    assert draft["B001-S03"].recipe["calcination_temp_c"] == 650.0
    assert draft["B001-S03"].predicted_mah_g == pytest.approx(changed.predicted_mah_g, abs=0.05)
    approve(engine, space, batch.number, "dr. kim")
    with pytest.raises(ApprovalError, match="can no longer change"):
        edit(engine, space, batch.number, "B001-S03", {"calcination_temp_c": 700.0})


def test_an_edit_back_to_the_proposed_recipe_states_what_the_proposal_stated(
    engine, gated, with_history
):
    """An edited sample is predicted as its neighbours were: by the acquisition's belief,
    not by another model (which said P(success) 0.99 beside the proposal's 0.59)."""
    space, batch = proposed(engine, gated)
    proposal = {s.sample_id: s for s in read_recipe_file(draft_path(batch), space)}
    for sample_id in ("B001-S01", "B001-S05"):
        before = proposal[sample_id]
        value = before.recipe["calcination_temp_c"]
        after = edit(engine, space, batch.number, sample_id, {"calcination_temp_c": value})
        assert after.predicted_mah_g == pytest.approx(before.predicted_mah_g, abs=0.06)
        assert after.p_success == pytest.approx(before.p_success, abs=0.006)
    # the first pick was scored before any other: its stated uncertainty is the same too
    first = proposal["B001-S01"].uncertainty_mah_g
    again = read_recipe_file(draft_path(batch), space)[0].uncertainty_mah_g
    assert again == pytest.approx(first, abs=0.06)


def test_a_rejected_batch_never_reaches_the_lab(engine, gated, with_history):
    space, batch = proposed(engine, gated)
    reject(engine, batch.number, "coating furnace is down this week", "dr. kim")
    with Session(engine) as session:
        stored = session.exec(select(Batch)).one()
    assert stored.state == "rejected"
    assert stored.rejected_reason == "coating furnace is down this week (by dr. kim)"
    assert not Path(batch.recipe_file).exists() and not draft_path(batch).exists()
    with pytest.raises(ApprovalError):
        approve(engine, space, batch.number, "dr. kim")


def test_without_the_gate_the_file_is_released_at_once(engine, small, with_history):
    _, batch = proposed(engine, small)
    assert not batch.awaiting_approval
    assert Path(batch.recipe_file).exists()


def test_early_results_wait_for_the_approval_and_then_count(engine, gated, with_history):
    """Results for a batch nobody released are recorded but do not start it: no retrain on a
    recipe file the lab was never meant to have; approving then moves it on."""
    from agent.loop.batches import record_progress

    space, batch = proposed(engine, gated)
    add_ok_results(engine, batch.id)
    assert record_progress(engine, batch.id) is None
    with Session(engine) as session:
        waiting = session.get(Batch, batch.id)
    assert waiting.state == "proposed" and waiting.awaiting_approval
    approve(engine, space, batch.number, "dr. kim")
    assert record_progress(engine, batch.id) == batch.number  # all ten were in
