"""Model files: written once under a new version, checked by hash before they are loaded."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import joblib
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.errors import LabloopError
from agent.learning.model import TrainedModel
from agent.store.db import ModelRun
from agent.store.files import write_once


class UntrustedModel(LabloopError, RuntimeError):
    """A model file whose bytes are not the ones labloop wrote: never unpickled."""


def next_version(engine: Engine) -> int:
    with Session(engine) as session:
        return (session.exec(select(func.max(ModelRun.version))).one() or 0) + 1


def model_path(folder: Path, version: int) -> Path:
    return folder / f"model-v{version:04d}.joblib"


def save_model(model: TrainedModel, folder: Path, version: int) -> tuple[Path, str]:
    """Pickle ``model`` to ``folder/model-vNNNN.joblib``; returns the path and its sha256."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    payload = buffer.getvalue()
    path = model_path(folder, version)
    write_once(path, payload)
    return path, hashlib.sha256(payload).hexdigest()


def set_aside(path: Path) -> Path:
    """Move a model file no database row stands for (a crash between file and commit) to
    ``orphaned/`` beside it: kept as evidence, never loaded, never in the way."""
    target = path.parent / "orphaned" / f"{path.stem}.{time.time_ns()}{path.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


def load_model(run: ModelRun) -> TrainedModel:
    """The model of a run, after checking the file is byte for byte the one we wrote."""
    payload = Path(run.model_path).read_bytes()
    if hashlib.sha256(payload).hexdigest() != run.model_sha256:
        raise UntrustedModel(
            f"{run.model_path} does not match the hash recorded for model v{run.version}: "
            "refusing to load it; retrain with `labloop retrain`"
        )
    return joblib.load(io.BytesIO(payload))


def latest_run(engine: Engine) -> ModelRun | None:
    with Session(engine) as session:
        return session.exec(select(ModelRun).order_by(ModelRun.version.desc())).first()


def run_by_version(engine: Engine, version: int | None) -> ModelRun | None:
    """The run of model ``version``; None when there is none (a batch from a recipe file
    the lab wrote itself has no model)."""
    with Session(engine) as session:
        return session.exec(select(ModelRun).where(ModelRun.version == version)).first()
