"""Does the stated uncertainty hold? Coverage on held-out folds of each lab's history.

For each lab of the family and each seed, the biased history's measured rows are split in
five folds twice: **random** rows, and **regions** (k-means clusters of the scaled recipes,
`agent.learning.model.region_folds`: a fold is a part of the space the model never saw). A model
is trained on four folds with labloop's learning (`agent.learning.model.fit`) and predicts the
fifth. Three uncertainties of the same predictions are scored:

* **bootstrap**: the spread of the GBM's bootstrap ensemble (what the paper's strategy and
  labloop before the acquisition stated);
* **bootstrap + noise**: the same, with the CV error added in quadrature as replicate noise;
* **GP** (labloop's default): the distance-aware GP of `agent.learning.uncertainty`, noise included,
  around the GBM mean corrected by the GP on its residuals.

Columns: RMSE of the mean (GBM alone and GBM + GP correction), the share of held-out
measurements inside ± 1 σ (ideal 68 %) and ± 1.96 σ (95 %), and Spearman's rank correlation
between σ and the absolute error (does σ say which predictions to doubt?).

    .venv/bin/python -m benchmarks.uncertainty --seeds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import GroupKFold, KFold

from agent.lab import LABS, generate_history
from agent.learning.model import LearningConfig, fit, region_folds
from agent.learning.training_set import TrainingSet
from agent.learning.uncertainty import Scaling
from agent.space.design import DesignSpace

METHODS = ("bootstrap", "bootstrap + noise", "GP")
CONFIG = LearningConfig(n_iter=10, compare=False, n_jobs=2)


def training_set(history: pd.DataFrame, space: DesignSpace) -> TrainingSet:
    """The history as labloop would load it: measured rows, and ok vs failed outcomes."""
    measured = history[history["initial_discharge_mah_g"].notna()].reset_index(drop=True)
    tried = history[
        history["initial_discharge_mah_g"].notna() | (history["status"] == "failed")
    ].reset_index(drop=True)
    return TrainingSet(
        recipes=measured[list(space.columns)],
        capacity_mah_g=measured["initial_discharge_mah_g"].to_numpy(float),
        sample_ids=measured["sample_id"].tolist(),
        outcome_recipes=tried[list(space.columns)],
        success=tried["initial_discharge_mah_g"].notna().to_numpy(int),
    )


def subset(training: TrainingSet, rows: np.ndarray) -> TrainingSet:
    return TrainingSet(
        recipes=training.recipes.iloc[rows].reset_index(drop=True),
        capacity_mah_g=training.capacity_mah_g[rows],
        sample_ids=[training.sample_ids[i] for i in rows],
        outcome_recipes=training.outcome_recipes,
        success=training.success,
    )


def held_out(space: DesignSpace, training: TrainingSet, split: str, seed: int) -> pd.DataFrame:
    """One row per measured experiment: its held-out predictions and each method's σ."""
    features = space.features(training.recipes)
    if split == "random":
        folds = KFold(5, shuffle=True, random_state=seed).split(features)
    else:
        scaled = Scaling.of(space, list(features.columns))(features)
        groups = region_folds(scaled, 5, seed)
        folds = GroupKFold(5).split(features, groups=groups)
    rows = []
    for train, test in folds:
        model, report = fit(subset(training, train), space, CONFIG)
        x = features.iloc[test].reset_index(drop=True)
        gbm = model.regressor.predict(x[model.feature_columns].to_numpy(float))
        members = np.stack([m.predict(x[model.feature_columns].to_numpy(float))
                            for m in model.ensemble])  # fmt: skip
        belief = model.belief(x)
        rows.append(pd.DataFrame({
            "measured": training.capacity_mah_g[test],
            "gbm": gbm,
            "mean": belief.mean_mah_g,
            "bootstrap": members.std(axis=0),
            "bootstrap + noise": np.sqrt(members.std(axis=0) ** 2 + report.cv_rmse**2),
            "GP": belief.std_mah_g,
        }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def scores(frame: pd.DataFrame) -> dict[str, list[str]]:
    rmse_gbm = np.sqrt(np.mean((frame["measured"] - frame["gbm"]) ** 2))
    rmse_mean = np.sqrt(np.mean((frame["measured"] - frame["mean"]) ** 2))
    out = {}
    for method in METHODS:
        mean = frame["mean"] if method == "GP" else frame["gbm"]
        error = (frame["measured"] - mean).abs()
        z = error / np.maximum(frame[method], 1e-9)
        rho = spearmanr(frame[method], error).statistic
        out[method] = [
            f"{rmse_mean if method == 'GP' else rmse_gbm:.2f}",
            f"{(z <= 1).mean() * 100:.0f}",
            f"{(z <= 1.96).mean() * 100:.0f}",
            f"{frame[method].median():.2f}",
            f"{rho:+.2f}",
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labs", default=",".join(LABS))
    parser.add_argument("--rows", type=int, default=700, help="history rows per seed")
    args = parser.parse_args()
    space = DesignSpace.load()
    header = ["lab", "folds", "uncertainty", "RMSE of the mean (mAh/g)", "inside ±1σ (%)",
              "inside ±1.96σ (%)", "median σ (mAh/g)", "Spearman(σ, |error|)"]  # fmt: skip
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    started = time.perf_counter()
    for name in args.labs.split(","):
        for split in ("random", "region"):
            frames = [
                held_out(
                    space,
                    training_set(generate_history(s, args.rows, space, LABS[name]), space),
                    split,
                    s,
                )  # fmt: skip
                for s in range(args.seeds)
            ]
            for method, cells in scores(pd.concat(frames, ignore_index=True)).items():
                print(f"| {name} | {split} | {method} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{args.seeds} seeds x {args.rows} history rows per lab; "
          f"wall time {time.perf_counter() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
