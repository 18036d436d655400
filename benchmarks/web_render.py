"""How long the status page and its JSON API take on a large campaign.

Builds a temporary SQLite home with 50 batches x 10 experiments (plus 700 historical
records), their results (some failed, some re-tested), 10,000 IngestedFile rows (mostly
archived, some quarantined), a few model runs and their recipe files; then times `/` and
each JSON endpoint with the Flask test client (median and p95 over N requests each).

Beside each, the same route served by the naive collectors a developer would write first
(load every row with the ORM, aggregate in Python), swapped in for agent.web.facts; both
must give the same facts, and the last column is their time ratio.

    .venv/bin/python benchmarks/web_render.py --requests 30
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.config import Settings
from agent.inbox.sample_ids import format_sample_id
from agent.reports.status import FailureLine, FileCounts, quarantine
from agent.store.db import (
    Batch,
    BatchState,
    Experiment,
    IngestedFile,
    ModelRun,
    Origin,
    Result,
    init_db,
    make_engine,
)
from agent.web import facts
from agent.web.app import create_app

BATCHES, HISTORY, FILES, QUARANTINED_EVERY = 50, 700, 10_000, 16
FAILURES = [
    ("synthesis", "sintered during calcination, no powder to test"),
    ("cell", "charged but never discharged"),
    ("measurement", "charge ended at 4.11 V, below the 4.25 V cutoff"),
]
QUARANTINE_REASONS = [
    "unknown sample id B091-S03: no recipe file names it; rename the file",
    "no active mass: add the sample to masses.csv",
    "Novonix export: labloop does not read this format; export as Arbin CSV",
    "duplicate of 000412_B012-S04.csv (same bytes)",
]
ROUTES = ["/", "/api/batches", "/api/queues", "/api/files", "/api/models"]


def build_campaign(home: Path, seed: int = 0) -> Settings:
    """A labloop home as a long campaign leaves it; returns its settings."""
    rng = random.Random(seed)
    settings = Settings(home=home)
    settings.ensure_folders()
    engine = make_engine(settings.database_url)
    init_db(engine)
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    with Session(engine) as session:
        experiments = [
            {"sample_id": f"H{i:04d}", "batch_id": None, "origin": Origin.HISTORICAL,
             "parameters": _recipe(rng)}
            for i in range(HISTORY)
        ]  # fmt: skip
        for number in range(1, BATCHES + 1):
            state = (BatchState.TRAINED if number < BATCHES - 2
                     else [BatchState.COMPLETE, BatchState.RUNNING, BatchState.PROPOSED][
                         number - (BATCHES - 2)])  # fmt: skip
            closed = "two cells lost in the glovebox" if number % 17 == 0 else None
            session.execute(insert(Batch).values(
                id=number, number=number, state=state, closed_reason=closed, model_version=number,
                recipe_file=str(settings.recipes / f"batch-{number:03d}.csv"),
                created_at=start + timedelta(days=7 * number)))  # fmt: skip
            (settings.recipes / f"batch-{number:03d}.csv").write_text("sample_id\n")
            for slot in range(1, 11):
                experiments.append({
                    "sample_id": format_sample_id(number, slot), "batch_id": number,
                    "origin": Origin.PROPOSED, "parameters": _recipe(rng),
                    "predicted_mah_g": rng.uniform(205, 228), "model_version": number,
                })  # fmt: skip
        session.execute(insert(Experiment), experiments)
        ids = dict(session.exec(select(Experiment.sample_id, Experiment.id)).all())
        session.execute(insert(Result), list(_results(rng, ids, start)))
        session.execute(insert(IngestedFile), list(_files(rng, start)))
        session.execute(insert(ModelRun), [_model_run(rng, v, start) for v in range(1, 6)])
        session.commit()
    engine.dispose()
    for name in ("B049-S08.mpt", "B049-S09.csv", "B049-S10.csv", ".B049-S10.csv.part"):
        (settings.inbox / name).write_text("waiting\n")
    return settings


def _recipe(rng: random.Random) -> dict[str, Any]:
    return {"ni_fraction": rng.choice([0.9, 0.92, 0.94, 0.96]), "co_fraction": 0.03,
            "li_ratio": 1.03, "li_source": rng.choice(["LiOH", "Li2CO3"]),
            "calcination_temp_c": rng.randrange(650, 800, 5), "calcination_time_h": 12,
            "dopant_zr": 0.001, "dopant_nb": 0.0, "coating_temp_c": 400}  # fmt: skip


def _results(rng: random.Random, ids: dict[str, int], start: datetime) -> Iterator[dict]:
    row = 0
    for sample_id, experiment_id in ids.items():
        number = int(sample_id[1:4]) if sample_id.startswith("B") else 0
        if number == BATCHES or (number == BATCHES - 1 and sample_id > "B049-S06"):
            continue  # the proposed batch, and the running one's last four samples
        if number and number % 17 == 0 and sample_id.endswith(("S09", "S10")):
            continue  # samples of a closed batch that never came
        for _ in range(2 if rng.random() < 0.05 else 1):
            row += 1
            failed = rng.random() < 0.12
            failure_class, reason = rng.choice(FAILURES) if failed else (None, None)
            yield {
                "experiment_id": experiment_id, "outcome": "failed" if failed else "ok",
                "failure_class": failure_class, "reason": reason,
                "discharge_mah_g": None if failed else rng.uniform(195, 229),
                "cycler_format": None if number == 0 else "arbin",
                "source_sha256": hashlib.sha256(f"r{row}".encode()).hexdigest(),
                "recorded_at": start + timedelta(minutes=row),
            }  # fmt: skip


def _files(rng: random.Random, start: datetime) -> Iterator[dict]:
    for i in range(FILES):
        quarantined = i % QUARANTINED_EVERY == 0
        yield {
            "sha256": hashlib.sha256(f"f{i}".encode()).hexdigest(),
            "original_name": f"B{1 + i * BATCHES // FILES:03d}-S{1 + i % 10:02d}_run{i}.csv",
            "size_bytes": rng.randrange(2_000, 9_000_000),
            "status": "quarantined" if quarantined else "archived",
            "stored_path": f"{'quarantine' if quarantined else 'archive'}/{i:06d}.csv",
            "cycler_format": None if quarantined else "arbin",
            "error": rng.choice(QUARANTINE_REASONS) if quarantined else None,
            "results": 0 if quarantined else 1,
            "received_at": start + timedelta(minutes=i),
            "finished_at": start + timedelta(minutes=i, seconds=2),
        }  # fmt: skip


def _model_run(rng: random.Random, version: int, start: datetime) -> dict[str, Any]:
    measured = [rng.uniform(195, 229) for _ in range(HISTORY + 100 * version)]
    metrics = ("RMSE train", "RMSE test", "R2 train", "R2 test", "MSE train", "MSE test")
    return {
        "version": version, "trigger_batch": version - 1 or None, "n_train": len(measured),
        "n_outcomes": len(measured) + 40, "counts": {}, "hyperparameters": {}, "timings": {},
        "comparison": {m: {k: rng.uniform(0.1, 9) for k in metrics}
                       for m in ("DT", "RF", "GBM", "NN")},
        "cv_rmse": rng.uniform(3, 6), "cv_r2": rng.uniform(0.6, 0.9),
        "parity": {"measured": measured,
                   "predicted": [m + rng.gauss(0, 4) for m in measured]},
        "model_path": f"models/model-v{version:04d}.joblib", "model_sha256": "0" * 64,
        "created_at": start + timedelta(days=7 * version),
    }  # fmt: skip


# -- the naive collectors: every row through the ORM, aggregated in Python --------------------


def naive_batch_facts(
    engine: Engine, recipes: Path, _summaries: facts.SummaryCache
) -> list[facts.BatchFacts]:
    with Session(engine) as session:
        batches = session.exec(select(Batch).order_by(Batch.number)).all()
        experiments = session.exec(select(Experiment)).all()
        results = session.exec(select(Result).order_by(Result.id)).all()
    per_experiment = defaultdict(list)
    for result in results:
        per_experiment[result.experiment_id].append(result)

    def measured(experiment: Experiment) -> float | None:
        values = [r.discharge_mah_g for r in per_experiment[experiment.id]
                  if r.outcome == "ok" and r.discharge_mah_g is not None]  # fmt: skip
        return sum(values) / len(values) if values else None

    history = [m for e in experiments if e.batch_id is None if (m := measured(e)) is not None]
    best = max(history, default=None)
    out = []
    for batch in batches:
        own = sorted((e for e in experiments if e.batch_id == batch.id), key=lambda e: e.sample_id)
        tested = [e for e in own if per_experiment[e.id]]
        values = [m for e in own if (m := measured(e)) is not None]
        best = max([v for v in [best, *values] if v is not None], default=None)
        outcomes = [r.outcome for e in own for r in per_experiment[e.id]]
        out.append(facts.BatchFacts(
            number=batch.number, state=batch.state, samples=len(own), with_result=len(tested),
            ok=outcomes.count("ok"), failed=outcomes.count("failed"),
            missing=[e.sample_id for e in own if not per_experiment[e.id]],
            failures=[FailureLine(e.sample_id, r.failure_class, r.reason, r.recorded_at)
                      for e in own for r in per_experiment[e.id] if r.outcome == "failed"],
            closed_reason=batch.closed_reason,
            recipe_file=(name if (recipes / (name := f"batch-{batch.number:03d}.csv")).is_file()
                         else None),
            measured_max_mah_g=max(values, default=None), best_so_far_mah_g=best,
        ))  # fmt: skip
    return out


def naive_file_facts(engine: Engine, inbox: Path, masses_file: str, cap: int = 200):
    with Session(engine) as session:
        rows = session.exec(select(IngestedFile)).all()
    counts = Counter(row.status for row in rows)
    newest = sorted(rows, key=lambda row: row.id, reverse=True)
    waiting = facts.waiting_files(inbox, masses_file)
    with Session(engine) as session:
        held = quarantine(session, cap)  # the same query: the comparison is about the rest
    return facts.FileFacts(
        counts=FileCounts(counts["archived"], counts["quarantined"], counts["processing"]),
        waiting=waiting[:cap], waiting_more=max(0, len(waiting) - cap),
        archived=[facts.ArchivedFile(r.original_name, r.cycler_format, r.results, r.finished_at)
                  for r in newest if r.status == "archived"][:20],
        quarantine=held,
    )  # fmt: skip


def naive_model_facts(engine: Engine, limit: int = 20) -> facts.ModelFacts:
    with Session(engine) as session:
        runs = sorted(session.exec(select(ModelRun)).all(), key=lambda r: -r.version)
    lines = [facts.ModelLine(r.version, r.trigger_batch, r.n_train, r.n_outcomes, r.cv_rmse,
                             r.cv_r2, r.created_at) for r in runs[:limit]]  # fmt: skip
    return facts.ModelFacts(lines[0] if lines else None,
                            (runs[0].comparison or {}) if runs else {}, lines)  # fmt: skip


def naive_last_errors(engine: Engine, limit: int = 10) -> list[facts.ErrorLine]:
    with Session(engine) as session:
        files = session.exec(select(IngestedFile)).all()
        results = session.exec(select(Result)).all()
        samples = dict(session.exec(select(Experiment.id, Experiment.sample_id)).all())
    quarantined = sorted((f for f in files if f.status == "quarantined"), key=lambda f: -f.id)
    failed = sorted((r for r in results if r.outcome == "failed" and r.cycler_format),
                    key=lambda r: -r.id)  # fmt: skip
    lines = [facts.ErrorLine(f.finished_at, "quarantined file", f.original_name, f.error or "")
             for f in quarantined[:limit]] + [
        facts.ErrorLine(r.recorded_at, "failed test", samples[r.experiment_id],
                        f"{r.failure_class or 'failed'}: {r.reason or 'no reason given'}")
        for r in failed[:limit]]  # fmt: skip
    lines.sort(key=lambda line: (line.at is not None, line.at), reverse=True)
    return lines[:limit]


NAIVE = {"batch_facts": naive_batch_facts, "file_facts": naive_file_facts,
         "model_facts": naive_model_facts, "last_errors": naive_last_errors}  # fmt: skip


@contextmanager
def naive_collectors() -> Iterator[None]:
    """Serve the same routes with the naive collectors in place of agent.web.facts'."""
    saved = {name: getattr(facts, name) for name in NAIVE}
    for name, function in NAIVE.items():
        setattr(facts, name, function)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(facts, name, function)


# -- timing --------------------------------------------------------------------------------


def check_same_facts(settings: Settings) -> None:
    """The naive collectors and ours must agree, or the comparison means nothing."""
    engine = make_engine(settings.database_url)
    ours = [
        facts.batch_facts(engine, settings.recipes, facts.SummaryCache(engine)),
        facts.file_facts(engine, settings.inbox, settings.masses_file),
        facts.model_facts(engine),
        facts.last_errors(engine),
    ]
    naive = [
        naive_batch_facts(engine, settings.recipes, facts.SummaryCache(engine)),
        naive_file_facts(engine, settings.inbox, settings.masses_file),
        naive_model_facts(engine),
        naive_last_errors(engine),
    ]
    engine.dispose()
    for mine, theirs in zip(ours, naive, strict=True):
        assert _rounded(mine) == _rounded(theirs), "the naive collectors disagree"


def _rounded(value: Any) -> Any:
    """Facts as plain data, floats to 9 digits (pandas and Python sum in different orders)."""
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return round(value, 9) if isinstance(value, float) else value


def timed(client: FlaskClient, route: str, requests: int) -> list[float]:
    """Milliseconds of each of ``requests`` GETs of ``route``."""
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(route)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (route, response.status_code)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[18]


def first_after_new_result(client: FlaskClient, settings: Settings) -> float:
    """One page render right after a result arrives: the summaries are recomputed."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        session.add(Result(experiment_id=1, outcome="ok", discharge_mah_g=220.0,
                           source_sha256="new" + "0" * 61))  # fmt: skip
        session.commit()
    engine.dispose()
    return timed(client, "/", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="requests per route")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        settings = build_campaign(Path(tmp) / "home")
        print(f"campaign built in {time.perf_counter() - started:.1f} s: {BATCHES} batches, "
              f"{HISTORY} historical records, {FILES:,} files, 5 model runs")  # fmt: skip
        check_same_facts(settings)
        client = create_app(settings).test_client()
        cold = timed(client, "/", 1)[0]  # templates compiled, summaries computed
        time.sleep(1)  # the workers' first (background) answer is in: steady state
        ours = {route: timed(client, route, args.requests) for route in ROUTES}
        after_result = first_after_new_result(client, settings)
        with naive_collectors():
            naive = {route: timed(client, route, args.requests) for route in ROUTES}
    print(f"\n{args.requests} requests per route, Flask test client, milliseconds\n")
    print(f"{'route':<14} {'median':>8} {'p95':>8} {'naive median':>13} {'naive p95':>10} "
          f"{'naive/ours':>11}")  # fmt: skip
    for route in ROUTES:
        mine, theirs = statistics.median(ours[route]), statistics.median(naive[route])
        print(f"{route:<14} {mine:8.1f} {p95(ours[route]):8.1f} {theirs:13.1f} "
              f"{p95(naive[route]):10.1f} {theirs / mine:10.1f}x")  # fmt: skip
    print(f"\n/ first request of the process (templates compiled): {cold:.1f} ms")
    print(f"/ first request after a new result (summaries recomputed): {after_result:.1f} ms")


if __name__ == "__main__":
    main()
