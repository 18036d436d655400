"""The propose step: the latest model + the acquisition -> the next batch's rows and recipe file."""

from __future__ import annotations

import hashlib
import logging
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from agent.config import Settings
from agent.cycler.base import Outcome
from agent.errors import LabloopError
from agent.inbox.sample_ids import format_sample_id
from agent.learning.acquisition import AcquisitionConfig, Evidence, propose_batch
from agent.learning.model import TrainedModel, impute
from agent.learning.swarm import propose
from agent.loop.model_files import latest_run, load_model, run_by_version
from agent.loop.recipe_files import (
    ModelSummary,
    PlannedSample,
    about_path,
    about_text,
    recipe_path,
    render,
    write_draft,
    write_recipe_file,
)
from agent.loop.training_data import load_training_set
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, Experiment, ModelRun, Origin, Result
from agent.store.files import sha256_if_there, write_once

log = logging.getLogger(__name__)


class NoModel(LabloopError, RuntimeError):
    """Proposing needs a trained model."""


def known_recipes(engine: Engine, space: DesignSpace) -> list[dict[str, Any]]:
    """Recipes of every experiment so far that name every parameter that applies to them."""
    with Session(engine) as session:
        recipes = session.exec(select(Experiment.parameters)).all()
    return [space.blank_inactive(r) for r in recipes if space.complete(r)]


def batch_of_model(engine: Engine, version: int) -> Batch | None:
    with Session(engine) as session:
        return session.exec(select(Batch).where(Batch.model_version == version)).first()


def plan_batch(
    engine: Engine, settings: Settings, space: DesignSpace, run: ModelRun
) -> list[PlannedSample]:
    """The next batch from the model of ``run``, by the configured strategy; samples not yet
    numbered."""
    model = load_model(run)
    if settings.strategy == "paper":
        return _paper_batch(engine, settings, space, model, run.version)
    picks = propose_batch(
        model, space, gather_evidence(engine, space), acquisition_config(settings)
    )
    return [
        PlannedSample("", p.recipe, p.mean_mah_g, p.std_mah_g, p.p_success, run.version, p.probe)
        for p in picks
    ]


def predicted_as_proposed(
    model: TrainedModel, space: DesignSpace, recipe: dict[str, Any], strategy: str
) -> tuple[float, float, float]:
    """What a proposal by ``strategy`` states of ``recipe``: mean, 1 sigma of a measurement,
    P(success). An edited draft sample is predicted again this way, so that its numbers mean
    what its neighbours' mean (the paper's rule states the GBM and its classifier; the
    default, the belief the acquisition scored)."""
    if strategy == "paper":
        p = model.predict(space, [recipe])
        return float(p.mean_mah_g[0]), float(p.std_mah_g[0]), float(p.p_success[0])
    b = model.belief(space.features([recipe]))
    return float(b.mean_mah_g[0]), float(b.std_mah_g[0]), float(b.p_success[0])


def acquisition_config(settings: Settings) -> AcquisitionConfig:
    return AcquisitionConfig(
        n=settings.batch_size,
        max_probes=settings.max_probes,
        probe_until=settings.probe_until,
        global_share=settings.global_share,
        trust_region=settings.trust_region,
        particles=settings.pso_particles,
        iterations=settings.pso_iterations,
        seed=settings.seed,
    )


def gather_evidence(engine: Engine, space: DesignSpace) -> Evidence:
    """What the acquisition needs from the database (see `agent.learning.acquisition.Evidence`)."""
    training = load_training_set(engine)
    return Evidence(
        tried=impute(training.outcome_recipes, space),
        measured=impute(training.recipes, space),
        made=known_recipes(engine, space),
        improved=batch_improvements(engine),
    )


def batch_improvements(engine: Engine) -> list[bool]:
    """Per finished batch, in order: did its best ok result beat every earlier one (the
    history's included)?"""
    with Session(engine) as session:
        rows = session.exec(
            select(Batch.number, Batch.state, Result.discharge_mah_g)
            .select_from(Experiment)
            .join(Result, Result.experiment_id == Experiment.id)
            .join(Batch, Batch.id == Experiment.batch_id, isouter=True)
            .where(Result.outcome == Outcome.OK, Result.discharge_mah_g.is_not(None))
        ).all()
    frame = pd.DataFrame(rows, columns=["batch", "state", "capacity"])
    before = frame[frame["batch"].isna()]["capacity"].max()
    best = float(before) if pd.notna(before) else -np.inf
    finished = frame[frame["state"].isin([BatchState.COMPLETE, BatchState.TRAINED])]
    improved = []
    for _, own in finished.groupby("batch", sort=True):
        top = float(own["capacity"].max())
        improved.append(top > best)
        best = max(best, top)
    return improved


def _paper_batch(
    engine: Engine, settings: Settings, space: DesignSpace, model: TrainedModel, version: int
) -> list[PlannedSample]:
    """The paper's rule: the swarm maximises (mean + kappa * std) * P(success) and the ten
    best grid points at least ``min_distance`` apart form the batch."""
    kappa, weigh = settings.kappa, settings.use_success_probability

    def score(features: pd.DataFrame) -> np.ndarray:
        predicted = model.predict_features(features)
        value = predicted.mean_mah_g + kappa * predicted.std_mah_g
        return value * predicted.p_success if weigh else value

    proposal = propose(
        space,
        score,
        n=settings.batch_size,
        exclude=known_recipes(engine, space),
        particles=settings.pso_particles,
        iterations=settings.pso_iterations,
        min_distance=settings.min_distance,
        seed=settings.seed,
    )
    predicted = model.predict(space, proposal.recipes)
    return [
        PlannedSample(
            sample_id="",
            recipe=recipe,
            predicted_mah_g=float(predicted.mean_mah_g[i]),
            uncertainty_mah_g=float(predicted.std_mah_g[i]),
            p_success=float(predicted.p_success[i]),
            model_version=version,
        )
        for i, recipe in enumerate(proposal.recipes)
    ]


def propose_next_batch(
    engine: Engine, settings: Settings, space: DesignSpace, run: ModelRun | None = None
) -> Batch | None:
    """The batch proposed from ``run`` (default: the latest model), made at most once.

    None when the campaign's budget (``max_batches``) is spent.
    """
    run = run or latest_run(engine)
    if run is None:
        raise NoModel("no trained model yet: import history and run `labloop retrain` first")
    if (existing := batch_of_model(engine, run.version)) is not None:
        return _ensure_file(engine, space, existing)
    if settings.max_batches is not None and _batch_count(engine) >= settings.max_batches:
        log.info("campaign budget of %d batches reached: nothing proposed", settings.max_batches)
        return None
    planned = plan_batch(engine, settings, space, run)
    with Session(engine, expire_on_commit=False) as session:
        number = (session.exec(select(func.max(Batch.number))).one() or 0) + 1
        batch = Batch(
            number=number,
            state=BatchState.PROPOSED,
            recipe_file=str(recipe_path(settings.recipes, number)),
            model_version=run.version,
            approval_required=settings.approval == "required",
        )
        session.add(batch)
        session.flush()
        for slot, sample in enumerate(planned, start=1):
            session.add(
                Experiment(
                    sample_id=format_sample_id(number, slot),
                    batch_id=batch.id,
                    origin=Origin.PROPOSED,
                    parameters=sample.recipe,
                    predicted_mah_g=sample.predicted_mah_g,
                    predicted_std_mah_g=sample.uncertainty_mah_g,
                    p_success=sample.p_success,
                    model_version=run.version,
                    probe=sample.probe,
                )
            )
        try:
            session.commit()
        except IntegrityError:  # proposed by another worker a moment ago
            session.rollback()
            return _ensure_file(engine, space, batch_of_model(engine, run.version))
    log.info("batch %d proposed from model v%d", number, run.version)
    return _ensure_file(engine, space, batch)


def _batch_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.max(Batch.number))).one() or 0


def samples_of(engine: Engine, batch: Batch) -> list[PlannedSample]:
    with Session(engine) as session:
        experiments = session.exec(
            select(Experiment).where(Experiment.batch_id == batch.id).order_by(Experiment.sample_id)
        ).all()
    return [
        PlannedSample(
            e.sample_id, e.parameters, e.predicted_mah_g, e.predicted_std_mah_g, e.p_success,
            e.model_version, e.probe,
        )
        for e in experiments
    ]  # fmt: skip


def draft_path(batch: Batch) -> Path:
    """Where a batch awaiting approval is shown for review: never a file the lab follows."""
    path = Path(batch.recipe_file)
    return path.parent / "drafts" / path.name


def _ensure_file(engine: Engine, space: DesignSpace, batch: Batch) -> Batch:
    """Write the batch's recipe file from its rows if it is not there (crash after commit).

    A batch awaiting approval gets a draft instead (rewritten after each edit); its recipe
    file is written when it is approved.
    """
    if batch.awaiting_approval:
        write_draft(draft_path(batch), space, samples_of(engine, batch))
        return batch
    path = Path(batch.recipe_file)
    if batch.recipe_sha256 is not None:
        return batch
    samples = samples_of(engine, batch)
    expected = hashlib.sha256(render(space, samples)).hexdigest()
    with suppress(FileExistsError):  # written by a concurrent call or before a crash
        write_recipe_file(path, space, samples)
    found = sha256_if_there(path)
    if found != expected:
        log.error("%s is not the file labloop wrote for batch %d: left alone", path, batch.number)
        return batch
    with Session(engine) as session:
        session.exec(update(Batch).where(Batch.id == batch.id).values(recipe_sha256=expected))
        session.commit()
    batch.recipe_sha256 = expected
    draft_path(batch).unlink(missing_ok=True)
    _write_about(engine, batch)
    return batch


def _write_about(engine: Engine, batch: Batch) -> None:
    """The text beside the recipe file saying what its columns mean and which model made it."""
    path = Path(batch.recipe_file)
    run = run_by_version(engine, batch.model_version)
    if run is None:  # a batch from a recipe file the lab wrote itself
        return
    model = ModelSummary(run.version, run.n_train, run.cv_rmse, run.cv_r2, run.region_cv_rmse)
    with suppress(FileExistsError):  # the same text, written before a crash
        write_once(about_path(path), about_text(path.name, batch.number, model).encode())


def recipe_is_ours(batch: Batch) -> bool:
    """The batch's recipe file is there, byte for byte as labloop wrote it."""
    return batch.recipe_sha256 is not None and (
        sha256_if_there(Path(batch.recipe_file)) == batch.recipe_sha256
    )


def release(engine: Engine, space: DesignSpace, batch: Batch) -> Batch:
    """Write the recipe file of an approved batch (idempotent)."""
    return _ensure_file(engine, space, batch)
