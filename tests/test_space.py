"""The design space: the shipped table, grids, constraint repair, validation and overrides."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.space.design import DEFAULT_PATH, DesignSpace

SPACE = DesignSpace.load()
DOPANTS = [f"dopant_{x}" for x in ("zr", "al", "ti", "mg", "b", "nb")]
VECTORS = arrays(float, SPACE.dim, elements=st.floats(-0.5, 1.5))  # beyond bounds on purpose


def valid_recipe(**changes: float | str) -> dict[str, float | str]:
    recipe = {
        "ni_fraction": 0.94,
        "co_fraction": 0.035,
        "mn_fraction": 0.025,
        "li_ratio": 1.03,
        "li_source": "LiOH",
        "calcination_temp_c": 720.0,
        "calcination_time_h": 12.0,
        "dopant_zr": 0.001,
        "dopant_al": 0.0,
        "dopant_ti": 0.0005,
        "dopant_mg": 0.0,
        "dopant_b": 0.0,
        "dopant_nb": 0.002,
        "coating_material": "B",
        "coating_amount": 0.003,
        "coating_temp_c": 380.0,
        "coating_time_h": 4.5,
        "atmosphere": "air",
    }
    return recipe | changes


def on_grid(value: float, low: float, step: float) -> bool:
    """Exactly low + k * step as written: 0.0034999999 is not on the 0.0005 grid."""
    return (Decimal(repr(value)) - Decimal(repr(low))) % Decimal(repr(step)) == 0


def assert_on_grid_and_valid(space: DesignSpace, recipe: dict) -> None:
    space.validate(recipe)
    for name, p in space.parameters.items():
        if not p.applies(recipe):  # no coating: its amount, temperature and time are blank
            assert recipe[name] is None, name
        elif p.gridded:
            assert on_grid(recipe[name], p.low, p.step), (name, recipe[name])
            assert p.low <= recipe[name] <= p.high, name
    assert recipe["ni_fraction"] + recipe["co_fraction"] <= 1 + 1e-12
    assert recipe["mn_fraction"] >= 0
    assert sum(recipe[d] for d in DOPANTS) <= 0.01 + 1e-12


# ---------------------------------------------------------------- the shipped space
def test_default_space_is_the_campaign_table() -> None:
    table = {
        "ni_fraction": (0.88, 0.96, 0.01),
        "co_fraction": (0.0, 0.08, 0.005),
        "li_ratio": (0.98, 1.08, 0.01),
        "calcination_temp_c": (650, 800, 5),
        "calcination_time_h": (8, 16, 1),
        **{d: (0.0, 0.005, 0.0005) for d in DOPANTS[:-1]},
        "dopant_nb": (0.0, 0.004, 0.0005),
        "coating_amount": (0.0005, 0.01, 0.0005),
        "coating_temp_c": (200, 500, 5),
        "coating_time_h": (1, 8, 0.5),
    }
    for name, (low, high, step) in table.items():
        p = SPACE.parameters[name]
        assert (p.kind, p.low, p.high, p.step) == ("continuous", low, high, step), name
    assert SPACE.parameters["li_source"].choices == ("LiOH", "Li2CO3")
    assert SPACE.parameters["coating_material"].choices == ("none", "B", "W", "Co", "Al")
    assert SPACE.parameters["atmosphere"].choices == ("O2", "air")
    assert set(SPACE.parameters) == set(table) | {"li_source", "coating_material", "atmosphere"}
    assert SPACE.columns[:3] == ("ni_fraction", "co_fraction", "mn_fraction")
    assert SPACE.label("calcination_temp_c") == "calcination_temp_c [°C]"
    assert SPACE.label("mn_fraction") == "mn_fraction [mol frac]"
    # every number says its unit in the recipe file's header (Li/M is a molar ratio)
    assert SPACE.label("li_ratio") == "li_ratio [mol Li/mol (Ni+Co+Mn)]"
    numbers = [n for n, p in SPACE.parameters.items() if p.kind == "continuous"]
    assert [n for n in numbers if "[" not in SPACE.label(n)] == []
    assert SPACE.label("li_source") == "li_source"
    # 14 numeric dimensions + one per choice of the three categoricals
    assert SPACE.dim == 14 + 2 + 5 + 2
    lower, upper = SPACE.bounds()
    assert lower.tolist() == [0.0] * SPACE.dim and upper.tolist() == [1.0] * SPACE.dim


def test_load_reads_the_shipped_file_by_default() -> None:
    repository = Path(__file__).resolve().parents[1]
    assert repository / "agent" / "data" / "design_space.toml" == DEFAULT_PATH
    assert DesignSpace.load(DEFAULT_PATH).parameters == SPACE.parameters


# ---------------------------------------------------------------- encode / decode / snap
def test_valid_recipes_survive_encode_then_decode() -> None:
    for recipe in SPACE.random(200, rng=1) + [valid_recipe()]:
        assert SPACE.decode(SPACE.encode(recipe)) == recipe


@settings(max_examples=150, deadline=None, database=None)
@given(VECTORS)
def test_decode_gives_a_valid_recipe_on_the_grid(vector: np.ndarray) -> None:
    recipe = SPACE.decode(vector)
    assert_on_grid_and_valid(SPACE, recipe)
    assert recipe["calcination_temp_c"] % 5 == 0 and (recipe["coating_time_h"] or 0) % 0.5 == 0
    assert recipe["mn_fraction"] == round(1 - recipe["ni_fraction"] - recipe["co_fraction"], 3)


@settings(max_examples=30, deadline=None, database=None)
@given(arrays(float, (20, SPACE.dim), elements=st.floats(-0.5, 1.5)))
def test_snap_is_a_vectorised_idempotent_decode(matrix: np.ndarray) -> None:
    snapped = SPACE.snap(matrix)
    assert ((snapped >= 0) & (snapped <= 1)).all()
    np.testing.assert_array_equal(SPACE.snap(snapped), snapped)
    for row, snapped_row in zip(matrix, snapped, strict=True):
        assert SPACE.decode(snapped_row) == SPACE.decode(row)
        np.testing.assert_array_equal(SPACE.encode(SPACE.decode(row)), snapped_row)


def test_decode_rounds_without_float_noise() -> None:
    vector = SPACE.encode(valid_recipe(dopant_zr=0.0034999999, calcination_temp_c=722.4))
    recipe = SPACE.decode(vector)
    assert repr(recipe["dopant_zr"]) == "0.0035"
    assert recipe["calcination_temp_c"] == 720.0


def test_repair_lowers_cobalt_only_to_keep_manganese_non_negative() -> None:
    recipe = SPACE.decode(SPACE.encode(valid_recipe(ni_fraction=0.96, co_fraction=0.08)))
    assert (recipe["ni_fraction"], recipe["co_fraction"], recipe["mn_fraction"]) == (0.96, 0.04, 0)


def test_repair_scales_dopants_down_on_the_grid_to_the_limit() -> None:
    too_much = valid_recipe(**{d: 0.004 for d in DOPANTS})  # 0.024 in all
    recipe = SPACE.decode(SPACE.encode(too_much))
    assert_on_grid_and_valid(SPACE, recipe)
    doses = [recipe[d] for d in DOPANTS]
    assert math.isclose(sum(doses), 0.01)  # scaled to the limit, not far below it
    assert max(doses) - min(doses) <= 0.0005  # equal doses stay (nearly) equal
    assert SPACE.decode(SPACE.encode(too_much)) == recipe  # deterministic
    # a vector already inside the limit is left alone
    assert SPACE.decode(SPACE.encode(valid_recipe()))["dopant_nb"] == 0.002


# ---------------------------------------------------------------- validate
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"co_fraction": 0.0725}, "co_fraction = 0.0725 is not on the 0.005 grid"),
        ({"calcination_temp_c": 900.0}, "calcination_temp_c = 900 is outside [650, 800]"),
        ({"li_source": "LiNO3"}, "li_source = 'LiNO3' is not one of LiOH, Li2CO3"),
        ({"ni_fraction": "0.94x"}, "ni_fraction = '0.94x' is not a number"),
        ({"flux_agent": "KCl"}, "unknown parameter 'flux_agent'"),
        ({"mn_fraction": 0.1}, "mn_fraction = 0.1 but its terms give 0.025"),
        (
            {"ni_fraction": 0.96, "co_fraction": 0.08, "mn_fraction": -0.04},
            "constraint ni_co_sum (ni_fraction + co_fraction <= 1) violated",
        ),
        ({"dopant_al": 0.005, "dopant_mg": 0.005}, "constraint total_dopant"),
    ],
)
def test_validate_names_the_offender(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SPACE.validate(valid_recipe(**changes))


def test_validate_reports_missing_parameters_and_accepts_good_recipes() -> None:
    recipe = valid_recipe()
    del recipe["co_fraction"], recipe["atmosphere"]
    with pytest.raises(ValueError, match="missing parameter 'co_fraction'.*'atmosphere'"):
        SPACE.validate(recipe)
    SPACE.validate(valid_recipe())
    without_derived = valid_recipe()
    del without_derived["mn_fraction"]
    SPACE.validate(without_derived)


# ---------------------------------------------------------------- pin / narrow
def test_pin_fixes_a_parameter_and_removes_its_dimensions() -> None:
    space = SPACE.pin("atmosphere", "air").pin("dopant_nb", 0.002)
    assert space.dim == SPACE.dim - 3
    for recipe in (space.decode(v) for v in np.random.default_rng(0).random((50, space.dim))):
        assert recipe["atmosphere"] == "air" and recipe["dopant_nb"] == 0.002
        assert_on_grid_and_valid(space, recipe)
    with pytest.raises(ValueError, match="atmosphere = 'O2' but it is fixed at 'air'"):
        space.validate(valid_recipe(atmosphere="O2"))
    assert SPACE.parameters["atmosphere"].kind == "categorical"  # the original is untouched


def test_narrow_limits_the_range_and_a_zero_width_range_pins() -> None:
    space = SPACE.narrow("calcination_temp_c", 700, 740)
    temps = {
        space.decode(v)["calcination_temp_c"]
        for v in np.linspace(0, 1, 30)[:, None] * np.ones(space.dim)
    }
    assert min(temps) == 700 and max(temps) == 740
    pinned = SPACE.narrow("ni_fraction", 0.94, 0.94)
    assert pinned.parameters["ni_fraction"].kind == "fixed"
    assert pinned.dim == SPACE.dim - 1
    assert pinned.decode(np.ones(pinned.dim))["ni_fraction"] == 0.94


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (lambda s: s.pin("co_fraction", 0.0725), "co_fraction = 0.0725 is not on the 0.005 grid"),
        (lambda s: s.pin("ni_fraction", 0.97), r"ni_fraction = 0.97 is outside \[0.88, 0.96\]"),
        (lambda s: s.pin("atmosphere", "N2"), "atmosphere = 'N2' is not one of O2, air"),
        (lambda s: s.pin("sintering_aid", 1), "unknown parameter 'sintering_aid'"),
        (lambda s: s.narrow("li_source", 0, 1), "li_source is categorical"),
        (lambda s: s.narrow("ni_fraction", 0.95, 0.9), "narrow ni_fraction: low 0.95 is above"),
        (lambda s: s.narrow("calcination_temp_c", 702, 740), "calcination_temp_c = 702 is not on"),
        (lambda s: s.narrow("calcination_temp_c", 600, 740), "calcination_temp_c = 600 is outside"),
        (lambda s: s.with_overrides({"ni_fraction": [0.9, 0.92, 0.94]}), "ni_fraction: a range"),
        # allowed one by one, impossible together: ni + co >= 1.01
        (
            lambda s: s.narrow("co_fraction", 0.05, 0.08).pin("ni_fraction", 0.96),
            "pin ni_fraction: constraint ni_co_sum .* cannot hold",
        ),
        (
            lambda s: s.pin("dopant_zr", 0.005).pin("dopant_al", 0.005).pin("dopant_ti", 0.005),
            "pin dopant_ti: constraint total_dopant",
        ),
    ],
)
def test_overrides_reject_bad_values_naming_the_parameter(override, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        override(SPACE)


def test_with_overrides_pins_scalars_and_narrows_pairs() -> None:
    space = SPACE.with_overrides(
        {"atmosphere": "air", "ni_fraction": [0.94, 0.96], "calcination_temp_c": "720"}
    )
    assert space.parameters["atmosphere"].value == "air"
    assert (space.parameters["ni_fraction"].low, space.parameters["ni_fraction"].high) == (
        0.94,
        0.96,
    )
    assert space.parameters["calcination_temp_c"].value == 720.0  # text from a CLI is parsed
    # pins and narrows are checked against the declared space, so they can be widened again
    assert space.narrow("ni_fraction", 0.88, 0.96).parameters["ni_fraction"].low == 0.88


# ---------------------------------------------------------------- features
def test_features_are_numeric_with_stable_one_hot_columns() -> None:
    recipes = [valid_recipe(), valid_recipe(coating_material="none", atmosphere="O2")]
    table = SPACE.features(pd.DataFrame(recipes).assign(capacity_mah_g=[220.0, 215.0]))
    assert "capacity_mah_g" not in table  # only the recipe becomes features
    assert all(dtype == np.float64 for dtype in table.dtypes)
    coating = [f"coating_material={c}" for c in ("none", "B", "W", "Co", "Al")]
    assert table[coating].to_numpy().tolist() == [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert table["atmosphere=air"].tolist() == [1.0, 0.0]
    assert table["mn_fraction"].tolist() == [0.025, 0.025]
    assert table["calcination_temp_c"].tolist() == [720.0, 720.0]
    # a pinned campaign scores with the same columns as the history its model learned from
    pinned = SPACE.pin("atmosphere", "air").narrow("ni_fraction", 0.94, 0.94)
    assert list(pinned.features(recipes[:1]).columns) == list(table.columns)


def test_proposer_features_equal_recipe_features() -> None:
    grid = SPACE.grid.sample(40, np.random.default_rng(3))
    from_grid = SPACE.grid.features(grid)
    from_recipes = SPACE.features(SPACE.grid.recipes(grid))
    pd.testing.assert_frame_equal(from_grid, from_recipes)


def test_features_reject_unknown_choices_and_missing_parameters() -> None:
    with pytest.raises(ValueError, match="coating_material = 'Zr' is not one of"):
        SPACE.features([valid_recipe(coating_material="Zr")])
    recipe = valid_recipe()
    del recipe["li_ratio"]
    with pytest.raises(ValueError, match="missing parameter 'li_ratio'"):
        SPACE.features([recipe])


# ---------------------------------------------------------------- sampling and distance
def test_random_recipes_are_valid_uniform_and_repeatable() -> None:
    recipes = SPACE.random(2000, rng=7)
    for recipe in recipes[:200]:
        assert_on_grid_and_valid(SPACE, recipe)
    assert recipes[:20] == SPACE.random(20, rng=7)
    li_oh = sum(r["li_source"] == "LiOH" for r in recipes) / len(recipes)
    assert 0.45 < li_oh < 0.55
    assert {r["ni_fraction"] for r in recipes} == {round(0.88 + 0.01 * k, 2) for k in range(9)}


def test_grid_distance_counts_steps_and_choice_changes() -> None:
    a = valid_recipe()
    b = valid_recipe(calcination_temp_c=735.0, coating_material="W", dopant_zr=0.0015)
    assert SPACE.grid_distance(a, b) == pytest.approx(math.sqrt(3**2 + 1 + 1))
    assert SPACE.grid_distance(a, a) == 0.0
    assert SPACE.grid_distance(b, a) == SPACE.grid_distance(a, b)
    grid = np.stack([SPACE.grid.locate(a), SPACE.grid.locate(b)])
    assert SPACE.grid.distances(grid, grid)[0, 1] == pytest.approx(SPACE.grid_distance(a, b))


def test_locate_compares_on_the_grid_and_rejects_points_outside_the_space() -> None:
    exact = SPACE.grid.locate(valid_recipe())
    noisy = SPACE.grid.locate(valid_recipe(ni_fraction=0.9400000001))
    np.testing.assert_array_equal(exact, noisy)
    campaign = SPACE.pin("atmosphere", "air").narrow("ni_fraction", 0.94, 0.96)
    assert campaign.grid.locate(valid_recipe(atmosphere="O2")) is None
    assert campaign.grid.locate(valid_recipe(ni_fraction=0.92)) is None
    assert campaign.grid.locate(valid_recipe(coating_material="Zr")) is None


# ---------------------------------------------------------------- other spaces
def test_integer_and_fixed_kinds_from_a_dict() -> None:
    space = DesignSpace.from_dict(
        {
            "parameters": {
                "stir_rpm": {"kind": "integer", "low": 100, "high": 500, "step": 50, "unit": "rpm"},
                "ratio": {"kind": "continuous", "low": 0.1, "high": 0.5, "step": 0.1},
                "vessel": {"kind": "fixed", "value": "alumina"},
                "pressure_bar": {"kind": "fixed", "value": 1.0, "unit": "bar"},
            },
            "constraints": [{"terms": {"ratio": 1, "pressure_bar": 1}, "min": 1.2}],
        }
    )
    assert space.dim == 2
    recipe = space.decode([0.26, 0.0])  # ratio repaired up to meet the minimum
    assert recipe == {"stir_rpm": 200, "ratio": 0.2, "vessel": "alumina", "pressure_bar": 1.0}
    assert isinstance(recipe["stir_rpm"], int)
    assert list(space.features([recipe]).columns) == [
        "stir_rpm",
        "ratio",
        "vessel=alumina",
        "pressure_bar",
    ]
    assert space.label("stir_rpm") == "stir_rpm [rpm]"
    with pytest.raises(ValueError, match="constraint_1"):
        space.validate(recipe | {"ratio": 0.1})


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"parameters": {"x": {"kind": "float"}}}, "x: kind must be one of"),
        ({"parameters": {"x": {"kind": "continuous", "low": 0, "high": 1}}}, "x: .* needs 'step'"),
        (
            {"parameters": {"x": {"kind": "continuous", "low": 0, "high": 1, "step": 0.3}}},
            "x: high 1 is not on the 0.3 grid",
        ),
        ({"parameters": {"x": {"kind": "categorical", "choices": ["a"]}}}, "x: a categorical"),
        ({"parameters": {"x": {"kind": "fixed", "value": 1, "lo": 0}}}, "x: unexpected keys lo"),
        (
            {
                "parameters": {"x": {"kind": "fixed", "value": 1}},
                "constraints": [{"name": "cap", "terms": {"y": 1}, "max": 1}],
            },
            "cap: term y is not a numeric parameter",
        ),
        (
            {
                "parameters": {"x": {"kind": "integer", "low": 2, "high": 4}},
                "constraints": [{"name": "cap", "terms": {"x": 1}, "max": 1}],
            },
            "constraint cap .* cannot hold",
        ),
    ],
)
def test_bad_definitions_are_rejected(definition: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DesignSpace.from_dict(definition)


def test_a_row_snaps_the_same_alone_and_among_others() -> None:
    # found by the property test above: six dopants with equal rounding losses, whose
    # tie was broken by float noise that depended on how many rows were snapped at once
    matrix = np.full((20, SPACE.dim), 0.4375)
    matrix[0, 7] = 1.0
    together = SPACE.snap(matrix)
    for row, snapped in zip(matrix, together, strict=True):
        np.testing.assert_array_equal(SPACE.snap(row[None, :])[0], snapped)
