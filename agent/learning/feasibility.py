"""P(success): will a recipe give a powder worth testing? Unknown where nothing was tried.

A classifier trained on a few dozen failures says 1.00 wherever it saw none, including
regions no one ever synthesised, and a failure in a region it otherwise likes barely moves
it. `Feasibility` treats feasibility as an unknown constraint (as Atlas and Ax's
feasibility model do): what was tried nearby decides, and far from every tried recipe
P(success) falls back to a prior (default 0.5, "no idea"):

    local(x) = (sum_i w_i(x) s_i + m * prior) / (sum_i w_i(x) + m)
    P(x)     = local(x) * min(1, p_classifier(x) / base rate)

where s_i is 1 for a tried recipe that gave a powder and 0 for a failed synthesis, w_i(x)
a Gaussian weight (length ``LENGTH`` of each declared range; another choice of a
categorical is far) and m = ``PRIOR_WEIGHT`` pseudo-recipes: one failure next to x halves
its chance, several make it small. The classifier's factor keeps what it learned across
the space (a dopant total that fails whatever else the recipe does); it is 1 where the
classifier is no less sure than the average recipe, and without a classifier (fewer than
two failures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

from agent.learning.uncertainty import Scaling

LENGTH = 0.1  # 10 % of a parameter's declared range counts as "nearby"
PRIOR_WEIGHT = 1.0
_CHUNK = 2048  # rows of tried recipes compared at once, to bound memory


@dataclass
class Feasibility:
    scaling: Scaling
    tried: np.ndarray  # scaled features of every tried recipe
    success: np.ndarray  # 1 where it gave a powder, 0 where its synthesis failed
    classifier: GradientBoostingClassifier | None
    base_rate: float  # share of tried recipes that succeeded
    prior: float | None  # None: the classifier alone (the paper's behaviour)
    feature_columns: list[str]

    def nearby(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Kernel-weighted counts of tried recipes, and of successes, around each row."""
        x = self.scaling(features)
        tried, succeeded = np.zeros(len(x)), np.zeros(len(x))
        for start in range(0, len(self.tried), _CHUNK):
            block = self.tried[start : start + _CHUNK]
            d2 = ((x[:, None, :] - block[None, :, :]) ** 2).sum(axis=-1)
            weights = np.exp(-0.5 * d2 / LENGTH**2)
            tried += weights.sum(axis=1)
            succeeded += weights @ self.success[start : start + _CHUNK]
        return tried, succeeded

    def classifier_p(self, features: pd.DataFrame) -> np.ndarray:
        if self.classifier is None:
            return np.full(len(features), self.base_rate)
        x = features[self.feature_columns].to_numpy(dtype=float)
        return self.classifier.predict_proba(x)[:, 1]

    def p_success(self, features: pd.DataFrame) -> np.ndarray:
        p = self.classifier_p(features)
        if self.prior is None:
            return p
        tried, succeeded = self.nearby(features)
        local = (succeeded + PRIOR_WEIGHT * self.prior) / (tried + PRIOR_WEIGHT)
        return local * np.minimum(1.0, p / max(self.base_rate, 1e-9))
