"""agent.learning.model: the four-model comparison, the GBM search within the paper's ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.learning.model import (
    METRIC_ROWS,
    PAPER_SEARCH_SPACE,
    LearningConfig,
    NotEnoughData,
    compare_models,
    fit,
    impute,
    tune_gbm,
)
from agent.learning.training_set import TrainingSet
from agent.space.design import DesignSpace
from tests.synthetic import capacity

SPACE = DesignSpace.load()
FAST = LearningConfig(n_iter=6, folds=5, ensemble=4, seed=1)


def training_set(rows: int, seed: int = 0, failures: int = 0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    recipes = pd.DataFrame(SPACE.random(rows, rng))
    y = capacity(recipes) + rng.normal(0, 1.0, rows)
    success = np.ones(rows, dtype=int)
    success[:failures] = 0
    return TrainingSet(recipes, y, [f"H{i}" for i in range(rows)], recipes, success)


def test_comparison_has_the_four_models_and_paper_metrics():
    training = training_set(200)
    x = SPACE.features(training.recipes).to_numpy(float)
    table = compare_models(x, training.capacity_mah_g, FAST)
    assert list(table) == ["DT", "RF", "GBM", "NN"]
    for metrics in table.values():
        assert tuple(metrics) == METRIC_ROWS
        assert metrics["RMSE test"] == pytest.approx(np.sqrt(metrics["MSE test"]), rel=0.3)
        assert metrics["RMSE train"] <= metrics["RMSE test"] + 1e-9
    # on a smooth function, boosting beats a single tree out of fold
    assert table["GBM"]["RMSE test"] < table["DT"]["RMSE test"]


def test_the_search_draws_from_the_papers_ranges():
    """Table 2 of the paper: subsample 0.01-1, 50-300 trees, depth 3-8, learning rate
    0.001-0.2, min samples split 2-9 (scipy's randint excludes its upper end)."""
    supports = {name: tuple(float(x) for x in dist.support())
                for name, dist in PAPER_SEARCH_SPACE.items()}  # fmt: skip
    assert supports == {
        "subsample": (0.01, 1.0),
        "n_estimators": (50.0, 300.0),
        "max_depth": (3.0, 8.0),
        "learning_rate": (0.001, 0.2),
        "min_samples_split": (2.0, 9.0),
    }


def test_a_better_warm_start_is_kept_and_a_worse_one_is_not():
    training = training_set(150)
    x, y = SPACE.features(training.recipes).to_numpy(float), training.capacity_mah_g
    one_draw = LearningConfig(n_iter=1, folds=3, seed=5)
    cold, cold_rmse = tune_gbm(x, y, one_draw)
    strong = {"subsample": 0.8, "n_estimators": 300, "max_depth": 3, "learning_rate": 0.1,
              "min_samples_split": 2}  # fmt: skip
    weak = strong | {"n_estimators": 50, "learning_rate": 0.001}  # barely moves from the mean
    kept, kept_rmse = tune_gbm(x, y, one_draw, warm_start=strong)
    ignored, ignored_rmse = tune_gbm(x, y, one_draw, warm_start=weak)
    assert kept_rmse < cold_rmse  # the single random draw is worse than the strong setting
    assert kept == strong
    assert (ignored, ignored_rmse) == (cold, cold_rmse)


def test_fit_gives_uncertainty_and_success_probability():
    training = training_set(160, failures=20)
    model, report = fit(training, SPACE, FAST)
    assert report.cv_rmse < 4.0 and report.cv_r2 > 0.5
    assert len(report.oof_predictions) == 160
    recipes = SPACE.random(5, 3)
    predicted = model.predict(SPACE, recipes)
    assert predicted.mean_mah_g.shape == (5,)
    assert (predicted.std_mah_g > 0).all()
    assert ((predicted.p_success >= 0) & (predicted.p_success <= 1)).all()
    assert model.classifier is not None


def test_too_little_data_is_a_clear_error():
    with pytest.raises(NotEnoughData, match="import the lab's history"):
        fit(training_set(5), SPACE, FAST)


def test_impute_fills_old_records():
    frame = pd.DataFrame(SPACE.random(4, 0))
    frame.loc[0, "calcination_temp_c"] = np.nan
    frame.loc[1, "li_source"] = None
    filled = impute(frame.drop(columns=["atmosphere"]), SPACE)
    assert filled["calcination_temp_c"].notna().all()
    assert filled["li_source"].notna().all() and filled["atmosphere"].notna().all()
    SPACE.features(filled)  # every value is now valid for the feature table


def test_one_r2_the_headline_is_the_tuned_gbm_column_of_the_comparison():
    from agent.learning.model import LearningConfig, fit

    config = LearningConfig(n_iter=3, folds=3, ensemble=2, compare=True, seed=1)
    _model, report = fit(training_set(120), SPACE, config)
    assert list(report.comparison) == ["DT", "RF", "GBM", "NN"]
    assert report.comparison["GBM"]["R2 test"] == report.cv_r2
    # the same folds and seed as the search: its best score is the column's test RMSE
    assert report.comparison["GBM"]["RMSE test"] == pytest.approx(report.cv_rmse, rel=1e-9)


def test_the_comparison_runs_on_a_small_history():
    """Twelve rows: the MLP's early stopping would hold out too few to score, and fail."""
    training = training_set(12, failures=0)
    x = SPACE.features(training.recipes).to_numpy(float)
    table = compare_models(x, training.capacity_mah_g, FAST)
    assert list(table) == ["DT", "RF", "GBM", "NN"]
    assert all(np.isfinite(table["NN"][metric]) for metric in METRIC_ROWS)
