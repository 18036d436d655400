"""The retrain step: every recorded experiment -> a new model version, stored once."""

from __future__ import annotations

import logging
import time
from contextlib import suppress

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from agent.config import Settings
from agent.learning.model import LearningConfig, fit
from agent.loop.model_files import latest_run, model_path, next_version, save_model, set_aside
from agent.loop.training_data import load_training_set
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, ModelRun, utcnow

log = logging.getLogger(__name__)

# a model file this old without its database row was left by a crash, not a retrain at work
ORPHAN_AFTER_SECONDS = 30.0


def learning_config(settings: Settings) -> LearningConfig:
    return LearningConfig(
        n_iter=settings.search_iterations,
        folds=settings.cv_folds,
        ensemble=settings.ensemble_size,
        compare=settings.compare_models,
        seed=settings.seed or 0,
        uncertainty=settings.uncertainty,
        feasibility_prior=settings.feasibility_prior,
        train_on_failures=settings.train_on_failures,
    )


def run_for_batch(engine: Engine, batch_number: int) -> ModelRun | None:
    with Session(engine) as session:
        return session.exec(select(ModelRun).where(ModelRun.trigger_batch == batch_number)).first()


def retrain(
    engine: Engine,
    settings: Settings,
    space: DesignSpace,
    trigger_batch: int | None = None,
    *,
    warm: bool = True,
) -> ModelRun:
    """Train and store a new model version. A batch triggers at most one retrain: asked
    again (a redelivered task), this returns the run it already has. ``warm`` lets the last
    model's best hyperparameters compete with the new search's."""
    if trigger_batch is not None and (done := run_for_batch(engine, trigger_batch)):
        log.info("batch %s already trained as model v%s", trigger_batch, done.version)
        return done
    training = load_training_set(engine)
    previous = latest_run(engine) if warm else None
    model, report = fit(
        training, space, learning_config(settings), previous.hyperparameters if previous else None
    )
    while True:
        version = next_version(engine)
        try:
            path, sha = save_model(model, settings.models, version)
        except FileExistsError:
            # another retrain holds this version: wait for its row, then take what it did
            time.sleep(1.0)
            if trigger_batch is not None and (done := run_for_batch(engine, trigger_batch)):
                return done
            if next_version(engine) > version:
                continue
            leftover = model_path(settings.models, version)
            with suppress(FileNotFoundError):  # set aside by another retrain meanwhile
                if time.time() - leftover.stat().st_mtime > ORPHAN_AFTER_SECONDS:
                    # no retrain commits this long after writing its file: a crash left it
                    log.warning("model file %s has no database row: set aside as %s",
                                leftover, set_aside(leftover))  # fmt: skip
            continue
        run = ModelRun(
            version=version,
            trigger_batch=trigger_batch,
            n_train=training.size,
            n_outcomes=len(training.success),
            counts=training.counts,
            hyperparameters=report.hyperparameters,
            comparison=report.comparison,
            cv_rmse=report.cv_rmse,
            cv_r2=report.cv_r2,
            region_cv_rmse=report.region_rmse,
            timings=report.timings,
            parity={
                "sample_id": training.sample_ids,
                "measured": training.capacity_mah_g.tolist(),
                "predicted": report.oof_predictions,
            },
            model_path=str(path),
            model_sha256=sha,
        )
        with Session(engine, expire_on_commit=False) as session:
            session.add(run)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                if trigger_batch is not None and (done := run_for_batch(engine, trigger_batch)):
                    return done  # another worker trained this batch a moment ago
                continue
            if trigger_batch is not None:
                session.exec(
                    update(Batch)
                    .where(Batch.number == trigger_batch, Batch.state == BatchState.COMPLETE)
                    .values(state=BatchState.TRAINED, trained_at=utcnow())
                )
                session.commit()
        log.info("model v%d: %d rows, CV RMSE %.2f", version, training.size, report.cv_rmse)
        return run
