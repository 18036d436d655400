"""Parameters that apply only sometimes: no coating means no coating amount, temperature
or time, in the space file, validation, the swarm's encoding, the models and recipe files."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest

from agent.learning.acquisition import probe_recipe, trust_box
from agent.learning.model import impute
from agent.loop.recipe_files import PlannedSample, read_recipe_file, render, write_recipe_file
from agent.space.design import DEFAULT_PATH, DesignSpace
from agent.space.encoding import NOT_APPLIED

SPACE = DesignSpace.load()
COATING = ("coating_amount", "coating_temp_c", "coating_time_h")


def recipe(material: str = "B", **changes: object) -> dict:
    base = SPACE.random(1, 3)[0] | {"coating_material": "B", "coating_amount": 0.002,
                                    "coating_temp_c": 350.0, "coating_time_h": 4.0}  # fmt: skip
    if material == "none":
        base |= {"coating_material": "none", **dict.fromkeys(COATING)}
    else:
        base["coating_material"] = material
    return base | changes


def space_with(**coating_amount: object) -> dict:
    with open(DEFAULT_PATH, "rb") as f:
        table = tomllib.load(f)
    table["parameters"]["coating_amount"] |= coating_amount
    return table


def test_the_shipped_space_says_coating_steps_need_a_coating():
    for name in COATING:
        condition = SPACE.parameters[name].condition
        assert condition is not None and condition.parent == "coating_material"
        assert set(condition.choices) == {"B", "W", "Co", "Al"}
    assert SPACE.parameters["coating_amount"].low > 0  # a material with amount 0 is no recipe


@pytest.mark.parametrize(
    ("only_when", "message"),
    [
        ({"atmosphere_typo": ["O2"]}, "another categorical parameter"),
        ({"ni_fraction": ["0.9"]}, "another categorical parameter"),
        ({"coating_material": ["none", "B", "W", "Co", "Al"]}, "some but not all"),
        ({"coating_material": ["gold"]}, "some but not all"),
        ({"coating_material": ["B"], "atmosphere": ["air"]}, "must name one parameter"),
    ],
)
def test_a_condition_that_cannot_work_is_refused_when_the_space_loads(only_when, message):
    with pytest.raises(ValueError, match=message):
        DesignSpace.from_dict(space_with(only_when=only_when))


def test_a_conditional_parameter_cannot_enter_a_constraint():
    table = space_with()
    table["constraints"].append({"name": "coat", "terms": {"coating_amount": 1}, "max": 0.005})
    with pytest.raises(ValueError, match="coating_amount does not always apply"):
        DesignSpace.from_dict(table)


def test_validation_wants_blanks_exactly_where_a_step_does_not_apply():
    SPACE.validate(recipe("none"))
    SPACE.validate(recipe("Al"))
    with pytest.raises(
        ValueError,
        match="coating_temp_c = 350 but it applies only when "
        "coating_material is B, W, Co or Al: leave it blank",
    ):
        SPACE.validate(recipe("none", coating_temp_c=350.0))
    with pytest.raises(ValueError, match="missing parameter 'coating_time_h'"):
        SPACE.validate(recipe("W", coating_time_h=None))
    with pytest.raises(ValueError, match=r"coating_amount = 0 is outside \[0.0005, 0.01\]"):
        SPACE.validate(recipe("Al", coating_amount=0.0))


def test_random_and_decoded_recipes_are_blank_only_when_uncoated():
    rng = np.random.default_rng(5)
    recipes = SPACE.random(400, rng) + [SPACE.decode(v) for v in rng.random((200, SPACE.dim))]
    uncoated = [r for r in recipes if r["coating_material"] == "none"]
    coated = [r for r in recipes if r["coating_material"] != "none"]
    assert 40 < len(uncoated) < 200 and coated
    assert all(r[n] is None for r in uncoated for n in COATING)
    assert all(r[n] is not None for r in coated for n in COATING)
    for r in recipes:
        SPACE.validate(r)


def test_uncoated_recipes_are_one_point_whatever_an_old_record_left_in_the_coating_cells():
    stale = recipe("none") | {"coating_amount": 0.0, "coating_temp_c": 400.0, "coating_time_h": 2}
    clean = recipe("none")
    features = SPACE.features([stale, clean, recipe("B")])
    assert (features.loc[0] == features.loc[1]).all()
    assert features.loc[0, list(COATING)].tolist() == [NOT_APPLIED] * 3
    assert features.loc[2, "coating_temp_c"] == 350.0
    assert SPACE.grid_distance(stale, clean) == 0.0
    assert SPACE.blank_inactive(stale) == clean
    grid = SPACE.grid.index(np.stack([SPACE.encode(r) for r in (stale, clean, recipe("B"))]))
    assert (grid[0] == grid[1]).all()
    # coated vs not: the material differs (1) and three steps apply in one of them (1 each)
    assert SPACE.grid.distances(grid[:1], grid[2:])[0, 0] == pytest.approx(2.0)
    assert SPACE.grid_distance(clean, recipe("B")) == pytest.approx(2.0)


def test_recipe_files_leave_the_cells_blank_and_say_why_in_the_header(tmp_path):
    samples = [PlannedSample("B001-S01", SPACE.blank_inactive(recipe("none"))),
               PlannedSample("B001-S02", recipe("Co"))]  # fmt: skip
    path = tmp_path / "batch-001.csv"
    write_recipe_file(path, SPACE, samples)
    header = render(SPACE, samples).decode("utf-8-sig").splitlines()[0]
    assert "coating_temp_c [°C] (blank when coating_material is none)" in header
    frame = pd.read_csv(path, encoding="utf-8-sig")
    for name in COATING:
        column = next(c for c in frame.columns if c.startswith(name + " "))
        assert frame[column].isna().tolist() == [True, False], name
    back = read_recipe_file(path, SPACE)  # validates every row
    assert [back[0].recipe[n] for n in COATING] == [None, None, None]
    assert back[1].recipe["coating_temp_c"] == 350.0


def test_an_uncoated_centre_leaves_the_coating_steps_free_in_the_trust_region():
    low, high = trust_box(SPACE, SPACE.blank_inactive(recipe("none")), 0.2)
    coated_low, coated_high = trust_box(SPACE, recipe("B"), 0.2)
    for name in COATING:
        j = next(i for i, p in enumerate(SPACE.grid.searched) if p.name == name)
        dim = SPACE.grid.offsets[j]
        assert (low[dim], high[dim]) == (0.0, 1.0)
        assert coated_high[dim] - coated_low[dim] <= 0.2 + 1e-9


def test_impute_fills_missing_values_only_where_the_step_applies():
    rows = pd.DataFrame([recipe("none"), recipe("B", coating_temp_c=None), recipe("B")])
    filled = impute(rows, SPACE)
    assert filled.loc[0, list(COATING)].isna().all()
    assert filled.loc[1, "coating_temp_c"] == 350.0  # the median of the rows it applies to


def test_probing_a_coating_on_an_uncoated_recipe_borrows_the_incumbents_coating():
    uncoated = SPACE.blank_inactive(recipe("none"))
    coated = recipe("B")
    probe = probe_recipe(SPACE, uncoated, "coating_material", "W", donor=coated)
    SPACE.validate(probe)
    assert probe["coating_material"] == "W"
    assert [probe[n] for n in COATING] == [coated[n] for n in COATING]
    assert {k: v for k, v in probe.items() if k not in COATING and k != "coating_material"} == {
        k: v for k, v in uncoated.items() if k not in COATING and k != "coating_material"
    }
    # nothing to borrow: the middle of each range, still a valid recipe
    lone = probe_recipe(SPACE, uncoated, "coating_material", "Al", donor=uncoated)
    SPACE.validate(lone)
    assert lone["coating_temp_c"] == 350.0
