"""The sample-efficiency benchmark (benchmarks/campaign.py), small: one seed, two batches.

Checks what every number of the full run rests on: each method's experiments and curves,
labloop's proposals through the real loop, the outcome -> Result mapping, and the metric
definitions on hand-made curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.lab import Kind, LabOutcome, generate_history, true_optimum
from agent.space.design import DesignSpace
from benchmarks.campaign import (
    METHODS,
    Config,
    history_best,
    history_observations,
    result_row,
    run_job,
    trials_frame,
)
from benchmarks.campaign_report import curves
from benchmarks.metrics import (
    acceleration_factor,
    batches_to_within,
    best_so_far,
    enhancement_factor,
    mape,
    median_batches_to_hit,
    regret,
)
from benchmarks.strategies import BaybeBotorch

SEED = 0
TINY = Config(
    batches=2,
    history_rows=150,
    labloop={"pso_particles": 30, "pso_iterations": 5, "search_iterations": 1, "cv_folds": 2,
             "ensemble_size": 2, "compare_models": False},
    candidates=200,
    bo="sklearn",
)  # fmt: skip


@pytest.fixture(scope="module")
def space() -> DesignSpace:
    return DesignSpace.load()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return trials_frame([t for m in METHODS for t in run_job(m, SEED, TINY)])


def test_each_curve_is_the_best_true_capacity_of_recipes_that_tested_ok(frame, space):
    """Recomputed row by row from the trials: a failed experiment never counts, however
    good its recipe, and the regret is the optimum minus the curve's end."""
    baseline = history_best(generate_history(SEED, TINY.history_rows, space))
    optimum = true_optimum(space)[1]
    for method in METHODS:
        own = frame[frame["method"] == method]
        expected, best = [baseline], baseline
        for batch in range(1, TINY.batches + 1):
            rows = own[own["batch"] == batch]
            for true_mah_g, status in zip(rows["true_mah_g"], rows["status"], strict=True):
                if status == "ok":
                    best = max(best, true_mah_g)
            expected.append(best)
        curve = curves(frame, {SEED: baseline}, method, TINY.batches)[0]
        assert curve.tolist() == pytest.approx(expected), method
        assert regret(curve, optimum) == pytest.approx(optimum - expected[-1]), method


@pytest.mark.parametrize("method", ["random", "ofat"])
def test_random_and_ofat_spend_ten_experiments_per_batch(frame, method):
    counts = frame[frame["method"] == method].groupby("batch").size()
    assert counts.to_dict() == {1: 10, 2: 10}


def test_ofat_varies_one_parameter_per_batch(frame, space):
    first = frame[(frame["method"] == "ofat") & (frame["batch"] == 1)]
    varied = [name for name in space.declared if first[name].nunique() > 1]
    assert varied == ["calcination_temp_c"]
    assert first["calcination_temp_c"].nunique() == 10


def test_labloop_proposes_valid_new_recipes(frame, space):
    history = generate_history(SEED, TINY.history_rows, space)
    seen = {space.grid.locate(r).tobytes() for r in history[list(space.columns)].to_dict("records")}
    own = frame[frame["method"] == "labloop"]
    assert len(own) > 0 and own["predicted_mah_g"].notna().all()
    for batch in range(1, TINY.batches + 1):
        recipes = own.loc[own["batch"] == batch, list(space.columns)].to_dict("records")
        keys = []
        for recipe in recipes:
            space.validate(recipe)
            keys.append(space.grid.locate(recipe).tobytes())
        assert len(set(keys)) == len(keys) and not set(keys) & seen
        seen |= set(keys)


@pytest.mark.parametrize(
    ("kind", "failure_class"),
    [(Kind.SYNTHESIS_FAILED, "synthesis"), (Kind.SHORT, "cell"), (Kind.NO_DISCHARGE, "cell"),
     (Kind.DEAD, "cell"), (Kind.ABORTED, "measurement")],
)  # fmt: skip
def test_failed_outcomes_are_recorded_as_ingest_records_them(kind, failure_class):
    outcome = LabOutcome({}, kind, 221.0, None, "why", None)
    row = result_row(7, outcome, "campaign:B001-S01")
    assert (row.experiment_id, row.outcome, row.failure_class) == (7, "failed", failure_class)
    assert (row.discharge_mah_g, row.reason) == (None, "why")


def test_an_ok_outcome_is_recorded_with_its_measured_capacity():
    row = result_row(7, LabOutcome({}, Kind.OK, 221.0, 220.4, None, None), "campaign:B001-S01")
    assert (row.outcome, row.discharge_mah_g, row.failure_class) == ("ok", 220.4, None)


def test_history_statuses():
    history = pd.DataFrame({
        "initial_discharge_mah_g": [220.0, np.nan, np.nan],
        "status": ["ok", "ok", "failed"],
    })  # fmt: skip
    space = DesignSpace.from_dict({"parameters": {"x": {"kind": "continuous", "low": 0,
                                                        "high": 1, "step": 0.5}}})  # fmt: skip
    observed = history_observations(history.assign(x=0.5), space)
    assert observed["status"].tolist() == ["ok", "unmeasured", "synthesis"]
    assert observed["measured"].notna().tolist() == [True, False, False]


def test_best_so_far_regret_and_batches_to_within():
    curve = best_so_far(220.0, [-np.inf, 222.0, 221.0, 229.5])
    assert curve.tolist() == [220.0, 220.0, 222.0, 222.0, 229.5]
    assert regret(curve, 230.0) == pytest.approx(0.5)
    assert batches_to_within(curve, 230.0) == 4
    assert batches_to_within(curve[:4], 230.0) == np.inf


def test_enhancement_factor_on_median_gains():
    # two seeds with different history bests: gains [0, 2, 4] and [0, 4, 6] -> median [0, 3, 5]
    method = np.array([[220.0, 222.0, 224.0], [210.0, 214.0, 216.0]])
    random = np.array([[220.0, 221.0, 222.0], [210.0, 211.0, 212.0]])  # median gain [0, 1, 2]
    assert enhancement_factor(method, random, 1).value == pytest.approx(3.0)
    assert enhancement_factor(method, random, 2).value == pytest.approx(2.5)
    flat = np.full((2, 3), 220.0)
    assert enhancement_factor(method, flat, 1).value == np.inf
    assert np.isnan(enhancement_factor(flat, flat, 1).value)


def test_acceleration_factor_and_its_cap():
    method = np.array([[0.0, 5.0, 5.0, 5.0, 5.0]])
    random = np.array([[0.0, 1.0, 2.0, 5.0, 6.0]])
    assert acceleration_factor(method, random).value == 3.0  # random needs 3, method 1
    slow = np.array([[0.0, 1.0, 2.0]])
    capped = acceleration_factor(np.array([[0.0, 3.0, 5.0]]), slow)
    assert (capped.value, capped.lower_bound) == (1.5, True)  # (B + 1) / 2 batches
    assert str(capped) == "≥ 1.50"
    assert np.isnan(acceleration_factor(slow * 0, slow).value)


def test_median_batches_for_random_to_hit_a_level():
    assert median_batches_to_hit(0.5, 1) == 1  # a coin: half the runs hit at once
    assert median_batches_to_hit(0.1, 1) == 7  # 0.9^6 = 0.53 > 0.5 >= 0.9^7
    assert median_batches_to_hit(0.1, 10) == 1  # 1 - 0.9^10 = 0.65 per batch
    assert median_batches_to_hit(0.0, 10) == np.inf


def test_mape():
    assert mape([110.0, 90.0], [100.0, 100.0]) == pytest.approx(10.0)


@pytest.mark.bench_extra
def test_baybe_proposes_new_candidates(space):
    observed = history_observations(generate_history(SEED, TINY.history_rows, space), space)
    plan = BaybeBotorch(space, SEED, batch_size=4, candidates=100, threads=1).propose(observed, 1)
    assert len(plan.recipes) == 4 and len(plan.predicted_mah_g) == 4
    for recipe in plan.recipes:
        space.validate(recipe)
