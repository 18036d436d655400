"""What the models learn from: recipes with their capacity, and which recipes made a powder.

Built from the store by ``agent.loop.training_data``; the benchmarks build it directly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TrainingSet:
    # one row per experiment with at least one ok result
    recipes: pd.DataFrame
    capacity_mah_g: np.ndarray
    sample_ids: list[str]
    # one row per experiment that succeeded (1) or failed in synthesis (0)
    outcome_recipes: pd.DataFrame
    success: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.capacity_mah_g)
