"""What goes wrong in the virtual lab, and how noisy a good measurement is.

* **Synthesis failures** (no powder worth testing) grow in the extreme regions of the space:
  over-calcination at high Ni, Li/M at the edges, total dopant near its limit, Ni-rich powder
  calcined in air. Each risk is a probability; they combine as independent causes, and the
  reason given is drawn among the causes by their weight. A recipe calcined near its optimum
  with Li/M ~1.03, O2 and a moderate dopant total fails ~3 % of the time (furnace trouble and
  small risks); the history's habit (calcining ~10-30 °C hot) ~8 %; extremes tens of %.
* **Cell failures** strike any cell at a few % (short circuit, no discharge, dead cell) and
  a test is sometimes aborted during its first discharge (~1.5 %).
* **Noise**: coin-cell replicate spread, 1.2 mAh/g (1 sigma).

All rates are this lab's modelling choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from agent.lab.truth import BASELINE, Lab, optimal_calcination_c

NOISE_MAH_G = 1.2


class Kind(StrEnum):
    """What became of one sample in the lab."""

    OK = "ok"
    SYNTHESIS_FAILED = "synthesis_failed"
    SHORT = "short"
    NO_DISCHARGE = "no_discharge"
    DEAD = "dead"
    ABORTED = "aborted"


# probability per tested cell; the rest of the cells are ok
CELL_FAILURES: dict[Kind, float] = {
    Kind.SHORT: 0.015,
    Kind.NO_DISCHARGE: 0.01,
    Kind.DEAD: 0.01,
    Kind.ABORTED: 0.015,
}

# the reason written for each cause of a synthesis failure
REASONS = {
    "furnace": "furnace fault during calcination, batch lost",
    "sintered": "sintered during calcination, no powder to test",
    "li_poor": "Li-deficient powder: rock-salt impurity in XRD, not tested",
    "li_rich": "excess Li melted: powder fused to the crucible, no powder to test",
    "dopant": "dopant excess: secondary phases in XRD, batch discarded",
    "air": "Ni-rich powder calcined in air: no layered phase in XRD, not tested",
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def synthesis_risks(
    recipes: pd.DataFrame | Sequence[Mapping[str, Any]], lab: Lab = BASELINE
) -> pd.DataFrame:
    """Probability of each cause of synthesis failure (columns as in REASONS), per recipe."""
    frame = recipes if isinstance(recipes, pd.DataFrame) else pd.DataFrame(list(recipes))
    ni = frame["ni_fraction"].to_numpy(float)
    source = frame["li_source"].to_numpy(object)
    time_h = frame["calcination_time_h"].to_numpy(float)
    optimum_c = optimal_calcination_c(ni, source, time_h, lab)
    excess_c = frame["calcination_temp_c"].to_numpy(float) - optimum_c
    li_off = np.abs(frame["li_ratio"].to_numpy(float) - lab.li_optimum)
    li_low = frame["li_ratio"].to_numpy(float) < lab.li_optimum
    dopant = (
        frame[["dopant_zr", "dopant_al", "dopant_ti", "dopant_mg", "dopant_b", "dopant_nb"]]
        .to_numpy(float)
        .sum(axis=1)
    )
    air = frame["atmosphere"].to_numpy(object) == "air"
    # over-calcination sinters the powder; the higher the Ni, the sooner (40 °C over the
    # optimum at Ni 0.88, 32 °C at 0.96 gives half the maximum risk)
    onset_c = 40.0 - 100.0 * np.clip(ni - 0.88, 0.0, None)
    if lab.sinter_onset_c is not None:
        onset_c = np.full(len(frame), lab.sinter_onset_c)
    li_edge = 0.25 * _sigmoid((li_off - 0.045) / 0.006)
    return pd.DataFrame(
        {
            "furnace": np.full(len(frame), 0.02),
            "sintered": lab.sinter_max * _sigmoid((excess_c - onset_c) / lab.sinter_width_c),
            "li_poor": np.where(li_low, li_edge, 0.0),
            "li_rich": np.where(li_low, 0.0, li_edge),
            "dopant": 0.35 * _sigmoid((dopant - 0.008) / 0.0006),
            "air": 0.3 * air * _sigmoid((ni - 0.925) / 0.01) * _sigmoid((excess_c + 5.0) / 8.0),
        }
    )


def synthesis_failure_probability(
    recipes: pd.DataFrame | Sequence[Mapping[str, Any]], lab: Lab = BASELINE
) -> np.ndarray:
    """Probability that each recipe yields no testable powder (independent causes)."""
    return _combined(synthesis_risks(recipes, lab).to_numpy())


def _combined(risks: np.ndarray) -> np.ndarray:
    return 1.0 - np.prod(1.0 - risks, axis=1)


def draw_synthesis(
    recipes: pd.DataFrame | Sequence[Mapping[str, Any]],
    rng: np.random.Generator,
    lab: Lab = BASELINE,
) -> list[str | None]:
    """The failure reason of each recipe's synthesis, or None when it gave a powder."""
    n = len(recipes)
    return failure_reasons(synthesis_risks(recipes, lab), rng.random(n), rng.random(n))


def failure_reasons(
    risks: pd.DataFrame, fail_draws: np.ndarray, cause_draws: np.ndarray
) -> list[str | None]:
    """Reasons from uniform draws: a row fails when its draw is below its combined risk, and
    its cause is drawn in proportion to the causes' risks."""
    values = risks.to_numpy()
    failed = np.asarray(fail_draws) < _combined(values)
    reasons: list[str | None] = []
    for row, is_failed, u in zip(values, failed, cause_draws, strict=True):
        share = np.cumsum(row) / row.sum()
        cause = risks.columns[min(int(np.searchsorted(share, u)), len(share) - 1)]
        reasons.append(REASONS[cause] if is_failed else None)
    return reasons


def draw_cell_kind(rng: np.random.Generator) -> Kind:
    """What happens to one assembled cell under test."""
    u = rng.random()
    for kind, probability in CELL_FAILURES.items():
        if u < probability:
            return kind
        u -= probability
    return Kind.OK
