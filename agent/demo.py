"""The hands-off demo: the live loop closed on the virtual lab.

History imported, batch 1 proposed from it, then the real services run (the inbox watcher
and Celery workers on the configured broker) while the virtual lab plays the lab staff:
it reads each new recipe file, "makes and tests" the samples and drops their cycler
exports into the inbox one by one. The tenth result triggers the retrain and the next
recipe file, and the lab starts over, for ``batches`` batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.config import Settings
from agent.cycler.base import Outcome
from agent.errors import LabloopError
from agent.inbox.watcher import Submit
from agent.lab import BASELINE, VirtualLab, lab_named, write_history
from agent.loop.batches import batch_by_number, campaign_space
from agent.loop.history_import import import_history
from agent.loop.propose import propose_next_batch
from agent.loop.recipe_files import read_recipe_file
from agent.loop.retrain import retrain
from agent.reports.figures import write_figures
from agent.reports.per_batch import BatchSummary, batch_summaries
from agent.space.design import DEFAULT_PATH
from agent.store.db import Batch, BatchState, Experiment, Result, get_engine
from workers import supervisor

log = logging.getLogger(__name__)

DEFAULT_HISTORY = DEFAULT_PATH.parent / "historical.csv"
T = TypeVar("T")


class DemoStalled(LabloopError, RuntimeError):
    """The loop did not move on in time; the message says where it stopped."""


@dataclass(frozen=True)
class DemoConfig:
    batches: int = 3
    seed: int = 0
    # seconds between two exports the lab drops: results arrive over time, not at once
    pace_seconds: float = 0.3
    # the shipped history; the other labs of the family write their own (seeded) first
    history: Path = DEFAULT_HISTORY
    # the virtual lab of the family (agent.lab.LABS)
    lab: str = "baseline"
    # how long one batch may take from recipe file to the next model before giving up
    batch_timeout_seconds: float = 900.0


@dataclass(frozen=True)
class Progress:
    """Where one batch stands: the history's rows are not counted."""

    batch: int
    stage: str  # "lab", "ingesting", "training", "done"
    samples: int  # in the batch
    recorded: int  # samples with a result
    failures: int  # their failed tests


Report = Callable[[Progress], None]


def run_demo(
    settings: Settings, config: DemoConfig, submit: Submit, report: Report
) -> list[BatchSummary]:
    """Run the whole loop for ``config.batches`` batches; returns the per-batch table."""
    settings.ensure_folders()
    engine = get_engine(settings.database_url)
    space = campaign_space(settings)
    truth = lab_named(config.lab)
    history = config.history
    if truth is not BASELINE:
        history = write_history(settings.home / f"history-{truth.name}.csv", config.seed, lab=truth)
    import_history(engine, history, space)
    propose_next_batch(engine, settings, space, retrain(engine, settings, space))
    lab = VirtualLab(config.seed, space, truth)
    logs = settings.state / "logs"
    services = supervisor.Workers(supervisor.machine_workers(2, logs))
    try:
        with supervisor.watching(settings, submit):
            for number in range(1, config.batches + 1):
                _run_one_batch(engine, settings, lab, number, config, report)
    finally:
        services.stop()
    write_figures(engine, space, settings.home / "report")
    return batch_summaries(engine)


def _run_one_batch(
    engine: Engine,
    settings: Settings,
    lab: VirtualLab,
    number: int,
    config: DemoConfig,
    report: Report,
) -> None:
    space = lab.space
    batch = _wait_for(lambda: _batch(engine, number), config.batch_timeout_seconds,
                      f"batch {number} was never proposed")  # fmt: skip
    samples = read_recipe_file(Path(batch.recipe_file), space)
    for sample in samples:
        lab.run_batch([sample.sample_id], [sample.recipe], settings.inbox)
        report(_progress(engine, number, "lab"))
        time.sleep(config.pace_seconds)

    def trained() -> bool:
        current = _batch(engine, number)
        stage = {BatchState.COMPLETE: "training", BatchState.TRAINED: "done"}.get(
            current.state, "ingesting"
        )
        report(_progress(engine, number, stage))
        return current.state == BatchState.TRAINED

    _wait_for(trained, config.batch_timeout_seconds,
              f"batch {number} was not trained in time")  # fmt: skip
    if number < config.batches:
        _wait_for(lambda: _batch(engine, number + 1), config.batch_timeout_seconds,
                  f"batch {number + 1} was not proposed in time")  # fmt: skip


def _batch(engine: Engine, number: int) -> Batch | None:
    """Batch ``number`` once its recipe file is there for the lab to read."""
    batch = batch_by_number(engine, number)
    if batch is None or not batch.recipe_file or not Path(batch.recipe_file).exists():
        return None
    return batch


def _progress(engine: Engine, number: int, stage: str) -> Progress:
    with Session(engine) as session:
        samples = session.exec(
            select(Experiment.id).join(Batch).where(Batch.number == number)
        ).all()
        tests = session.exec(
            select(Result.experiment_id, Result.outcome).where(Result.experiment_id.in_(samples))
        ).all()
    recorded = {experiment for experiment, _ in tests}
    failures = sum(outcome == Outcome.FAILED for _, outcome in tests)
    return Progress(number, stage, len(samples), len(recorded), failures)


def _wait_for(check: Callable[[], T | None], timeout: float, message: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise DemoStalled(message)
