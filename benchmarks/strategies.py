"""The baselines of the campaign benchmark: random, one-factor-at-a-time, Bayesian optimisation.

Each strategy proposes a batch from ``observed``: a table with the design-space columns of
every experiment so far (history first, then its own batches), ``measured`` (mAh/g, NaN
unless the test was ok) and ``status`` (ok, synthesis, cell, measurement, unmeasured). The
rules are documented in `benchmarks.campaign`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.preprocessing import MinMaxScaler

from agent.space.design import DesignSpace, Recipe

# the order in which the expert varies parameters: the levers that move capacity most in
# the lab's experience first, the habits (Li source, atmosphere) last
OFAT_ORDER = (
    "calcination_temp_c", "ni_fraction", "li_ratio", "coating_temp_c", "calcination_time_h",
    "coating_amount", "co_fraction", "dopant_zr", "dopant_al", "dopant_nb", "dopant_b",
    "coating_time_h", "coating_material", "li_source", "atmosphere", "dopant_ti", "dopant_mg",
)  # fmt: skip
TOP_TO_PERTURB = 5  # candidates are perturbed from the best few measured recipes
MAX_CHANGED = 3  # a perturbation changes 1..3 parameters ...
MAX_STEPS = 3  # ... by 1..3 grid steps each (another choice for a categorical)


@dataclass(frozen=True)
class Plan:
    """A proposed batch and, for a model-based strategy, its predicted capacities."""

    recipes: list[Recipe]
    predicted_mah_g: list[float] | None = None


class Strategy(Protocol):
    label: str

    def propose(self, observed: pd.DataFrame, batch: int) -> Plan: ...


def measured(observed: pd.DataFrame) -> pd.DataFrame:
    return observed[observed["measured"].notna()]


def grid_of(space: DesignSpace, recipes: pd.DataFrame) -> np.ndarray:
    """Grid indices of recipes, each snapped onto the space (valid)."""
    vectors = np.stack([space.encode(r) for r in recipes.to_dict("records")])
    return space.grid.index(vectors)


def repaired(space: DesignSpace, grid: np.ndarray) -> np.ndarray:
    """Grid points moved inside the constraints (e.g. Co gives way when Ni rises)."""
    return space.grid.index(space.grid.vectors(grid))


class RandomSearch:
    label = "random"

    def __init__(self, space: DesignSpace, seed: int, batch_size: int) -> None:
        self.space, self.seed, self.batch_size = space, seed, batch_size

    def propose(self, observed: pd.DataFrame, batch: int) -> Plan:
        rng = np.random.default_rng([self.seed, batch])
        return Plan(self.space.random(self.batch_size, rng))


class OneFactorAtATime:
    label = "ofat"

    def __init__(self, space: DesignSpace, batch_size: int) -> None:
        self.space, self.batch_size = space, batch_size
        self.order = [n for n in OFAT_ORDER if n in {p.name for p in space.grid.searched}]

    def propose(self, observed: pd.DataFrame, batch: int) -> Plan:
        ok = measured(observed)
        incumbent = grid_of(self.space, ok.loc[[ok["measured"].idxmax()]])[0]
        name = self.order[(batch - 1) % len(self.order)]
        column = next(j for j, p in enumerate(self.space.grid.searched) if p.name == name)
        values = self._around(int(incumbent[column]), int(self.space.grid.top[column]))
        grid = np.repeat(incumbent[None, :], self.batch_size, axis=0)
        # fewer other values than slots: the rest re-make the incumbent as controls
        grid[: len(values), column] = values
        return Plan(self.space.grid.recipes(repaired(self.space, grid)))

    def _around(self, k: int, top: int) -> list[int]:
        """Up to batch_size other grid indices of one parameter, nearest to ``k`` first."""
        others = sorted((i for i in range(top + 1) if i != k), key=lambda i: (abs(i - k), i))
        return others[: self.batch_size]


def candidate_grid(
    space: DesignSpace, observed: pd.DataFrame, n: int, rng: np.random.Generator
) -> np.ndarray:
    """About ``n`` new, distinct grid points: half uniform over the valid grid, half
    perturbations of the best measured recipes."""
    codec = space.grid
    top = grid_of(space, measured(observed).nlargest(TOP_TO_PERTURB, "measured"))
    half = n // 2
    grid = top[rng.integers(len(top), size=half)]
    changed = rng.random(grid.shape).argsort(axis=1) < rng.integers(1, MAX_CHANGED + 1, (half, 1))
    steps = rng.integers(1, MAX_STEPS + 1, grid.shape) * rng.choice([-1, 1], grid.shape)
    numeric = np.clip(grid + steps, 0, codec.top)
    # another choice of a categorical: a shift by 1..(choices - 1), wrapped
    shift = rng.integers(1, np.maximum(codec.top, 1) + 1, size=grid.shape)
    other = (grid + shift) % (codec.top + 1)
    moved = np.where(codec.numeric, numeric, other)
    grid = np.where(changed, moved, grid)
    pool = np.unique(np.vstack([repaired(space, grid), codec.sample(n - half, rng)]), axis=0)
    tested = {row.tobytes() for row in grid_of(space, observed[list(space.columns)])}
    return pool[[row.tobytes() not in tested for row in pool]]


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    std = np.maximum(std, 1e-12)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


class GaussianProcessEI:
    """ARD Matérn-5/2 GP + expected improvement, batch by kriging believer (scikit-learn)."""

    label = "gp (scikit-learn GP-EI)"

    def __init__(self, space: DesignSpace, seed: int, batch_size: int, candidates: int) -> None:
        self.space, self.seed = space, seed
        self.batch_size, self.candidates = batch_size, candidates

    def propose(self, observed: pd.DataFrame, batch: int) -> Plan:
        rng = np.random.default_rng([self.seed, batch])
        grid = candidate_grid(self.space, observed, self.candidates, rng)
        train = measured(observed)
        x_train = self.space.features(train).to_numpy(float)
        x_pool = self.space.grid.features(grid).to_numpy(float)
        scaler = MinMaxScaler().fit(np.vstack([x_train, x_pool]))
        x_train, x_pool = scaler.transform(x_train), scaler.transform(x_pool)
        y = train["measured"].to_numpy(float)
        d = x_train.shape[1]
        kernel = ConstantKernel() * Matern(length_scale=np.ones(d), nu=2.5) + WhiteKernel()
        gp = GaussianProcessRegressor(kernel, normalize_y=True)
        with warnings.catch_warnings():
            # length scales of columns the data never varies sit at a bound: expected
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x_train, y)
        picks = kriging_believer(gp, x_train, y, x_pool, self.batch_size)
        predicted = gp.predict(x_pool[picks])
        return Plan(self.space.grid.recipes(grid[picks]), predicted.tolist())


def kriging_believer(
    gp: GaussianProcessRegressor, x: np.ndarray, y: np.ndarray, pool: np.ndarray, n: int
) -> list[int]:
    """``n`` rows of ``pool`` by expected improvement, one at a time: each pick is added to
    the data with the GP's own mean as its value (hyperparameters kept), which shrinks the
    uncertainty around it so that the next pick goes elsewhere."""
    believer = clone(gp).set_params(kernel=gp.kernel_, optimizer=None)
    best = float(gp.predict(x).max())  # noisy data: the incumbent is the best posterior mean
    model, chosen = gp, []
    for _ in range(min(n, len(pool))):
        mean, std = model.predict(pool, return_std=True)
        gain = expected_improvement(mean, std, best)
        gain[chosen] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        x, y = np.vstack([x, pool[pick]]), np.append(y, mean[pick])
        model = clone(believer).fit(x, y)
    return chosen


class BaybeBotorch:
    """BayBE's default Bayesian optimiser (its GP preset, qLogEI, sequential greedy batch)
    over the same candidate set; BayBE is an optional extra."""

    label = "gp (BayBE qLogEI)"

    def __init__(
        self, space: DesignSpace, seed: int, batch_size: int, candidates: int, threads: int
    ) -> None:
        from baybe.parameters import CategoricalParameter, NumericalDiscreteParameter

        self.space, self.seed = space, seed
        self.batch_size, self.candidates, self.threads = batch_size, candidates, threads
        self.names = [p.name for p in space.grid.searched]
        self.parameters = [
            CategoricalParameter(name=p.name, values=p.choices, encoding="OHE")
            if p.kind == "categorical"
            else NumericalDiscreteParameter(
                name=p.name, values=[p.at(k) for k in range(p.n_steps + 1)]
            )
            for p in space.grid.searched
        ]

    def propose(self, observed: pd.DataFrame, batch: int) -> Plan:
        import torch
        from baybe import Settings
        from baybe.recommenders import BotorchRecommender
        from baybe.searchspace import SearchSpace, SubspaceDiscrete
        from baybe.targets import NumericalTarget

        rng = np.random.default_rng([self.seed, batch])
        grid = candidate_grid(self.space, observed, self.candidates, rng)
        pool = self._filled(pd.DataFrame(self.space.grid.values(grid))[self.names])
        searchspace = SearchSpace(discrete=SubspaceDiscrete.from_dataframe(pool, self.parameters))
        objective = NumericalTarget(name="capacity").to_objective()
        train = measured(observed)
        data = self._filled(train[self.names]).assign(capacity=train["measured"].to_numpy(float))
        torch.set_num_threads(self.threads)
        with Settings(random_seed=self.seed * 1000 + batch, cache_directory=None):
            recommender = BotorchRecommender()
            chosen = recommender.recommend(self.batch_size, searchspace, objective, data)
            surrogate = recommender.get_surrogate(searchspace, objective, data)
            predicted = surrogate.posterior_stats(chosen, stats=("mean",))["capacity_mean"]
        # BayBE keeps the candidate table's index on its recommendations
        return Plan(self.space.grid.recipes(grid[chosen.index]), predicted.tolist())

    def _filled(self, recipes: pd.DataFrame) -> pd.DataFrame:
        """BayBE has no conditional parameters: a blank (no coating: no coating temperature)
        becomes the parameter's lowest value, as a user would encode it for BayBE."""
        lowest = {p.name: p.at(0) for p in self.space.grid.searched if p.condition and p.gridded}
        return recipes.fillna(lowest).infer_objects()


def baybe_available() -> bool:
    try:
        import baybe  # noqa: F401
    except ImportError:
        return False
    return True
