"""A known capacity function over the default design space, for tests of the learning loop.

Not the virtual lab: a smooth bowl with its optimum at a known interior grid point, so a
test can tell whether the model and the swarm find it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agent.space.design import DesignSpace

OPTIMUM = {"ni_fraction": 0.94, "calcination_temp_c": 720.0, "coating_temp_c": 380.0,
           "li_ratio": 1.03}  # fmt: skip


def capacity(frame: pd.DataFrame) -> np.ndarray:
    """mAh/g of each recipe row: highest at OPTIMUM with LiOH, 224 mAh/g there."""
    return (
        224.0
        - 4000 * (frame["ni_fraction"] - 0.94) ** 2
        - ((frame["calcination_temp_c"] - 720.0) / 25.0) ** 2
        # no coating (a blank temperature) costs as much as coating 60 °C off the best
        - ((frame["coating_temp_c"].astype(float).fillna(440.0) - 380.0) / 60.0) ** 2
        - 2000 * (frame["li_ratio"] - 1.03) ** 2
        - 2.0 * (frame["li_source"] != "LiOH")
    ).to_numpy()


def write_history(path: Path, rows: int, seed: int = 0, failed_share: float = 0.05) -> Path:
    """A history CSV in the import format: noisy capacities, some failed syntheses."""
    space = DesignSpace.load()
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(space.random(rows, rng))
    frame["initial_discharge_mah_g"] = np.round(capacity(frame) + rng.normal(0, 1.0, rows), 2)
    frame["status"] = "ok"
    frame["reason"] = ""
    failed = rng.random(rows) < failed_share
    frame.loc[failed, "status"] = "failed"
    frame.loc[failed, "initial_discharge_mah_g"] = np.nan
    frame.loc[failed, "reason"] = "sintered during calcination"
    frame.to_csv(path, index=False)
    return path
