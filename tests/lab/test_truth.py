"""The hidden truth reproduces the published trends it is built on, and its optimum is exact."""

from __future__ import annotations

import numpy as np
import pytest

from agent.lab.history import generate_history
from agent.lab.truth import true_capacity, true_optimum
from agent.space.design import DesignSpace

SPACE = DesignSpace.load()
OPTIMUM, BEST = true_optimum(SPACE)
TEMPS = [SPACE.parameters["calcination_temp_c"].at(k) for k in range(31)]


def variant(**changes: float | str) -> dict:
    recipe = dict(OPTIMUM) | changes
    recipe["mn_fraction"] = round(1.0 - recipe["ni_fraction"] - recipe["co_fraction"], 3)
    return recipe


def at_ni(ni: float, **changes: float | str) -> dict:
    """The optimum's recipe moved to ``ni``, keeping the Co share of the non-Ni part."""
    co = round(round((1.0 - ni) * 0.6 / 0.005) * 0.005, 3)
    return variant(ni_fraction=ni, co_fraction=co, **changes)


def best_temperature(recipe: dict) -> tuple[float, float]:
    """The best calcination temperature for ``recipe`` and the capacity there."""
    values = true_capacity([recipe | {"calcination_temp_c": t} for t in TEMPS])
    return TEMPS[int(np.argmax(values))], float(values.max())


def test_capacity_rises_with_ni_at_each_nis_own_best_calcination():
    best = [
        max(true_capacity([at_ni(ni, calcination_temp_c=t) for t in TEMPS]))
        for ni in np.round(np.arange(0.88, 0.961, 0.01), 2)
    ]
    assert np.all(np.diff(best) > 0)
    # published scale: ~215 at Ni 0.88, low 220s at 0.92-0.94 (Noh 2013, Yoon 2015)
    assert 210 < best[0] < 220 and 222 < best[4] < 230


def test_optimal_calcination_falls_as_ni_rises():
    t88, _ = best_temperature(at_ni(0.88))
    t94, _ = best_temperature(at_ni(0.94))
    assert t94 < t88
    assert (t88, t94) == (750.0, 710.0)


def test_over_calcination_costs_more_than_under_calcination():
    recipe = at_ni(0.94)
    t_best, best = best_temperature(recipe)
    above, below = true_capacity([recipe | {"calcination_temp_c": t_best + d} for d in (30, -30)])
    assert best - above > 2 * (best - below) > 0


def test_li_ratio_optimum_is_slightly_above_one():
    ratios = [SPACE.parameters["li_ratio"].at(k) for k in range(11)]
    values = true_capacity([variant(li_ratio=r) for r in ratios])
    best = ratios[int(np.argmax(values))]
    assert 1.0 < best < 1.06
    assert values[0] < values[-1] < values.max()  # losses on both sides, steeper when Li-poor


def test_lioh_beats_li2co3_and_o2_beats_air_more_at_high_ni():
    gaps = []
    for ni in (0.88, 0.96):
        _, lioh = best_temperature(at_ni(ni, li_source="LiOH"))
        _, carbonate = best_temperature(at_ni(ni, li_source="Li2CO3"))
        o2, air = true_capacity([at_ni(ni), at_ni(ni, atmosphere="air")])
        assert 1.0 < lioh - carbonate < 8.0 and 1.0 < o2 - air < 8.0
        gaps.append((lioh - carbonate, o2 - air))
    assert gaps[1][0] > gaps[0][0] and gaps[1][1] > gaps[0][1]


def test_co_mn_split_at_fixed_ni_barely_matters():
    cos = [c for c in np.round(np.arange(0.0, 0.081, 0.005), 3) if c <= 0.10]
    values = true_capacity([variant(ni_fraction=0.90, co_fraction=c) for c in cos])
    assert np.ptp(values) < 1.5  # Sun 2015: 204.9-206.0 mAh/g across four splits


def test_dopant_costs_follow_the_compiled_order():
    clean = variant(dopant_zr=0.0, dopant_b=0.0)
    base = true_capacity([clean])[0]
    amount = 0.004  # 0.4 mol %
    cost = {
        name: base - true_capacity([clean | {name: amount}])[0]
        for name in ("dopant_ti", "dopant_nb", "dopant_mg", "dopant_zr", "dopant_al", "dopant_b")
    }
    assert all(c > 0 for c in cost.values())
    assert cost["dopant_ti"] > cost["dopant_nb"] > cost["dopant_mg"] > cost["dopant_zr"]
    assert cost["dopant_ti"] / (100 * amount) == pytest.approx(7.5)  # Wang 2021, per mol %


def test_zr_and_b_interact():
    clean = variant(dopant_zr=0.0, dopant_b=0.0)
    base, zr, b, both = true_capacity(
        [
            clean,
            clean | {"dopant_zr": 0.001},
            clean | {"dopant_b": 0.001},
            clean | {"dopant_zr": 0.001, "dopant_b": 0.001},
        ]
    )
    assert zr < base and b < base  # alone, each costs
    assert (both - base) - ((zr - base) + (b - base)) > 1.0  # together they more than pay


def test_coating_temperature_optimum_is_far_from_the_historys_habit():
    history = generate_history(0, 300)
    habit = float(history["coating_temp_c"].median())
    material = history["coating_material"].mode()[0]
    temps = [SPACE.parameters["coating_temp_c"].at(k) for k in range(61)]
    values = true_capacity([variant(coating_material=material, coating_temp_c=t) for t in temps])
    best = temps[int(np.argmax(values))]
    assert abs(best - habit) >= 60
    assert 0 < values.max() - values[temps.index(habit)] < 5  # coatings matter a little


def test_true_optimum_is_in_range_at_high_ni_and_unbeaten_by_random_recipes():
    assert 226 <= BEST <= 234
    assert OPTIMUM["ni_fraction"] >= 0.94
    SPACE.validate(OPTIMUM)
    assert true_capacity([OPTIMUM])[0] == pytest.approx(BEST)
    assert true_capacity(SPACE.random(20_000, 7)).max() <= BEST + 1e-9


def test_true_optimum_respects_pins_and_narrowing():
    space = SPACE.with_overrides({"atmosphere": "air", "ni_fraction": [0.88, 0.92]})
    recipe, value = true_optimum(space)
    space.validate(recipe)
    assert recipe["atmosphere"] == "air" and recipe["ni_fraction"] == 0.92
    assert value < BEST
    assert true_capacity(space.random(5_000, 3)).max() <= value + 1e-9
