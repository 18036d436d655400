"""Sample efficiency on the virtual labs: how fast does each method find good recipes?

Every method gets the same start, budget and lab, seed by seed: the lab's history
``generate_history(seed, lab=...)`` (700 biased past experiments), ``batches`` batches of
ten, and ``VirtualLab(seed, lab=...)``. Sample ids are ``B001-S01`` ... for every method,
so slot k of batch b draws the same noise and failure numbers whatever the method (common
random numbers).

Methods
-------
* **labloop** (and its variants): the real loop's domain functions, no broker. Per seed a
  temporary labloop home (SQLite), the history imported with ``import_history``, then per
  batch ``retrain`` + ``propose_next_batch``; the lab tests the batch and each outcome is
  stored as the Result row ingest would store (`result_row`). Settings are labloop's
  defaults (environment and labloop.toml ignored) with ``seed`` = the run's seed, the
  variant's changes and the flags' ``pso_iterations`` and ``search_iterations``.
* **random**: ``space.random(10, rng)`` per batch.
* **ofat** (one factor at a time, the expert): the incumbent is the best measured recipe so
  far (at first the history's best, snapped onto the grid). Batch b varies one parameter,
  the b-th of ``strategies.OFAT_ORDER`` (calcination temperature, Ni, Li/M, coating
  temperature, calcination time, coating amount, ...), over the 10 grid values nearest the
  incumbent's (other choices for a categorical), everything else at the incumbent; a
  parameter with fewer than 10 other values fills the batch with re-makes of the incumbent
  (controls). Constraints are repaired as everywhere (Co gives way when Ni rises). The best
  measured recipe becomes the next incumbent.
* **gp**: the Bayesian optimiser a lab would pick today. BayBE (``BotorchRecommender``
  defaults: its GP preset and qLogEI, sequential greedy batch) when it is installed, else a
  scikit-learn GP (``ConstantKernel * Matern(nu=2.5, ARD) + WhiteKernel``, normalised y, on
  ``space.features`` min-max scaled) with expected improvement and a kriging-believer
  batch. Both choose from the same candidates, re-drawn per batch: half uniform valid
  recipes, half perturbations (1-3 parameters, 1-3 grid steps) of the 5 best measured,
  tested ones removed. Failed syntheses (and cell or measurement failures) give no
  capacity and are left out of the GP, as BayBE leaves out rows without a target value.

Metrics (B = batches, curves over batches 0..B, 0 = the history)
------------------------------------------------------------------
* best(n): the best TRUE capacity among the recipes a method tested successfully (ok) in
  batches 1..n, and among the history's measured recipes (best(0)); median and 25-75 %
  over seeds.
* regret = true optimum (``true_optimum``, exact on the grid) - best(B).
* batches to within 1 mAh/g: the first n with best(n) >= optimum - 1 (median over seeds,
  a seed that never gets there counts as infinite: "not within B").
* gain(n) = median over seeds of best(n) - best(0).
* EF(n) = gain_method(n) / gain_random(n) (Liang et al. 2021, npj Comput. Mater. 7:188;
  Rohr et al. 2020, Chem. Sci. 11:2696): ∞ when random has gained nothing and the method
  has, n/a when neither has.
* AF = n_random / n_method, where n_method is the first batch at which gain_method reaches
  gain_method(B) and n_random the first batch at which gain_random reaches it; when random
  does not within B, n_random is capped at B + 1 and AF is a lower bound (≥).
* AF (extrapolated): random's n_random without the cap. Uniform random sampling needs a
  geometric number of batches to test ok a recipe at or above the method's median best(B);
  its median comes from p = P(ok and true capacity >= that level), estimated on 10^6
  uniform valid recipes with the lab's own synthesis- and cell-failure rates. AF = that
  median / n_method.
* failure shares: the method's experiments by outcome, with ingest's failure classes
  (synthesis; cell = short, no discharge, dead; measurement = aborted).
* MAPE: mean |predicted - measured| / measured of a model-based method's own proposals
  that tested ok (labloop: the recipe file's predicted capacity; gp: the posterior mean).

Each (method, seed) job runs in one of ``--workers`` spawned processes (default 2), each on
one core (joblib's sequential backend for labloop's learning, BLAS and torch at one
thread). On the 2-core development machine that is 1.5x faster than one process using both
cores (2 seeds, labloop + random + BayBE: 304 s vs 459 s), with identical results.

    .venv/bin/python -m benchmarks.campaign --seeds 5 --labs baseline,cliff \\
        --methods labloop,paper,random,ofat,gp --trials trials.csv

Labs (``--labs``) are the virtual family of `agent.lab.LABS`; each prints its tables and
writes ``campaign-LAB.png`` into ``--out``. labloop runs at its default budgets unless
``--pso-iterations`` / ``--search-iterations`` say otherwise. Methods ``paper``, ``no-gp``,
``no-trust-region``, ``global-share``, ``no-feasibility-prior`` and ``failures-left-out`` are
labloop with settings changed (``VARIANTS``): the paper's strategy and the ablations.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlmodel import Session, select
from threadpoolctl import threadpool_limits

from agent.config import Settings
from agent.cycler.base import FailureClass
from agent.inbox.sample_ids import format_sample_id
from agent.lab import (
    BASELINE,
    LABS,
    Kind,
    Lab,
    LabOutcome,
    VirtualLab,
    generate_history,
    lab_named,
    true_capacity,
    true_optimum,
)
from agent.lab.failures import CELL_FAILURES, synthesis_failure_probability
from agent.loop.batches import record_progress
from agent.loop.history_import import import_history
from agent.loop.propose import propose_next_batch
from agent.loop.retrain import retrain
from agent.space.design import DesignSpace
from agent.store.db import Experiment, Result, init_db, make_engine
from benchmarks.campaign_report import report
from benchmarks.strategies import (
    BaybeBotorch,
    GaussianProcessEI,
    OneFactorAtATime,
    RandomSearch,
    Strategy,
    baybe_available,
)

# labloop and its variants: the real loop with these settings changed
VARIANTS: dict[str, dict[str, Any]] = {
    "labloop": {},
    "paper": {"strategy": "paper"},
    "no-gp": {"uncertainty": "bootstrap"},
    "no-trust-region": {"trust_region": False},
    "global-share": {"global_share": 0.1},
    "no-feasibility-prior": {"feasibility_prior": None},
    "failures-left-out": {"train_on_failures": False},
}
METHODS = (*VARIANTS, "random", "ofat", "gp")
LABELS = {
    "labloop": "labloop (trust-ei)",
    "paper": "labloop, strategy=paper",
    "no-gp": "labloop, bootstrap σ (no GP)",
    "no-trust-region": "labloop, no trust region",
    "global-share": "labloop, global share 0.1",
    "no-feasibility-prior": "labloop, no feasibility prior",
    "failures-left-out": "labloop, failures left out",
    "random": "random",
    "ofat": "OFAT expert",
}
GP_LABELS = {"baybe": BaybeBotorch.label, "sklearn": GaussianProcessEI.label}
# what ingest records for each way a test can fail (README, "Test outcomes are data")
FAILURE_CLASS = {
    Kind.SYNTHESIS_FAILED: FailureClass.SYNTHESIS,
    Kind.SHORT: FailureClass.CELL,
    Kind.NO_DISCHARGE: FailureClass.CELL,
    Kind.DEAD: FailureClass.CELL,
    Kind.ABORTED: FailureClass.MEASUREMENT,
}


@dataclass(frozen=True)
class Config:
    batches: int = 6
    batch_size: int = 10
    # rows of generate_history(seed): the paper-shaped 700 (fewer keeps a test fast)
    history_rows: int = 700
    # labloop Settings that differ from its defaults (besides seed and batch_size)
    labloop: dict[str, Any] = field(default_factory=dict)
    # candidates per batch for the gp method
    candidates: int = 2000
    # "baybe", "sklearn" or "auto" (BayBE when installed)
    bo: str = "auto"
    # cores one job may use: 1 when jobs run side by side in processes
    threads: int = 2
    # the virtual lab of the family (agent.lab.LABS)
    lab: str = "baseline"


@dataclass(frozen=True)
class Trial:
    """One experiment a method spent."""

    method: str
    seed: int
    batch: int
    recipe: dict[str, Any]
    kind: Kind
    true_mah_g: float
    measured_mah_g: float | None
    predicted_mah_g: float | None
    predicted_std_mah_g: float | None = None


def result_row(experiment_id: int, outcome: LabOutcome, source: str) -> Result:
    """The Result ingest stores for a lab outcome: ok with the measured capacity, or failed
    with its failure class and reason."""
    if outcome.kind is Kind.OK:
        return Result(experiment_id=experiment_id, outcome="ok",
                      discharge_mah_g=outcome.measured_mah_g, charge_mah_g=outcome.charge_mah_g,
                      active_mass_mg=outcome.active_mass_mg, source_sha256=source)  # fmt: skip
    return Result(experiment_id=experiment_id, outcome="failed",
                  failure_class=FAILURE_CLASS[outcome.kind], reason=outcome.reason,
                  source_sha256=source)  # fmt: skip


def status_of(kind: Kind) -> str:
    """ok, or the failure class ingest gives the outcome."""
    return "ok" if kind is Kind.OK else str(FAILURE_CLASS[kind])


def history_observations(history: pd.DataFrame, space: DesignSpace) -> pd.DataFrame:
    """The history as strategies see it: recipe columns, ``measured``, ``status``."""
    value = history["initial_discharge_mah_g"]
    status = history["status"].where(history["status"] != "failed", "synthesis")
    status = status.where(value.notna() | (status == "synthesis"), "unmeasured")
    return history[list(space.columns)].assign(measured=value, status=status)


class _Defaults(Settings):
    """labloop's defaults, whatever LABLOOP_* variables or a labloop.toml say."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **sources: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _trials(method: str, seed: int, batch: int, outcomes: Sequence[LabOutcome],
            predicted: Sequence[float | None],
            std: Sequence[float | None] | None = None) -> list[Trial]:  # fmt: skip
    std = std or [None] * len(outcomes)
    return [
        Trial(method, seed, batch, o.recipe, o.kind, o.true_mah_g, o.measured_mah_g, p, s)
        for o, p, s in zip(outcomes, predicted, std, strict=True)
    ]


def run_labloop(
    space: DesignSpace, seed: int, history: pd.DataFrame, lab: VirtualLab, config: Config,
    variant: str = "labloop",
) -> list[Trial]:  # fmt: skip
    """The real loop, batch after batch, in a throw-away labloop home."""
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="labloop-campaign-") as tmp:
        home = Path(tmp)
        overrides = config.labloop | VARIANTS[variant]
        settings = _Defaults(home=home, seed=seed, batch_size=config.batch_size, **overrides)
        settings.ensure_folders()
        engine = make_engine(settings.database_url)
        init_db(engine)
        history.to_csv(home / "history.csv", index=False)
        import_history(engine, home / "history.csv", space)
        for number in range(1, config.batches + 1):
            trigger = number - 1 if number > 1 else None  # the first model is zero-shot
            batch = propose_next_batch(engine, settings, space,
                                       retrain(engine, settings, space, trigger))  # fmt: skip
            with Session(engine) as session:
                experiments = session.exec(
                    select(Experiment)
                    .where(Experiment.batch_id == batch.id)
                    .order_by(Experiment.sample_id)
                ).all()
                outcomes = lab.test([e.parameters for e in experiments],
                                    [e.sample_id for e in experiments])  # fmt: skip
                for e, outcome in zip(experiments, outcomes, strict=True):
                    session.add(result_row(e.id, outcome, f"campaign:{e.sample_id}"))
                session.commit()
                predicted = [e.predicted_mah_g for e in experiments]
                std = [e.predicted_std_mah_g for e in experiments]
            record_progress(engine, batch.id)
            trials += _trials(variant, seed, number, outcomes, predicted, std)
        engine.dispose()
    return trials


def make_strategy(method: str, space: DesignSpace, seed: int, config: Config) -> Strategy:
    if method == "random":
        return RandomSearch(space, seed, config.batch_size)
    if method == "ofat":
        return OneFactorAtATime(space, config.batch_size)
    if bo_backend(config.bo) == "baybe":
        return BaybeBotorch(space, seed, config.batch_size, config.candidates, config.threads)
    return GaussianProcessEI(space, seed, config.batch_size, config.candidates)


def bo_backend(choice: str) -> str:
    if choice == "auto":
        return "baybe" if baybe_available() else "sklearn"
    return choice


def run_strategy(
    method: str, space: DesignSpace, seed: int, history: pd.DataFrame, lab: VirtualLab,
    config: Config,
) -> list[Trial]:  # fmt: skip
    strategy = make_strategy(method, space, seed, config)
    observed = history_observations(history, space)
    trials: list[Trial] = []
    for number in range(1, config.batches + 1):
        plan = strategy.propose(observed, number)
        ids = [format_sample_id(number, slot) for slot in range(1, len(plan.recipes) + 1)]
        outcomes = lab.test(plan.recipes, ids)
        predicted = plan.predicted_mah_g or [None] * len(outcomes)
        trials += _trials(method, seed, number, outcomes, predicted)
        done = pd.DataFrame([o.recipe for o in outcomes])[list(space.columns)].assign(
            measured=[o.measured_mah_g for o in outcomes],
            status=[status_of(o.kind) for o in outcomes],
        )
        observed = pd.concat([observed, done], ignore_index=True)
    return trials


@contextmanager
def _cores(threads: int) -> Iterator[None]:
    """Keep a job on one core when ``threads`` is 1: labloop's learning asks joblib for 2
    workers and BLAS uses every core, which oversubscribes the machine when jobs run side by
    side."""
    if threads > 1:
        yield
        return
    with threadpool_limits(threads), parallel_config(backend="sequential"):
        yield


def run_job(method: str, seed: int, config: Config) -> list[Trial]:
    """One method on one seed: every experiment it spent."""
    space = DesignSpace.load()
    truth = lab_named(config.lab)
    history = generate_history(seed, config.history_rows, space, truth)
    lab = VirtualLab(seed, space, truth)
    with _cores(config.threads):
        if method in VARIANTS:
            return run_labloop(space, seed, history, lab, config, method)
        return run_strategy(method, space, seed, history, lab, config)


def run_all(methods: Sequence[str], seeds: Sequence[int], config: Config,
            workers: int) -> list[Trial]:  # fmt: skip
    """Every (method, seed) job, the slow methods first so that the two workers finish
    together."""
    jobs = [(m, s) for m in sorted(methods, key=METHODS.index) for s in seeds]
    if workers == 1:
        return [t for m, s in jobs for t in run_job(m, s, config)]
    # spawn: fresh processes, no SQLite connection or torch thread pool crosses a fork
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_job, m, s, config) for m, s in jobs]
        return [t for f in futures for t in f.result()]


def history_best(history: pd.DataFrame, lab: Lab = BASELINE) -> float:
    """best(0): the best true capacity among the history's measured recipes."""
    return float(true_capacity(history[history["initial_discharge_mah_g"].notna()], lab).max())


def random_hit_rate(
    space: DesignSpace, samples: int = 1_000_000, lab: Lab = BASELINE
) -> Callable[[float], float]:
    """level -> chance that one uniform random recipe tests ok with a true capacity at or
    above ``level``: Monte Carlo on the virtual lab's own truth and failure model."""
    grid = space.grid.sample(samples, np.random.default_rng(0))
    recipes = pd.DataFrame(space.grid.values(grid))
    value = true_capacity(recipes, lab)
    ok = (1.0 - synthesis_failure_probability(recipes, lab)) * (1.0 - sum(CELL_FAILURES.values()))
    return lambda level: float(np.mean(ok * (value >= level)))


def trials_frame(trials: Sequence[Trial]) -> pd.DataFrame:
    """One row per experiment: method, seed, batch, kind, capacities, status (ok or the
    failure class), then the recipe."""
    rows = [
        {k: v for k, v in vars(t).items() if k != "recipe"}
        | {"kind": str(t.kind), "status": status_of(t.kind)}
        | t.recipe
        for t in trials
    ]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--methods", default="labloop,paper,random,ofat,gp",
                        help=f"any of {', '.join(METHODS)}")  # fmt: skip
    parser.add_argument("--labs", default=",".join(LABS), help="labs of the family to run")
    parser.add_argument("--pso-iterations", type=int, help="labloop's (default: its default)")
    parser.add_argument("--search-iterations", type=int, help="labloop's (default: its default)")
    parser.add_argument("--candidates", type=int, default=2000, help="gp candidates per batch")
    parser.add_argument("--bo", choices=("auto", "baybe", "sklearn"), default="auto")
    parser.add_argument("--workers", type=int, default=2, help="processes (1: one, 2 cores)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"),
                        help="folder for the figures campaign-LAB.png")  # fmt: skip
    parser.add_argument("--trials", type=Path, help="also write every experiment to this CSV")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    labs = [name.strip() for name in args.labs.split(",") if name.strip()]
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown method(s) {', '.join(sorted(unknown))}; known: {METHODS}")
    if unknown := set(labs) - set(LABS):
        parser.error(f"unknown lab(s) {', '.join(sorted(unknown))}; known: {', '.join(LABS)}")
    if "random" not in methods:
        parser.error("random is the reference of EF and AF: include it")
    budgets = {"pso_iterations": args.pso_iterations, "search_iterations": args.search_iterations}
    config = Config(
        batches=args.batches,
        labloop={k: v for k, v in budgets.items() if v is not None},
        candidates=args.candidates,
        bo=bo_backend(args.bo),
        threads=1 if args.workers > 1 else 2,
    )  # fmt: skip
    space = DesignSpace.load()
    labloop = _Defaults(home=Path(tempfile.gettempdir()), **config.labloop)
    labels = {m: LABELS.get(m, m) for m in methods} | {"gp": GP_LABELS[config.bo]}
    print(f"{args.seeds} seeds x {args.batches} batches of {config.batch_size}; methods: "
          + ", ".join(labels[m] for m in methods))  # fmt: skip
    print(
        f"labloop settings: strategy={labloop.strategy}, uncertainty={labloop.uncertainty}, "
        f"search_iterations={labloop.search_iterations}, "
        f"pso_iterations={labloop.pso_iterations}, pso_particles={labloop.pso_particles}, "
        f"cv_folds={labloop.cv_folds}, max_probes={labloop.max_probes}, "
        f"global_share={labloop.global_share}, feasibility_prior={labloop.feasibility_prior}; "
        "seed = run seed"
    )
    if "gp" in methods:
        print(f"gp: {labels['gp']}, {config.candidates} candidates per batch")
    frames = []
    args.out.mkdir(parents=True, exist_ok=True)
    for name in labs:
        lab, lab_config = LABS[name], replace(config, lab=name)
        started = time.perf_counter()
        trials = run_all(methods, range(args.seeds), lab_config, args.workers)
        wall = time.perf_counter() - started
        baselines = {
            s: history_best(generate_history(s, config.history_rows, space, lab), lab)
            for s in range(args.seeds)
        }
        frame = trials_frame(trials).assign(lab=name)
        frames.append(frame)
        if args.trials:  # after each lab and before any report: a later crash keeps the runs
            pd.concat(frames).to_csv(args.trials, index=False)
        shown = {m: labels[m] for m in methods}
        figure = args.out / f"campaign-{name}.png"
        print(f"\n## lab '{name}': {lab.description}\n")
        print(report(frame, baselines, true_optimum(space, lab)[1], shown, args.batches, figure,
                     random_hit_rate(space, lab=lab), config.batch_size, name))  # fmt: skip
        print(f"\nwall time: {wall:.0f} s ({wall / 60:.1f} min), {args.workers} worker process(es)")


if __name__ == "__main__":
    main()
