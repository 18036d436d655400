"""How sure the model is of a recipe: an uncertainty that grows away from tested recipes.

The GBM predicts the mean (the paper's choice), but trees predict a constant outside their
data and a bootstrap of the same trees agrees with itself there, so their spread says
nothing about how far a recipe is from what was tried. `TargetGP` supplies the uncertainty
instead: an ARD Gaussian process (Matérn 5/2 + white noise) on the measured capacities,
inputs scaled by the *declared* ranges of the design space, so every parameter, even one
the history never varied, has a length scale and moving it away from the data raises the
uncertainty. ``BENCHMARKS.md`` ("Does the stated uncertainty hold?") compares it with the
bootstrap on held-out folds: within the history both are honest once noise is counted; off
it, only the GP's uncertainty grows.

Its hyperparameters are fitted on at most ``fit_rows`` rows (the newest experiments first,
then a seeded draw of the rest) and the fitted kernel is then conditioned on every row:
a full fit on 700 rows costs ~7 s, the subset ~2 s, with the same length scales to a few %.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from agent.space.design import DesignSpace

FIT_ROWS = 300
# in units of the declared range: 0.5 means half the range decorrelates strongly. A column
# the data never varies keeps this prior length scale (its gradient is zero).
PRIOR_LENGTH_SCALE = 0.5
LENGTH_BOUNDS = (0.03, 100.0)


@dataclass(frozen=True)
class Scaling:
    """Feature columns the GP reads and how each maps onto [0, 1]: numeric parameters by
    their declared range, one-hot columns as they are. Derived columns (Mn = 1 - Ni - Co)
    are left out: they add no information and would count one move twice."""

    columns: tuple[str, ...]
    offset: np.ndarray
    width: np.ndarray

    @classmethod
    def of(cls, space: DesignSpace, feature_columns: list[str]) -> Scaling:
        columns, offset, width = [], [], []
        for name in feature_columns:
            p = space.declared.get(name)
            if p is None and "=" not in name:
                continue  # a derived value
            columns.append(name)
            gridded = p is not None and p.gridded and p.high > p.low
            offset.append(p.low if gridded else 0.0)
            width.append(p.high - p.low if gridded else 1.0)
        return cls(tuple(columns), np.array(offset), np.array(width))

    def __call__(self, features: pd.DataFrame) -> np.ndarray:
        return (features[list(self.columns)].to_numpy(dtype=float) - self.offset) / self.width


@dataclass
class TargetGP:
    """Distance-aware uncertainty of capacity predictions (mAh/g), and a correction of the
    GBM's mean where its own residuals show it missed (the same kernel on them)."""

    scaling: Scaling
    gp: GaussianProcessRegressor
    noise_mah_g: float  # the fitted replicate noise (1 sigma)
    residual_gp: GaussianProcessRegressor | None = None
    residual_scale: float = 1.0

    def correction(self, features: pd.DataFrame) -> np.ndarray:
        """What to add to the GBM's mean: the GP's smoothing of the GBM's residuals."""
        if self.residual_gp is None:
            return np.zeros(len(features))
        return self.residual_gp.predict(self.scaling(features)) * self.residual_scale

    def latent_cov(self, features: pd.DataFrame) -> np.ndarray:
        """Posterior covariance of the true capacities of ``features`` (noise excluded)."""
        _, cov = self.gp.predict(self.scaling(features), return_cov=True)
        cov[np.diag_indices_from(cov)] -= self.noise_mah_g**2
        np.fill_diagonal(cov, np.maximum(np.diag(cov), 0.0))
        return cov

    def latent_std(self, features: pd.DataFrame) -> np.ndarray:
        """Posterior standard deviation of each true capacity (noise excluded)."""
        _, std = self.gp.predict(self.scaling(features), return_std=True)
        return np.sqrt(np.maximum(std**2 - self.noise_mah_g**2, 0.0))


def fit_target_gp(
    space: DesignSpace,
    features: pd.DataFrame,
    y: np.ndarray,
    *,
    residuals: np.ndarray | None = None,
    newest_first: np.ndarray | None = None,
    fit_rows: int = FIT_ROWS,
    seed: int = 0,
) -> TargetGP:
    """Fit the GP's hyperparameters on up to ``fit_rows`` rows, then condition on all.

    ``residuals``: measured minus the GBM's fitted value per row; with them the fitted
    kernel is also conditioned on the residuals, for `TargetGP.correction`.
    ``newest_first``: row indices in order of preference for the fitting subset (the
    loop's own recent experiments); the rest of the subset is a seeded random draw.
    """
    scaling = Scaling.of(space, list(features.columns))
    x = scaling(features)
    d = x.shape[1]
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
        np.full(d, PRIOR_LENGTH_SCALE), LENGTH_BOUNDS, nu=2.5
    ) + WhiteKernel(0.1, (1e-4, 1.0))
    subset = _fitting_rows(len(y), fit_rows, newest_first, seed)
    with warnings.catch_warnings():
        # length scales of columns the data never varies stay where they start: expected
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
        fitted.fit(x[subset], y[subset])
        gp = GaussianProcessRegressor(fitted.kernel_, normalize_y=True, optimizer=None)
        gp.fit(x, y)
    scale = float(np.std(y)) or 1.0  # normalize_y's scale, which the kernel was fitted in
    noise = float(np.sqrt(gp.kernel_.k2.noise_level)) * scale
    residual_gp = None
    if residuals is not None:
        # the kernel is in units of y / std(y): the residuals go in (and come out) scaled
        residual_gp = GaussianProcessRegressor(fitted.kernel_, optimizer=None)
        residual_gp.fit(x, residuals / scale)
    return TargetGP(scaling, gp, noise, residual_gp, scale)


def _fitting_rows(n: int, most: int, preferred: np.ndarray | None, seed: int) -> np.ndarray:
    if n <= most:
        return np.arange(n)
    first = np.asarray(preferred if preferred is not None else [], dtype=int)[:most]
    rest = np.setdiff1d(np.arange(n), first)
    drawn = np.random.default_rng(seed).choice(rest, most - len(first), replace=False)
    return np.concatenate([first, drawn])
