"""A fast regression check of sample efficiency: labloop must keep beating random.

Small budgets, three seeds, two batches on the baseline virtual lab: the full benchmark
(benchmarks/campaign.py, BENCHMARKS.md) is the measurement; this only fails when labloop's
median gain over the history falls to random's.
"""

from __future__ import annotations

import numpy as np
import pytest

from agent.lab import generate_history
from agent.space.design import DesignSpace
from benchmarks.campaign import Config, history_best, run_job, trials_frame
from benchmarks.campaign_report import curves

SEEDS = (0, 1, 2)
FAST = Config(
    batches=2,
    history_rows=300,
    labloop={"pso_particles": 30, "pso_iterations": 60, "search_iterations": 3, "cv_folds": 3,
             "ensemble_size": 2, "compare_models": False},
)  # fmt: skip


@pytest.fixture(scope="module")
def gains() -> dict[str, np.ndarray]:
    space = DesignSpace.load()
    baselines = {s: history_best(generate_history(s, FAST.history_rows, space)) for s in SEEDS}
    frame = trials_frame([t for m in ("labloop", "random") for s in SEEDS
                          for t in run_job(m, s, FAST)])  # fmt: skip
    start = np.array(list(baselines.values()))[:, None]
    return {
        m: np.median(curves(frame, baselines, m, FAST.batches) - start, axis=0)
        for m in ("labloop", "random")
    }


def test_labloop_gains_more_than_random_over_the_history(gains):
    assert gains["labloop"][-1] > gains["random"][-1] + 1.0, gains
    assert gains["labloop"][1] > 0.0, gains  # it improves on the history in its first batch
