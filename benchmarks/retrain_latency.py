"""Wall time from a batch's tenth result to the next recipe file, split into its parts.

With the shipped history (~700 rows) and one measured batch, runs the retrain + propose
steps (what the learning worker does; the broker adds ~0.1 s) under two configurations,
in one run:

* paper:   50 random-search candidates x 5-fold CV, cold (the paper's set-up);
* labloop: 20 candidates x 5-fold CV, warm-started from the previous model's best.

Both compare the four models (Table 1), fit the 8-member bootstrap ensemble, the GP of
`agent.learning.uncertainty`, the feasibility model and the held-out-region error ("uncertainty"),
then propose with the default acquisition (trust-ei: the swarm's 100 particles x 1000
iterations and the batch). Prints the split and the CV RMSE.

    .venv/bin/python benchmarks/retrain_latency.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, select

from agent.config import Settings
from agent.demo import DEFAULT_HISTORY
from agent.lab import VirtualLab
from agent.loop.batches import campaign_space
from agent.loop.history_import import import_history
from agent.loop.propose import propose_next_batch
from agent.loop.retrain import retrain
from agent.store.db import Experiment, Result, get_engine

WIDTHS = (9, 9, 11, 13, 9, 8)
CONFIGS = {
    "paper": {"search_iterations": 50, "warm": False},
    "labloop": {"search_iterations": 20, "warm": True},
}


def measured_batch(home: Path, seed: int) -> tuple[Settings, object]:
    """A home with the history, batch 1 proposed and its ten results recorded."""
    settings = Settings(home=home, seed=seed, search_iterations=20)
    settings.ensure_folders()
    engine = get_engine(settings.database_url)
    space = campaign_space(settings)
    import_history(engine, DEFAULT_HISTORY, space)
    batch = propose_next_batch(engine, settings, space, retrain(engine, settings, space))
    lab = VirtualLab(seed, space)
    with Session(engine) as session:
        experiments = session.exec(select(Experiment).where(Experiment.batch_id == batch.id)).all()
        outcomes = lab.test([e.parameters for e in experiments])
        for experiment, outcome in zip(experiments, outcomes, strict=True):
            ok = outcome.measured_mah_g is not None
            session.add(Result(experiment_id=experiment.id, outcome="ok" if ok else "failed",
                               failure_class=None if ok else "synthesis",
                               discharge_mah_g=outcome.measured_mah_g, reason=outcome.reason,
                               source_sha256=f"bench-{experiment.sample_id}"))  # fmt: skip
        session.commit()
    return settings, engine


def run(name: str, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings, engine = measured_batch(Path(tmp), seed)
        config = CONFIGS[name]
        settings = settings.model_copy(update={"search_iterations": config["search_iterations"]})
        space = campaign_space(settings)
        started = time.perf_counter()
        model_run = retrain(engine, settings, space, trigger_batch=1, warm=config["warm"])
        trained = time.perf_counter()
        propose_next_batch(engine, settings, space, model_run)
        done = time.perf_counter()
        return {
            **model_run.timings,
            "retrain_s": trained - started,
            "pso_s": done - trained,
            "total_s": done - started,
            "cv_rmse": model_run.cv_rmse,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = {name: run(name, args.seed) for name in CONFIGS}
    print(f"{'config':<9} {'compare s':>9} {'search s':>9} {'final fit s':>11} "
          f"{'uncertainty s':>13} {'propose s':>9} {'total s':>8} {'CV RMSE':>8}")  # fmt: skip
    for name, r in rows.items():
        parts = (r["comparison_s"], r["search_s"], r["final_fit_s"], r["uncertainty_s"],
                 r["pso_s"], r["total_s"])  # fmt: skip
        print(f"{name:<9} " + " ".join(f"{v:>{w}.1f}" for v, w in zip(parts, WIDTHS, strict=True))
              + f" {r['cv_rmse']:>8.3f}")  # fmt: skip
    print(
        f"paper / labloop total time: {rows['paper']['total_s'] / rows['labloop']['total_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
