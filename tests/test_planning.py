"""Retrain and propose steps: model files once, one batch per model, valid new recipes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlmodel import Session, select

from agent.loop.batches import campaign_space
from agent.loop.model_files import UntrustedModel, load_model
from agent.loop.propose import known_recipes, propose_next_batch, recipe_is_ours
from agent.loop.recipe_files import read_recipe_file, write_recipe_file
from agent.loop.retrain import retrain
from agent.store.db import Batch, Experiment, ModelRun


def test_retrain_stores_a_run_and_a_file_that_is_never_overwritten(engine, small, with_history):
    space = campaign_space(small)
    first = retrain(engine, small, space)
    assert first.version == 1 and first.n_train > 100
    assert first.counts["synthesis"] > 0
    payload = Path(first.model_path).read_bytes()
    assert hashlib.sha256(payload).hexdigest() == first.model_sha256
    second = retrain(engine, small, space)
    assert second.version == 2
    assert Path(first.model_path).read_bytes() == payload
    assert load_model(second).predict(space, space.random(2, 0)).mean_mah_g.shape == (2,)


def test_a_tampered_model_file_is_refused(engine, small, with_history):
    run = retrain(engine, small, campaign_space(small))
    Path(run.model_path).write_bytes(b"not our pickle")
    with pytest.raises(UntrustedModel, match="refusing to load"):
        load_model(run)


def test_retrain_for_a_batch_happens_once(engine, small, with_history):
    space = campaign_space(small)
    first = retrain(engine, small, space, trigger_batch=4)
    again = retrain(engine, small, space, trigger_batch=4)
    assert again.version == first.version
    with Session(engine) as session:
        assert len(session.exec(select(ModelRun)).all()) == 1


def test_proposal_is_a_valid_new_batch_written_once(engine, small, with_history):
    space = campaign_space(small)
    run = retrain(engine, small, space)
    batch = propose_next_batch(engine, small, space, run)
    assert batch.number == 1 and batch.state == "proposed"
    path = Path(batch.recipe_file)
    assert path.name == "batch-001.csv"
    samples = read_recipe_file(path, space)  # validates every recipe against the space
    assert [s.sample_id for s in samples] == [f"B001-S{i:02d}" for i in range(1, 11)]
    recipes = [s.recipe for s in samples]
    keys = {tuple(sorted(r.items())) for r in recipes}
    assert len(keys) == 10
    history = {tuple(sorted(r.items())) for r in known_recipes(engine, space)[:120]}
    assert not keys & history
    assert all(s.model_version == 1 and s.predicted_mah_g > 150 for s in samples)
    # asked again for the same model: the same batch, no new rows, the file untouched
    before = path.read_bytes()
    assert propose_next_batch(engine, small, space, run).id == batch.id
    assert path.read_bytes() == before
    with Session(engine) as session:
        assert len(session.exec(select(Batch)).all()) == 1
        assert (
            len(session.exec(select(Experiment).where(Experiment.batch_id == batch.id)).all()) == 10
        )
    with pytest.raises(FileExistsError):
        write_recipe_file(path, space, samples)


def forget_file(engine, batch: Batch) -> None:
    """The state a crash between the commit and the file write leaves behind."""
    Path(batch.recipe_file).unlink()
    with Session(engine) as session:
        stored = session.get(Batch, batch.id)
        stored.recipe_sha256 = None
        session.add(stored)
        session.commit()


def test_recipe_file_lost_after_commit_is_rewritten_from_the_rows(engine, small, with_history):
    space = campaign_space(small)
    run = retrain(engine, small, space)
    batch = propose_next_batch(engine, small, space, run)
    path = Path(batch.recipe_file)
    original = path.read_bytes()
    assert recipe_is_ours(batch)
    forget_file(engine, batch)
    again = propose_next_batch(engine, small, space, run)
    assert path.read_bytes() == original and recipe_is_ours(again)


def test_a_recipe_file_that_is_not_ours_is_never_handed_out(engine, small, with_history):
    space = campaign_space(small)
    run = retrain(engine, small, space)
    batch = propose_next_batch(engine, small, space, run)
    path = Path(batch.recipe_file)
    path.write_text(path.read_text().replace("LiOH", "Li2CO3"))  # edited by hand
    assert not recipe_is_ours(batch)
    forget_file(engine, batch)
    path.write_text("sample_id\nB001-S01\n")  # something else sits where ours should be
    again = propose_next_batch(engine, small, space, run)
    assert path.read_text() == "sample_id\nB001-S01\n"  # left alone, not overwritten
    assert again.recipe_sha256 is None and not recipe_is_ours(again)


def test_pinned_campaign_proposes_only_pinned_values(engine, small, with_history):
    pinned = small.model_copy(update={"campaign": {"atmosphere": "air", "ni_fraction": 0.94}})
    space = campaign_space(pinned)
    batch = propose_next_batch(engine, pinned, space, retrain(engine, pinned, space))
    for sample in read_recipe_file(Path(batch.recipe_file), space):
        assert sample.recipe["atmosphere"] == "air"
        assert sample.recipe["ni_fraction"] == 0.94


def test_no_batch_is_proposed_past_the_campaign_budget(engine, small, with_history):
    budget = small.model_copy(update={"max_batches": 1})
    space = campaign_space(budget)
    assert propose_next_batch(engine, budget, space, retrain(engine, budget, space)).number == 1
    assert propose_next_batch(engine, budget, space, retrain(engine, budget, space)) is None
    with Session(engine) as session:
        assert len(session.exec(select(Batch)).all()) == 1


def test_a_recipe_file_comes_with_text_saying_what_it_holds(engine, small, with_history):
    space = campaign_space(small)
    run = retrain(engine, small, space)
    batch = propose_next_batch(engine, small, space, run)
    about = Path(batch.recipe_file).with_name("batch-001.about.txt").read_text()
    assert about.startswith("batch-001.csv: the recipes labloop proposes for batch 1.")
    assert f"model v{run.version}, trained on {run.n_train} measured experiments" in about
    assert f"error is {run.cv_rmse:.2f} mAh/g (R² {run.cv_r2:.3f}" in about
    header = Path(batch.recipe_file).read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    # every prediction column of the file is explained
    for column in header[header.index("predicted_capacity_mah_g") :]:
        assert f"  {column}" in about or f", {column}" in about, column
    assert "p_success" in about and "0.5 where none is near" in about
    assert "(B001-S03.csv)" in about and "B004" not in about  # an example of its own batch


def test_a_model_file_left_without_its_row_is_set_aside_not_fatal(engine, small, with_history):
    """A crash between writing model-v0002 and committing its row left the file behind: the
    next retrain moves it to orphaned/ (kept as evidence) and takes the version."""
    import os

    space = campaign_space(small)
    retrain(engine, small, space)
    leftover = small.models / "model-v0002.joblib"
    leftover.write_bytes(b"half a model")
    os.utime(leftover, (1_000_000_000, 1_000_000_000))  # written long ago
    run = retrain(engine, small, space)
    assert run.version == 2
    assert load_model(run) is not None  # the new file, not the leftover
    [orphan] = (small.models / "orphaned").iterdir()
    assert orphan.read_bytes() == b"half a model"
