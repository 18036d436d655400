"""The family of virtual labs: each hides its optimum where its own biased history does not
look, so that nothing is tuned to one surface."""

from __future__ import annotations

import numpy as np
import pytest

from agent.lab import LABS, VirtualLab, generate_history, lab_named, true_capacity, true_optimum
from agent.lab.failures import synthesis_failure_probability
from agent.lab.history import ONE_VALUE
from agent.space.design import DesignSpace

SPACE = DesignSpace.load()


@pytest.mark.parametrize("name", list(LABS))
def test_each_lab_hides_a_better_optimum_than_its_history_found(name):
    lab = LABS[name]
    recipe, best = true_optimum(SPACE, lab)
    history = generate_history(0, 400, SPACE, lab)
    measured = history[history["initial_discharge_mah_g"].notna()]
    assert best > true_capacity(measured, lab).max() + 3.0
    assert true_capacity(SPACE.random(20_000, 5), lab).max() <= best + 1e-9
    assert synthesis_failure_probability([recipe], lab)[0] < 0.15  # the optimum can be made


def test_the_edge_lab_has_its_optimum_on_the_box():
    recipe, _ = true_optimum(SPACE, lab_named("edge"))
    assert recipe["calcination_temp_c"] == SPACE.parameters["calcination_temp_c"].low
    assert recipe["li_ratio"] == SPACE.parameters["li_ratio"].high


def test_the_untried_better_lab_rewards_a_value_its_history_never_used():
    lab = lab_named("untried-better")
    recipe, best = true_optimum(SPACE, lab)
    assert recipe["li_source"] == "Li2CO3" != ONE_VALUE["li_source"]
    assert set(generate_history(0, 400, SPACE, lab)["li_source"]) == {"LiOH"}
    assert best > true_optimum(SPACE, lab_named("baseline"))[1] + 2.0
    # the baseline lab punishes the same change
    lioh = recipe | {"li_source": "LiOH"}
    assert true_capacity([recipe], lab)[0] > true_capacity([lioh], lab)[0]
    assert true_capacity([recipe])[0] < true_capacity([lioh])[0]


def test_the_cliff_lab_couples_time_and_temperature_and_fails_just_above_its_optimum():
    lab = lab_named("cliff")
    recipe, _ = true_optimum(SPACE, lab)
    temps = np.arange(650.0, 801.0, 5.0)

    def best_temp(time_h: float) -> float:
        rows = [recipe | {"calcination_time_h": time_h, "calcination_temp_c": t} for t in temps]
        return float(temps[np.argmax(true_capacity(rows, lab))])

    assert best_temp(10.0) - best_temp(14.0) >= 40.0  # 12 °C per hour
    above = recipe | {"calcination_temp_c": recipe["calcination_temp_c"] + 20}
    p_opt, p_above = synthesis_failure_probability([recipe, above], lab)
    assert p_above > 0.4 > 0.1 > p_opt
    baseline = synthesis_failure_probability([above])[0]
    assert baseline < 0.15  # the baseline lab forgives the same 20 °C
    assert len(set(generate_history(0, 300, SPACE, lab)["calcination_time_h"])) == 3


def test_a_virtual_lab_measures_its_own_truth():
    lab = lab_named("untried-better")
    recipe, best = true_optimum(SPACE, lab)
    outcomes = VirtualLab(3, SPACE, lab).test([recipe] * 30)
    assert all(o.true_mah_g == pytest.approx(best) for o in outcomes)
    measured = [o.measured_mah_g for o in outcomes if o.measured_mah_g is not None]
    assert abs(np.mean(measured) - best) < 1.5


def test_an_unknown_lab_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="known: baseline, edge"):
        lab_named("moon")
