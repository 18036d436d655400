"""The proposer: PSO finds a known optimum and returns a distinct, valid, spread-out batch."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.learning.swarm import MIN_DISTANCE, propose
from agent.space.design import DesignSpace

SPACE = DesignSpace.load()
# a known interior optimum on the grid
OPTIMUM = {
    "ni_fraction": 0.94,
    "co_fraction": 0.03,
    "mn_fraction": 0.03,
    "li_ratio": 1.03,
    "li_source": "LiOH",
    "calcination_temp_c": 720.0,
    "calcination_time_h": 12.0,
    "dopant_zr": 0.001,
    "dopant_al": 0.0,
    "dopant_ti": 0.0,
    "dopant_mg": 0.0,
    "dopant_b": 0.0,
    "dopant_nb": 0.0,
    "coating_material": "B",
    "coating_amount": 0.003,
    "coating_temp_c": 380.0,
    "coating_time_h": 4.0,
    "atmosphere": "air",
}
IMPORTANT = ("ni_fraction", "li_ratio", "calcination_temp_c", "coating_temp_c")


def squared_steps(features: pd.DataFrame) -> np.ndarray:
    """Squared grid distance of each feature row from OPTIMUM, computed from the features."""
    total = np.zeros(len(features))
    for name, p in SPACE.declared.items():
        if p.gridded:
            total += ((features[name].to_numpy() - OPTIMUM[name]) / p.step) ** 2
        else:
            total += 1.0 - features[f"{name}={OPTIMUM[name]}"].to_numpy()
    return total


def smooth(features: pd.DataFrame) -> np.ndarray:
    """A smooth bowl, steeper along the important dimensions (in units of their range)."""
    score = np.zeros(len(features))
    for name, p in SPACE.declared.items():
        if p.gridded:
            weight = 10.0 if name in IMPORTANT else 1.0
            score -= weight * ((features[name].to_numpy() - OPTIMUM[name]) / (p.high - p.low)) ** 2
        else:
            score -= 0.5 * (1.0 - features[f"{name}={OPTIMUM[name]}"].to_numpy())
    return score


def sharp(features: pd.DataFrame) -> np.ndarray:
    """One narrow peak: a step away from OPTIMUM already loses most of the score."""
    return 200.0 * np.exp(-squared_steps(features))


def assert_good_batch(space: DesignSpace, recipes: list[dict], min_distance: float) -> None:
    for recipe in recipes:
        space.validate(recipe)
    keys = {tuple(sorted(r.items())) for r in recipes}
    assert len(keys) == len(recipes), "two recipes are identical"
    for a, b in itertools.combinations(recipes, 2):
        assert space.grid_distance(a, b) >= min_distance - 1e-9


def test_finds_a_known_optimum_on_a_small_budget() -> None:
    for seed in (0, 1, 2):
        proposal = propose(SPACE, smooth, 10, particles=40, iterations=100, seed=seed)
        top = proposal.recipes[0]
        for name in IMPORTANT:
            steps = abs(top[name] - OPTIMUM[name]) / SPACE.parameters[name].step
            assert steps <= 2 + 1e-9, (seed, name, top[name])
        assert top["li_source"] == "LiOH"
        assert proposal.scores == sorted(proposal.scores, reverse=True)
        assert (
            proposal.best_score
            == proposal.scores[0]
            == pytest.approx(smooth(SPACE.features([top]))[0])
        )
        assert (proposal.iterations, proposal.evaluations, proposal.restarts) == (100, 4000, 0)


def test_batch_is_distinct_valid_untested_and_spread_out() -> None:
    first = propose(SPACE, smooth, 10, particles=40, iterations=100, seed=4)
    # the same run again, with the first batch tested: the swarm visits the same points,
    # so every one of them must be skipped (also when stored with float noise)
    tested = first.recipes + [dict(r, li_ratio=r["li_ratio"] + 1e-12) for r in first.recipes]
    proposal = propose(SPACE, smooth, 10, exclude=tested, particles=40, iterations=100, seed=4)
    assert len(proposal.recipes) == 10
    assert_good_batch(SPACE, proposal.recipes, MIN_DISTANCE)
    for recipe in proposal.recipes:
        assert all(SPACE.grid_distance(recipe, t) > 0 for t in first.recipes)
    assert proposal.scores[0] <= proposal.best_score
    pairs = [SPACE.grid_distance(a, b) for a, b in itertools.combinations(proposal.recipes, 2)]
    assert proposal.mean_pairwise_distance == pytest.approx(np.mean(pairs))
    assert proposal.mean_pairwise_distance >= MIN_DISTANCE
    # a table of tested recipes works as well as a list
    from_table = propose(
        SPACE, smooth, 10, exclude=pd.DataFrame(tested), particles=40, iterations=100, seed=4
    )
    assert from_table.recipes == proposal.recipes


def test_a_sharp_optimum_still_gives_a_spread_batch() -> None:
    proposal = propose(SPACE, sharp, 10, particles=40, iterations=100, seed=0, min_distance=4.0)
    assert len(proposal.recipes) == 10
    assert_good_batch(SPACE, proposal.recipes, 4.0)
    # without the distance rule the batch is the peak and its nearest neighbours
    bunched = propose(SPACE, sharp, 10, particles=40, iterations=100, seed=0, min_distance=0.0)
    assert bunched.mean_pairwise_distance < proposal.mean_pairwise_distance
    assert_good_batch(SPACE, bunched.recipes, 0.0)


def test_pinned_and_narrowed_parameters_stay_put() -> None:
    campaign = SPACE.with_overrides(
        {
            "atmosphere": "air",
            "dopant_nb": 0.002,
            "ni_fraction": 0.94,
            "calcination_temp_c": [700, 760],
        }
    )
    seen_columns = []

    def score(features: pd.DataFrame) -> np.ndarray:
        seen_columns.append(list(features.columns))
        return smooth(features)

    proposal = propose(campaign, score, 10, particles=30, iterations=40, seed=3)
    assert len(proposal.recipes) == 10
    assert_good_batch(campaign, proposal.recipes, MIN_DISTANCE)
    for recipe in proposal.recipes:
        assert (recipe["atmosphere"], recipe["dopant_nb"], recipe["ni_fraction"]) == (
            "air",
            0.002,
            0.94,
        )
        assert 700 <= recipe["calcination_temp_c"] <= 760
    # the model sees the declared columns, as in training on history
    assert seen_columns[0] == list(SPACE.features([OPTIMUM]).columns)


def test_score_sees_the_whole_snapped_swarm_once_per_iteration() -> None:
    calls = []

    def score(features: pd.DataFrame) -> np.ndarray:
        calls.append(features)
        return smooth(features)

    propose(SPACE, score, 5, particles=25, iterations=12, seed=1)
    assert len(calls) == 12 and all(len(f) == 25 for f in calls)
    for features in calls:
        for name in ("calcination_temp_c", "coating_time_h", "dopant_zr"):
            steps = (features[name] - SPACE.parameters[name].low) / SPACE.parameters[name].step
            assert np.allclose(steps, steps.round(), atol=1e-9), name
        assert (features["ni_fraction"] + features["co_fraction"] <= 1 + 1e-12).all()
        one_hot = features[[c for c in features if c.startswith("coating_material=")]]
        assert (one_hot.sum(axis=1) == 1).all()


def test_same_seed_same_batch_and_numpy_global_state_untouched() -> None:
    before = np.random.get_state()[1].copy()
    first = propose(SPACE, smooth, 5, particles=20, iterations=20, seed=11)
    second = propose(SPACE, smooth, 5, particles=20, iterations=20, seed=11)
    assert first == second
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_a_short_pool_is_filled_by_restarts() -> None:
    # 4 particles x 2 iterations score at most 8 points: too few for a batch of 10
    proposal = propose(SPACE, smooth, 10, particles=4, iterations=2, seed=0)
    assert proposal.restarts >= 1
    assert len(proposal.recipes) == 10
    assert_good_batch(SPACE, proposal.recipes, MIN_DISTANCE)


def test_a_space_too_small_for_the_batch_gives_fewer_recipes_and_warns(caplog) -> None:
    tiny = DesignSpace.from_dict(
        {
            "parameters": {
                "li_source": {"kind": "categorical", "choices": ["LiOH", "Li2CO3"]},
                "atmosphere": {"kind": "categorical", "choices": ["O2", "air"]},
            }
        }
    )
    with caplog.at_level(logging.WARNING, logger="agent.learning.swarm"):
        proposal = propose(
            tiny,
            lambda f: f["atmosphere=air"].to_numpy(),
            10,
            particles=10,
            iterations=5,
            min_distance=1.0,
            seed=0,
            max_restarts=1,
        )
    assert len(proposal.recipes) == 4  # every combination, best (air) first
    assert [r["atmosphere"] for r in proposal.recipes[:2]] == ["air", "air"]
    assert proposal.restarts == 1
    assert "only 4 of 10 recipes" in caplog.text


def test_pyswarms_leaves_logging_and_the_working_directory_alone(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    propose(SPACE, smooth, 3, particles=10, iterations=5, seed=0)
    assert (root.handlers, root.level) == (handlers, level)
    assert list(tmp_path.iterdir()) == []  # pyswarms would write report.log here


def test_rejects_a_fully_fixed_space_and_a_bad_score() -> None:
    fixed = SPACE
    for name, p in SPACE.parameters.items():
        fixed = fixed.pin(name, p.choices[0] if p.choices else p.low)
    with pytest.raises(ValueError, match="every parameter of the space is fixed"):
        propose(fixed, smooth)
    with pytest.raises(ValueError, match="score returned 1 values for 10 points"):
        propose(SPACE, lambda f: np.zeros(1), particles=10, iterations=2)
    with pytest.raises(ValueError, match="NaN"):
        propose(SPACE, lambda f: np.full(len(f), np.nan), particles=10, iterations=2)
