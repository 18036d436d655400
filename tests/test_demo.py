"""`labloop demo`: the README's main command, short, end to end through real workers."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import func
from sqlmodel import Session, select

from agent.store.db import Batch, Experiment, Heartbeat, Result, make_engine


def test_short_demo_runs_the_whole_loop(tmp_path):
    home = tmp_path / "demo"
    env = {**os.environ, "LABLOOP_HOME": str(home), "COLUMNS": "200"}
    env.pop("LABLOOP_BROKER_URL", None)  # the embedded default, as a new user has it
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--batches", "2", "--fast", "--pace", "0.05"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in (home / "recipes").iterdir()) == [
        "batch-001.about.txt",
        "batch-001.csv",
        "batch-002.about.txt",
        "batch-002.csv",
    ]
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    with Session(engine) as session:
        in_batches = select(Experiment.id).where(Experiment.batch_id.is_not(None))
        results = session.exec(
            select(func.count()).select_from(Result).where(Result.experiment_id.in_(in_batches))
        ).one()
        states = session.exec(select(Batch.state).order_by(Batch.number)).all()
        services = set(session.exec(select(Heartbeat.service)).all())
    assert results == 20
    # the demo's own watcher and workers said they were alive, as `labloop run`'s do
    assert services == {"watcher", "ingest", "learning"}
    assert states == ["trained", "trained"]
    assert {p.name for p in (home / "report").iterdir()} >= {
        f"{name}.{fmt}" for name in ("parity", "parameters", "best") for fmt in ("png", "svg")
    }
    assert "what each batch taught" in done.stdout
    assert "broker embedded (a folder: " in done.stdout and "filesystem://" not in done.stdout
    # piped, a line is not broken at 80 columns: the header names the home and the broker
    assert done.stdout.splitlines()[0].endswith("no server)"), done.stdout[:400]
    assert "B002" in done.stdout
    # piped, the demo says where it is as plain lines on stderr, once per stage, no log noise
    stages = [line for line in done.stderr.splitlines() if line.startswith("batch ")]
    assert any(line.startswith("batch 1: ingesting") for line in stages), done.stderr
    assert any(line.startswith("batch 2: training") for line in stages), done.stderr
    # counted per batch, not with the history's hundreds of rows
    assert any(line.startswith("batch 1: done") and "results 10/10" in line for line in stages)
    assert len(stages) == len(set(stages)) < 20
    assert "alembic" not in done.stdout + done.stderr
