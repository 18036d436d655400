"""P(success): will a recipe give a powder worth testing? Unknown where nothing was tried.

A classifier trained on a few dozen failures says 1.00 wherever it saw none, including
regions no one ever synthesised. `Feasibility` treats feasibility as an unknown constraint
(as Atlas and Ax's feasibility model do): the classifier's answer counts only as far as
there are tried recipes nearby, and far from every tried recipe P(success) falls back to a
prior (default 0.5, "no idea"):

    P(x) = (n(x) * p_classifier(x) + m * prior) / (n(x) + m)

where n(x) is the kernel-weighted number of tried recipes (successes and failed syntheses)
around x (Gaussian weights, length ``LENGTH`` of each declared range; another choice of a
categorical is far) and m = ``PRIOR_WEIGHT`` pseudo-recipes. Without a classifier (fewer
than two failures) p_classifier is the observed success rate, 1.0 when nothing failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

from agent.uncertainty import Scaling

LENGTH = 0.1  # 10 % of a parameter's declared range counts as "nearby"
PRIOR_WEIGHT = 1.0
_CHUNK = 2048  # rows of tried recipes compared at once, to bound memory


@dataclass
class Feasibility:
    scaling: Scaling
    tried: np.ndarray  # scaled features of every tried recipe
    classifier: GradientBoostingClassifier | None
    base_rate: float  # share of tried recipes that succeeded
    prior: float | None  # None: the classifier alone (the paper's behaviour)
    feature_columns: list[str]

    def nearby(self, features: pd.DataFrame) -> np.ndarray:
        """Kernel-weighted count of tried recipes around each row."""
        x = self.scaling(features)
        total = np.zeros(len(x))
        for start in range(0, len(self.tried), _CHUNK):
            block = self.tried[start : start + _CHUNK]
            d2 = ((x[:, None, :] - block[None, :, :]) ** 2).sum(axis=-1)
            total += np.exp(-0.5 * d2 / LENGTH**2).sum(axis=1)
        return total

    def classifier_p(self, features: pd.DataFrame) -> np.ndarray:
        if self.classifier is None:
            return np.full(len(features), self.base_rate)
        x = features[self.feature_columns].to_numpy(dtype=float)
        return self.classifier.predict_proba(x)[:, 1]

    def p_success(self, features: pd.DataFrame) -> np.ndarray:
        p = self.classifier_p(features)
        if self.prior is None:
            return p
        n = self.nearby(features)
        return (n * p + PRIOR_WEIGHT * self.prior) / (n + PRIOR_WEIGHT)
