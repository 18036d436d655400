"""The training table, built from every recorded experiment, and what each outcome means.

How each kind of result enters training (README, "How results teach the model"):

* ``ok``: the capacity regressor's target. Several ok results of one sample (re-tests)
  are averaged. The sample also counts as a success for the success classifier.
* ``failed / synthesis``: the recipe itself failed. No capacity (never a fake zero), but a
  failure example for the success classifier: it marks an infeasible region.
* ``failed / cell``: an assembly or cell fault says nothing about the recipe: left out of
  both models. A later ok re-test of the same sample counts as usual.
* ``failed / measurement``: an artifact (aborted test, cutoff not reached, implausible
  value): flagged and left out of both models.
* ``failed / untested``: the file held no charge and no discharge (rest, impedance only):
  the test has not run yet, so it is left out as if there were no result.
* an experiment with no result yet, or a historical row without a measurement
  (under-reported): left out, counted as ``unmeasured``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.cycler.base import Outcome
from agent.learning.training_set import TrainingSet
from agent.loop.batches import TEST_RAN
from agent.store.db import Experiment, Result


def _verdict(results: pd.DataFrame) -> str:
    """What an experiment's results say about its recipe (see the module docstring)."""
    if (results["outcome"] == Outcome.OK).any():
        return "ok"
    classes = set(results["failure_class"].dropna())
    if "synthesis" in classes:
        return "synthesis"
    if "measurement" in classes:
        return "measurement"
    if "cell" in classes:
        return "cell"
    return "unmeasured"


def load_training_set(engine: Engine) -> TrainingSet:
    """Every experiment's recipe with what its results teach (SQLite or PostgreSQL)."""
    with Session(engine) as session:
        experiments = session.exec(
            select(Experiment.id, Experiment.sample_id, Experiment.parameters)
        ).all()
        results = session.exec(
            select(Result.experiment_id, Result.outcome, Result.failure_class,
                   Result.discharge_mah_g).where(TEST_RAN)
        ).all()  # fmt: skip
    frame = pd.DataFrame(
        results, columns=["experiment_id", "outcome", "failure_class", "discharge_mah_g"]
    )
    by_experiment = dict(tuple(frame.groupby("experiment_id"))) if len(frame) else {}
    rows, targets, ids, outcome_rows, success = [], [], [], [], []
    counts = dict.fromkeys(("ok", "synthesis", "cell", "measurement", "unmeasured"), 0)
    for experiment_id, sample_id, parameters in experiments:
        own = by_experiment.get(experiment_id)
        verdict = "unmeasured" if own is None else _verdict(own)
        if verdict == Outcome.OK:
            ok = own[(own["outcome"] == Outcome.OK) & own["discharge_mah_g"].notna()]
            if ok.empty:  # marked ok but the number was never reported
                verdict = "unmeasured"
            else:
                rows.append(parameters)
                targets.append(float(ok["discharge_mah_g"].mean()))
                ids.append(sample_id)
        counts[verdict] += 1
        if verdict in ("ok", "synthesis"):
            outcome_rows.append(parameters)
            success.append(1 if verdict == Outcome.OK else 0)
    return TrainingSet(
        recipes=pd.DataFrame(rows),
        capacity_mah_g=np.asarray(targets, dtype=float),
        sample_ids=ids,
        outcome_recipes=pd.DataFrame(outcome_rows),
        success=np.asarray(success, dtype=int),
        counts=counts,
    )
