"""Learning: compare models, tune the GBM by cross-validated random search, add uncertainty.

Follows PAPER.md: DecisionTree, RandomForest, GradientBoosting and an MLP are compared by
five-fold CV (RMSE, MSE, R² on train and test folds, the paper's Table 1), and the GBM is
tuned by ``RandomizedSearchCV`` over the paper's ranges. The tuned GBM is the mean of every
prediction. Its uncertainty comes from a Gaussian process on the same data that grows away
from tested recipes (`agent.learning.uncertainty`; the paper-style bootstrap ensemble of the GBM is
kept beside it for the ``paper`` strategy), and its probability of success from a
classifier of ok vs failed syntheses that falls back to a prior where nothing was tried
(`agent.learning.feasibility`).

The search's best CV score is optimistic (the best of many candidates, on folds of random
rows that sit beside their neighbours): the report also gives ``region_rmse``, the tuned
GBM's error on folds that hold out whole regions of the tried recipes, the error to expect
on recipes unlike the ones tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from scipy.stats import randint, uniform
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    RandomizedSearchCV,
    cross_val_predict,
    cross_val_score,
    cross_validate,
)
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from agent.errors import LabloopError
from agent.learning.feasibility import Feasibility
from agent.learning.training_set import TrainingSet
from agent.learning.uncertainty import Scaling, TargetGP, fit_target_gp
from agent.space.design import DesignSpace

log = logging.getLogger(__name__)

# the paper's search ranges (PAPER.md, "The model")
PAPER_SEARCH_SPACE: dict[str, Any] = {
    "subsample": uniform(0.01, 0.99),
    "n_estimators": randint(50, 301),
    "max_depth": randint(3, 9),
    "learning_rate": uniform(0.001, 0.199),
    "min_samples_split": randint(2, 10),
}
METRIC_ROWS = ("RMSE train", "RMSE test", "R2 train", "R2 test", "MSE train", "MSE test")
MIN_TRAINING_ROWS = 10
# the loop's newest experiments always take part in fitting the GP's length scales
NEWEST_IN_GP_FIT = 100
MIN_REGION_ROWS = 50


class NotEnoughData(LabloopError, ValueError):
    """Too few measured experiments to train on."""


@dataclass(frozen=True)
class LearningConfig:
    # random-search candidates; the paper used 50, a warm start lets far fewer do as well
    n_iter: int = 20
    folds: int = 5
    # bootstrap members for the uncertainty of each prediction
    ensemble: int = 8
    compare: bool = True
    n_jobs: int = 2
    seed: int = 0
    # the uncertainty the acquisition reads: "gp" (grows away from the data) or "bootstrap"
    uncertainty: str = "gp"
    # P(success) far from every tried recipe; None: the classifier alone (the paper's way)
    feasibility_prior: float | None = 0.5
    # failed syntheses teach the success model; False leaves them out (an ablation)
    train_on_failures: bool = True


@dataclass(frozen=True)
class Prediction:
    mean_mah_g: np.ndarray
    std_mah_g: np.ndarray
    p_success: np.ndarray


@dataclass(frozen=True)
class Belief:
    """What the model believes of each recipe: the acquisition's inputs (mAh/g)."""

    mean_mah_g: np.ndarray
    # uncertainty of the true capacity (noise excluded): what exploring can resolve
    latent_std_mah_g: np.ndarray
    # uncertainty of a measurement of it (noise included): the recipe file's interval
    std_mah_g: np.ndarray
    p_success: np.ndarray


@dataclass
class TrainedModel:
    """Everything needed to predict a recipe's capacity; pickled to the models folder."""

    feature_columns: list[str]
    regressor: GradientBoostingRegressor
    ensemble: list[GradientBoostingRegressor]
    classifier: GradientBoostingClassifier | None
    hyperparameters: dict[str, Any]
    target_gp: TargetGP | None = None
    feasibility: Feasibility | None = None
    # replicate noise (1 sigma): the GP's estimate, else the CV error
    noise_mah_g: float = 0.0

    def predict_features(self, features: pd.DataFrame) -> Prediction:
        x = features[self.feature_columns].to_numpy(dtype=float)
        return Prediction(self.regressor.predict(x), self._spread(x), self._classifier_p(x))

    def _members(self, x: np.ndarray) -> np.ndarray:
        """Each bootstrap member's prediction, one row per member."""
        return np.stack([member.predict(x) for member in self.ensemble])

    def _spread(self, x: np.ndarray) -> np.ndarray:
        return self._members(x).std(axis=0) if len(self.ensemble) > 1 else np.zeros(len(x))

    def _classifier_p(self, x: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            return np.ones(len(x))
        return self.classifier.predict_proba(x)[:, 1]

    def predict(self, space: DesignSpace, recipes: list[dict[str, Any]]) -> Prediction:
        return self.predict_features(space.features(recipes))

    def mean(self, features: pd.DataFrame) -> np.ndarray:
        """The GBM's mean, corrected by the GP on its residuals where there is one."""
        mean = self.regressor.predict(features[self.feature_columns].to_numpy(dtype=float))
        if self.target_gp is not None:
            mean = mean + self.target_gp.correction(features)
        return mean

    def belief(self, features: pd.DataFrame) -> Belief:
        """Mean, distance-aware uncertainty and feasibility of each row."""
        x = features[self.feature_columns].to_numpy(dtype=float)
        if self.target_gp is not None:
            latent = self.target_gp.latent_std(features)
        else:
            latent = self._spread(x)
        std = np.sqrt(latent**2 + self.noise_mah_g**2)
        if self.feasibility is None:
            p = self._classifier_p(x)
        else:
            p = self.feasibility.p_success(features)
        return Belief(self.mean(features), latent, std, p)

    def latent_cov(self, features: pd.DataFrame) -> np.ndarray:
        """Joint uncertainty of the rows' true capacities: the GP posterior covariance, or
        the bootstrap members' covariance without a GP."""
        if self.target_gp is not None:
            return self.target_gp.latent_cov(features)
        x = features[self.feature_columns].to_numpy(dtype=float)
        if len(self.ensemble) < 2:
            return np.zeros((len(x), len(x)))
        return np.atleast_2d(np.cov(self._members(x), rowvar=False))


@dataclass
class LearningReport:
    comparison: dict[str, dict[str, float]] | None
    hyperparameters: dict[str, Any]
    cv_rmse: float
    cv_r2: float
    timings: dict[str, float] = field(default_factory=dict)
    # out-of-fold predictions of the tuned GBM, for the parity plot
    oof_predictions: list[float] = field(default_factory=list)
    # error of the tuned GBM on held-out regions (see the module docstring)
    region_rmse: float | None = None


def impute(recipes: pd.DataFrame, space: DesignSpace) -> pd.DataFrame:
    """Fill values missing in old records: numbers by the median, categories by the mode.
    A parameter that does not apply to a row (no coating: its amount) stays blank."""
    frame = recipes.reindex(columns=list(space.declared)).copy()
    for name, parameter in space.declared.items():
        if parameter.condition is not None:
            applies = frame[parameter.condition.parent].isin(parameter.condition.choices)
            frame[name] = frame[name].astype(object).where(applies, None)
        else:
            applies = pd.Series(True, index=frame.index)
        column = frame[name][applies]
        if not column.isna().any():
            continue
        if parameter.numeric:
            filler = pd.to_numeric(column, errors="coerce").median()
        else:
            modes = column.dropna().mode()
            filler = modes.iloc[0] if len(modes) else None
        if filler is None or pd.isna(filler):
            filler = parameter.value if parameter.kind == "fixed" else _middle(parameter)
        filled = (column if parameter.numeric else column.astype(object)).fillna(filler)
        frame[name] = filled if applies.all() else frame[name].where(~applies, filled)
    return frame


def _middle(parameter: Any) -> Any:
    if parameter.numeric:
        return parameter.at(parameter.n_steps // 2)
    return parameter.choices[0]


MODEL_NAMES = ("DT", "RF", "GBM", "NN")


# early stopping holds out 10 % of a fold: below this many rows that is too few to score
EARLY_STOPPING_ROWS = 100


def _models(seed: int, n_jobs: int, rows: int) -> dict[str, Any]:
    return {
        "DT": DecisionTreeRegressor(random_state=seed),
        "RF": RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=n_jobs),
        "GBM": GradientBoostingRegressor(random_state=seed),
        # scaled inputs and target: an MLP fed raw capacities (~220) barely trains
        "NN": TransformedTargetRegressor(
            make_pipeline(
                StandardScaler(),
                MLPRegressor(
                    hidden_layer_sizes=(64, 32),
                    alpha=1e-2,
                    early_stopping=rows >= EARLY_STOPPING_ROWS,
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
            transformer=StandardScaler(),
        ),  # fmt: skip
    }


def compare_models(
    x: np.ndarray, y: np.ndarray, config: LearningConfig, skip: Collection[str] = ()
) -> dict[str, dict]:
    """The paper's Table 1: {model: {"RMSE train": .., "RMSE test": .., ...}} (models in
    ``skip`` are left out)."""
    folds = KFold(config.folds, shuffle=True, random_state=config.seed)
    table = {}
    for name, model in _models(config.seed, config.n_jobs, len(y)).items():
        if name in skip:
            continue
        scores = cross_validate(
            model, x, y, cv=folds, return_train_score=True, n_jobs=config.n_jobs,
            scoring=("neg_root_mean_squared_error", "neg_mean_squared_error", "r2"),
        )  # fmt: skip
        table[name] = {
            "RMSE train": abs(scores["train_neg_root_mean_squared_error"].mean()),
            "RMSE test": abs(scores["test_neg_root_mean_squared_error"].mean()),
            "R2 train": float(scores["train_r2"].mean()),
            "R2 test": float(scores["test_r2"].mean()),
            "MSE train": abs(scores["train_neg_mean_squared_error"].mean()),
            "MSE test": abs(scores["test_neg_mean_squared_error"].mean()),
        }
    return table


def _scores(
    y_train: np.ndarray, fit_train: np.ndarray, y_test: np.ndarray, fit_test: np.ndarray
) -> dict[str, float]:
    """One fold's row of the comparison: RMSE, R² and MSE on its train and test parts."""
    mse_train = float(np.mean((y_train - fit_train) ** 2))
    mse_test = float(np.mean((y_test - fit_test) ** 2))
    return {
        "RMSE train": mse_train**0.5,
        "RMSE test": mse_test**0.5,
        "R2 train": 1.0 - mse_train / float(np.var(y_train)),
        "R2 test": 1.0 - mse_test / float(np.var(y_test)),
        "MSE train": mse_train,
        "MSE test": mse_test,
    }


def tune_gbm(
    x: np.ndarray, y: np.ndarray, config: LearningConfig, warm_start: dict[str, Any] | None = None
) -> tuple[dict[str, Any], float]:
    """Best GBM hyperparameters by k-fold random search, and their CV RMSE.

    ``warm_start`` (the last model's best) is scored on the same folds and kept when it
    beats every new candidate, so a small search never makes the model worse.
    """
    folds = KFold(config.folds, shuffle=True, random_state=config.seed)
    search = RandomizedSearchCV(
        GradientBoostingRegressor(random_state=config.seed),
        PAPER_SEARCH_SPACE,
        n_iter=config.n_iter,
        cv=folds,
        scoring="neg_root_mean_squared_error",
        n_jobs=config.n_jobs,
        random_state=config.seed,
    )
    search.fit(x, y)
    best, best_rmse = dict(search.best_params_), -float(search.best_score_)
    if warm_start:
        previous = GradientBoostingRegressor(random_state=config.seed, **warm_start)
        rmse = -cross_val_score(
            previous, x, y, cv=folds, scoring="neg_root_mean_squared_error", n_jobs=config.n_jobs
        ).mean()
        if rmse < best_rmse:
            best, best_rmse = dict(warm_start), float(rmse)
    return _plain(best), best_rmse


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars -> Python numbers, so hyperparameters store as JSON."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}


def fit(
    training: TrainingSet,
    space: DesignSpace,
    config: LearningConfig = LearningConfig(),
    warm_start: dict[str, Any] | None = None,
) -> tuple[TrainedModel, LearningReport]:
    """Train the capacity model (and success classifier) on a training set.

    The ``n_jobs`` of the comparison and the search run in threads of this process, not
    in joblib's default loky worker processes: those outlived a learning worker killed
    with -9 by 25 minutes, still holding memory and busy with the dead worker's search.
    Threads die with it. A backend the caller chose with joblib's ``parallel_config`` wins.
    """
    with parallel_config(prefer="threads"):
        return _fit(training, space, config, warm_start)


def _fit(
    training: TrainingSet,
    space: DesignSpace,
    config: LearningConfig,
    warm_start: dict[str, Any] | None,
) -> tuple[TrainedModel, LearningReport]:
    if training.size < MIN_TRAINING_ROWS:
        raise NotEnoughData(
            f"only {training.size} measured experiments: at least {MIN_TRAINING_ROWS} are "
            "needed; import the lab's history first (labloop import-history FILE.csv)"
        )
    timings: dict[str, float] = {}
    features = space.features(impute(training.recipes, space))
    columns = list(features.columns)
    x, y = features.to_numpy(dtype=float), training.capacity_mah_g

    started = time.perf_counter()
    # the GBM column is the tuned model's, filled in below
    comparison = compare_models(x, y, config, skip={"GBM"}) if config.compare else None
    timings["comparison_s"] = time.perf_counter() - started

    started = time.perf_counter()
    best, cv_rmse = tune_gbm(x, y, config, warm_start)
    timings["search_s"] = time.perf_counter() - started

    started = time.perf_counter()
    regressor = GradientBoostingRegressor(random_state=config.seed, **best).fit(x, y)
    folds = KFold(config.folds, shuffle=True, random_state=config.seed)
    oof = np.empty_like(y)
    fold_scores = []
    for train_idx, test_idx in folds.split(x):
        member = clone(regressor).fit(x[train_idx], y[train_idx])
        oof[test_idx] = member.predict(x[test_idx])
        fold_scores.append(
            _scores(y[train_idx], member.predict(x[train_idx]), y[test_idx], oof[test_idx])
        )
    # one set of figures for the model in use: the comparison's GBM column is the tuned GBM
    # on the search's folds, whose mean test R² is the R² reported everywhere
    tuned = {key: float(np.mean([f[key] for f in fold_scores])) for key in fold_scores[0]}
    if comparison is not None:
        comparison = {name: comparison.get(name, tuned) for name in MODEL_NAMES}
    rng = np.random.default_rng(config.seed)
    ensemble = []
    for member in range(config.ensemble):
        rows = rng.integers(0, len(y), len(y))
        model = GradientBoostingRegressor(random_state=config.seed + member + 1, **best)
        ensemble.append(model.fit(x[rows], y[rows]))
    classifier = _fit_classifier(training, space, columns, config)
    timings["final_fit_s"] = time.perf_counter() - started

    started = time.perf_counter()
    scaling = Scaling.of(space, columns)
    target_gp = None
    if config.uncertainty == "gp":
        newest = np.arange(len(y))[::-1][:NEWEST_IN_GP_FIT]
        target_gp = fit_target_gp(
            space, features, y, residuals=y - regressor.predict(x), newest_first=newest,
            seed=config.seed,
        )  # fmt: skip
    feasibility = _feasibility(training, space, scaling, columns, classifier, config)
    region_rmse = _region_rmse(scaling(features), x, y, best, config)
    timings["uncertainty_s"] = time.perf_counter() - started

    cv_r2 = tuned["R2 test"]
    log.info(
        "trained on %d experiments: CV RMSE %.2f mAh/g (held-out regions %s), %s",
        len(y), cv_rmse, f"{region_rmse:.2f}" if region_rmse is not None else "n/a", best,
    )  # fmt: skip
    noise = target_gp.noise_mah_g if target_gp is not None else cv_rmse
    model = TrainedModel(
        columns, regressor, ensemble, classifier, best, target_gp, feasibility, noise
    )
    report = LearningReport(
        comparison, best, cv_rmse, cv_r2, timings, oof.tolist(), region_rmse=region_rmse
    )
    return model, report


def region_folds(scaled: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A region label per row: k-means clusters of the scaled recipes, one per fold."""
    k = min(folds, len(scaled))
    return KMeans(k, n_init=4, random_state=seed).fit_predict(scaled)


def _region_rmse(
    scaled: np.ndarray, x: np.ndarray, y: np.ndarray, best: dict[str, Any], config: LearningConfig
) -> float | None:
    """RMSE of the tuned GBM predicting each region from the others; None with too few rows
    to leave a region out (a subsample of a small training fold can be empty)."""
    if len(y) < MIN_REGION_ROWS:
        return None
    groups = region_folds(scaled, config.folds, config.seed)
    smallest_fold = len(y) - np.bincount(groups).max()
    if smallest_fold * best.get("subsample", 1.0) < MIN_REGION_ROWS / 5:
        return None
    model = GradientBoostingRegressor(random_state=config.seed, **best)
    predicted = cross_val_predict(
        model, x, y, groups=groups, cv=GroupKFold(len(set(groups))), n_jobs=config.n_jobs
    )
    return float(np.sqrt(np.mean((y - predicted) ** 2)))


def _feasibility(
    training: TrainingSet,
    space: DesignSpace,
    scaling: Scaling,
    columns: list[str],
    classifier: GradientBoostingClassifier | None,
    config: LearningConfig,
) -> Feasibility | None:
    if config.feasibility_prior is None or not len(training.success):
        return None
    # left out of training means left out here too: only the successes count as tried
    kept = (
        np.ones(len(training.success), bool) if config.train_on_failures else training.success == 1
    )
    recipes = training.outcome_recipes[kept]
    tried = scaling(space.features(impute(recipes.reset_index(drop=True), space)))
    success = training.success[kept].astype(float)
    return Feasibility(
        scaling, tried, success, classifier, float(success.mean()), config.feasibility_prior,
        columns,
    )  # fmt: skip


def _fit_classifier(
    training: TrainingSet, space: DesignSpace, columns: list[str], config: LearningConfig
) -> GradientBoostingClassifier | None:
    """P(success) from ok vs synthesis-failed experiments; None while there are too few.

    Boosted trees rather than a forest: the swarm asks for 100 predictions per iteration,
    and a small boosted model answers in a fraction of a forest's time."""
    failures = int((training.success == 0).sum())
    if not config.train_on_failures or failures < 2 or failures == len(training.success):
        return None
    features = space.features(impute(training.outcome_recipes, space))[columns]
    classifier = GradientBoostingClassifier(
        n_estimators=100, max_depth=3, subsample=0.8, random_state=config.seed
    )
    return classifier.fit(features.to_numpy(dtype=float), training.success)
