"""The virtual lab: seeded to the byte, realistic noise, failures where the paper would fail."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from agent.lab import Kind, VirtualLab, synthesis_failure_probability, true_optimum
from agent.lab.history import generate_history
from agent.space.design import DesignSpace

SPACE = DesignSpace.load()
IDS = [f"B003-S{i:02d}" for i in range(1, 21)]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    recipes = SPACE.random(20, 5)

    def files(seed: int, folder: str) -> dict[str, bytes]:
        VirtualLab(seed).run_batch(IDS, recipes, tmp_path / folder)
        return {p.name: p.read_bytes() for p in sorted((tmp_path / folder).iterdir())}

    first, again, other = files(11, "a"), files(11, "b"), files(12, "c")
    assert first == again
    assert "masses.csv" in first and len(first) == 21
    assert first != other
    assert not any(name.startswith(".") for name in first)  # temp files are gone


def test_outcomes_depend_on_sample_ids_not_on_call_order():
    recipes = SPACE.random(5, 1)
    lab = VirtualLab(4)
    lab.test(SPACE.random(3, 2))
    later = lab.test(recipes, IDS[:5])
    assert later == VirtualLab(4).test(recipes, IDS[:5])


def test_noise_masses_and_cell_failure_rates():
    recipes = (
        generate_history(1, 1500)
        .drop(columns=["sample_id", "initial_discharge_mah_g", "status", "reason"])
        .to_dict("records")
    )
    outcomes = VirtualLab(2).test(recipes)
    cells = [o for o in outcomes if o.cell is not None]
    ok = [o for o in cells if o.kind is Kind.OK]
    errors = np.array([o.measured_mah_g - o.true_mah_g for o in ok])
    assert 1.0 < errors.std() < 1.5 and abs(errors.mean()) < 0.2  # coin-cell replicate spread
    masses = np.array([o.active_mass_mg for o in cells])
    assert masses.min() > 13.3 and masses.max() < 16.4 and abs(masses.mean() - 14.85) < 0.2
    efficiency = np.array([o.measured_mah_g / o.charge_mah_g for o in ok])
    assert efficiency.min() >= 0.85 and efficiency.max() <= 0.90
    counts = Counter(o.kind for o in cells)
    share = {kind: counts[kind] / len(cells) for kind in Kind}
    assert 0.02 < sum(share[k] for k in (Kind.SHORT, Kind.NO_DISCHARGE, Kind.DEAD)) < 0.06
    assert 0.005 < share[Kind.ABORTED] < 0.03


def test_synthesis_fails_rarely_near_the_habit_and_often_at_the_extremes():
    best, _ = true_optimum(SPACE)
    normal = [
        best
        | {
            "ni_fraction": ni,
            "co_fraction": 0.02,
            "mn_fraction": round(0.98 - ni, 3),
            "calcination_temp_c": t,
        }
        for ni, t in ((0.90, 750.0), (0.92, 730.0), (0.94, 710.0))
    ]
    extremes = [
        best | {"calcination_temp_c": 760.0},  # 70 °C over the optimum at Ni 0.96
        best | {"li_ratio": 0.98},
        best | {"li_ratio": 1.08},
        best | {"dopant_zr": 0.005, "dopant_al": 0.004, "dopant_b": 0.001},  # total at the limit
        best | {"atmosphere": "air", "calcination_temp_c": 720.0},
    ]
    assert np.all(synthesis_failure_probability(normal) < 0.05)
    assert np.all(synthesis_failure_probability(extremes) > 0.15)
    outcomes = VirtualLab(0).test([extremes[0]] * 400)
    failed = sum(o.kind is Kind.SYNTHESIS_FAILED for o in outcomes) / 400
    assert failed == pytest.approx(synthesis_failure_probability(extremes[:1])[0], abs=0.08)
    assert all(o.reason for o in outcomes if o.kind is Kind.SYNTHESIS_FAILED)


def test_invalid_recipes_and_formats_are_refused(tmp_path):
    lab = VirtualLab(0)
    recipe = SPACE.random(1, 0)[0]
    with pytest.raises(ValueError, match="calcination_temp_c"):
        lab.test([recipe | {"calcination_temp_c": 900.0}])
    with pytest.raises(ValueError, match="unknown export format"):
        lab.run_batch(IDS[:1], [recipe], tmp_path, rng_format="novonix")
