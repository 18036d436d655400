"""The acquisition: blind spots raise the uncertainty, feasibility is unknown far away, the
trust region follows the batches, probes are capped and marked, the batch is ten bets."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from agent.lab import generate_history
from agent.lab.history import ONE_VALUE
from agent.learning.acquisition import (
    GLOBAL,
    PROBE,
    AcquisitionConfig,
    Evidence,
    expected_improvement,
    propose_batch,
    split_space,
    trust_length,
    value_counts,
)
from agent.learning.model import LearningConfig, fit, impute
from agent.space.design import DesignSpace
from benchmarks.uncertainty import training_set

SPACE = DesignSpace.load()
CONFIG = LearningConfig(n_iter=3, folds=3, ensemble=3, compare=False, seed=1)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return generate_history(2, 300)


@pytest.fixture(scope="module")
def trained(history):
    return fit(training_set(history, SPACE), SPACE, CONFIG)


def evidence(history: pd.DataFrame, improved=()) -> Evidence:
    training = training_set(history, SPACE)
    return Evidence(
        tried=impute(training.outcome_recipes, SPACE),
        measured=impute(training.recipes, SPACE),
        made=history[list(SPACE.columns)].to_dict("records"),
        improved=list(improved),
    )


def centre(history: pd.DataFrame) -> dict:
    """The history's most common recipe values: its centre."""
    row = {}
    for name in SPACE.declared:
        row[name] = history[name].mode().iloc[0]
    return SPACE.decode(SPACE.encode(row))


def test_expected_improvement_rewards_mean_and_doubt():
    ei = expected_improvement(np.array([210.0, 220.0, 220.0, 230.0]),
                              np.array([1.0, 1.0, 5.0, 1.0]), best=225.0)  # fmt: skip
    assert ei[0] < 1e-6  # far below the incumbent, little doubt: nothing to gain
    assert ei[1] < ei[2]  # same mean, more doubt: more to gain
    assert ei[3] == pytest.approx(5.0, abs=0.01)  # surely above: the margin


def test_trust_region_grows_after_success_halves_after_failure_and_restarts():
    config = AcquisitionConfig(trust_initial=0.2, trust_min=0.05, trust_max=0.4)
    assert trust_length([], config) == 0.2
    assert trust_length([True], config) == 0.4
    assert trust_length([True, True], config) == 0.4  # capped
    assert trust_length([False], config) == 0.1
    assert trust_length([False, False, False], config) == 0.2  # collapsed: restarted
    assert trust_length([True, False], config) == 0.2


def test_one_value_parameters_are_pinned_and_left_to_probes(history):
    counts = value_counts(SPACE, history)
    incumbent = centre(history)
    split = split_space(SPACE, counts, incumbent, probe_until=3)
    for name, value in ONE_VALUE.items():
        assert split.known.parameters[name].kind == "fixed"
        assert split.known.parameters[name].value == value
        assert value not in split.to_probe[name] and split.to_probe[name]
    assert split.known.parameters["calcination_temp_c"].kind == "continuous"  # varied: searched
    # a value tried often enough is known; the incumbent's value always is
    tried = pd.concat([history] + [history.head(3).assign(atmosphere="air")])
    assert "atmosphere" not in split_space(SPACE, value_counts(SPACE, tried), incumbent, 3).to_probe
    assert "atmosphere" in split_space(SPACE, value_counts(SPACE, tried), incumbent, 4).to_probe
    own = split_space(SPACE, counts, incumbent | {"atmosphere": "air"}, probe_until=3)
    assert "atmosphere" not in own.to_probe


def test_uncertainty_of_an_untried_value_is_at_least_three_times_the_centres(history, trained):
    model, _ = trained
    middle = centre(history)
    rows = [middle, middle | {"atmosphere": "air"}, middle | {"li_source": "Li2CO3"},
            middle | {"dopant_ti": 0.002}]  # fmt: skip
    belief = model.belief(SPACE.features(rows))
    assert (belief.std_mah_g[1:] >= 3 * belief.std_mah_g[0]).all(), belief.std_mah_g
    # the bootstrap spread of the same GBM does not see it (why the GP is there)
    bootstrap = model.predict_features(SPACE.features(rows)).std_mah_g
    assert not (bootstrap[1:] >= 3 * bootstrap[0]).all()


def test_success_is_unknown_far_from_tried_recipes_and_likely_near_them(history, trained):
    model, _ = trained
    middle = centre(history)
    far = middle | {"atmosphere": "air", "li_source": "Li2CO3", "calcination_temp_c": 650.0}
    p_centre, p_far = model.belief(SPACE.features([middle, far])).p_success
    assert p_centre > 0.85
    assert abs(p_far - 0.5) < 0.1  # the prior, not the classifier's 1.00
    assert model.feasibility.classifier_p(SPACE.features([far]))[0] > p_far


@pytest.fixture(scope="module")
def batch(history, trained):
    model, _ = trained
    config = AcquisitionConfig(max_probes=2, global_share=0.2, particles=20, iterations=30,
                               seed=3)  # fmt: skip
    return propose_batch(model, SPACE, evidence(history), config)


def test_a_batch_is_ten_distinct_untried_valid_recipes(history, batch):
    assert len(batch) == 10
    keys = {tuple(p.recipe[n] for n in SPACE.declared) for p in batch}
    assert len(keys) == 10
    tried = {tuple(r[n] for n in SPACE.declared) for r in evidence(history).made}
    assert not keys & tried
    for pick in batch:
        SPACE.validate(pick.recipe)


def test_probes_are_capped_marked_and_alone_in_using_untried_values(history, batch):
    roles = Counter(p.role for p in batch)
    assert roles[PROBE] <= 2 and roles[GLOBAL] <= 2
    for pick in batch:
        untried = [n for n, v in ONE_VALUE.items() if pick.recipe[n] != v]
        if pick.role == PROBE:
            name, value = pick.probe.split("=")
            assert untried == [name]  # one parameter moved, and it is named as written
            assert value == str(pick.recipe[name]) or float(value) == pick.recipe[name]
            p = SPACE.parameters[name]
            if p.gridded:  # a small step into the unknown, not the far end of the range
                assert abs(pick.recipe[name] - ONE_VALUE[name]) <= 2 * p.step + 1e-9
        else:
            assert pick.probe is None and untried == []


def test_a_batch_is_ten_bets_not_ten_copies_of_one(batch):
    means = [p.mean_mah_g for p in batch]
    assert max(means) - min(means) > 0.05
    scores = [p.acquisition for p in batch]
    assert scores[0] == max(scores)  # the best bet first; later ones judged after it
    assert all(0.0 < p.p_success <= 1.0 and p.std_mah_g > 0 for p in batch)


def test_failures_nearby_lower_p_success_and_nothing_nearby_is_the_prior():
    from agent.learning.feasibility import Feasibility
    from agent.learning.uncertainty import Scaling

    columns = ["calcination_temp_c", "li_ratio"]
    scaling = Scaling.of(SPACE, columns)
    tried = pd.DataFrame({"calcination_temp_c": [700.0] * 20 + [800.0] * 3,
                          "li_ratio": [1.03] * 20 + [1.08] * 3})  # fmt: skip
    success = np.array([1.0] * 20 + [0.0] * 3)
    model = Feasibility(scaling, scaling(tried), success, None, success.mean(), 0.5, columns)
    at = pd.DataFrame({"calcination_temp_c": [700.0, 800.0, 650.0],
                       "li_ratio": [1.03, 1.08, 0.98]})  # fmt: skip
    p_tried, p_failed, p_far = model.p_success(at)
    assert p_tried > 0.9  # twenty successes
    assert p_failed < 0.2  # three failures
    assert p_far == pytest.approx(0.5, abs=0.01)  # nothing tried: the prior
    alone = Feasibility(scaling, scaling(tried), success, None, success.mean(), None, columns)
    assert alone.p_success(at)[1] > 0.8  # the paper's way: the base rate everywhere


def test_failures_left_out_are_out_of_the_feasibility_model_too(history):
    training = training_set(history, SPACE)
    assert (training.success == 0).sum() >= 2
    kept, _ = fit(training, SPACE, CONFIG)
    left_out, _ = fit(training, SPACE, replace(CONFIG, train_on_failures=False))
    assert left_out.classifier is None and kept.classifier is not None
    assert len(left_out.feasibility.tried) == int(training.success.sum())
    assert left_out.feasibility.success.min() == 1.0
    assert len(kept.feasibility.tried) == len(training.success)
