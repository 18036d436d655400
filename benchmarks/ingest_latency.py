"""Latency from a file landing in inbox/ to its row committed, through `labloop run`.

Runs the whole stack (watcher + real Celery workers) once on Redis and once on the
embedded filesystem broker, drops N result sheets one at a time (each written
elsewhere, then renamed into the inbox, as a network copy finishes), and reads
each file's commit time from the database. Prints a table, median and p95.

    .venv/bin/python benchmarks/ingest_latency.py --files 200
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlmodel import Session, select

from agent.db import Batch, BatchState, Experiment, IngestedFile, init_db, make_engine
from agent.sample_ids import format_sample_id

REDIS_URL = "redis://127.0.0.1:6379/8"


def prepare(home: Path, files: int) -> None:
    (home / "var").mkdir(parents=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    with Session(engine) as session:
        for number in range(1, files // 10 + 2):
            batch = Batch(number=number, state=BatchState.RUNNING)
            session.add(batch)
            session.flush()
            for slot in range(1, 11):
                session.add(Experiment(sample_id=format_sample_id(number, slot), batch_id=batch.id))
        session.commit()
    engine.dispose()


def run_one(broker: str, files: int, settle: float, gap: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prepare(home, files)
        env = {**os.environ, "LABLOOP_HOME": str(home), "LABLOOP_SETTLE_SECONDS": str(settle)}
        if broker == "redis":
            redis.Redis.from_url(REDIS_URL).flushdb()
            env["LABLOOP_BROKER_URL"] = REDIS_URL
        log = (Path(tmp) / "run.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--concurrency", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
        try:
            inbox, staging = home / "inbox", Path(tmp) / "staging"
            staging.mkdir()
            time.sleep(8)  # let the workers come up: measure steady state, not start-up
            landed: dict[str, float] = {}
            for i in range(files):
                sample = format_sample_id(i // 10 + 1, i % 10 + 1)
                source = staging / f"{sample}.csv"
                source.write_text(
                    f"sample_id,initial_discharge_mah_g,status,reason\n{sample},215.0,ok,\n"
                )
                os.replace(source, inbox / source.name)
                landed[source.name] = datetime.now(UTC).timestamp()
                time.sleep(gap)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with Session(engine) as session:
                    done = session.exec(
                        select(IngestedFile).where(IngestedFile.finished_at.is_not(None))
                    ).all()
                if len(done) >= files:
                    break
                time.sleep(0.5)
            return [
                row.finished_at.replace(tzinfo=UTC).timestamp() - landed[row.original_name]
                for row in done
            ]
        finally:
            engine.dispose()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--settle", type=float, default=1.0, help="watcher settle time (s)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between drops")
    args = parser.parse_args()
    rows = {}
    for broker in ("redis", "embedded"):
        latencies = run_one(broker, args.files, args.settle, args.gap)
        quantiles = statistics.quantiles(latencies, n=20)
        rows[broker] = (len(latencies), statistics.median(latencies), quantiles[18])
    print(f"files={args.files} settle={args.settle}s gap={args.gap}s")
    print(f"{'broker':<10} {'files':>6} {'median s':>9} {'p95 s':>7} {'minus settle':>13}")
    for broker, (n, median, p95) in rows.items():
        print(f"{broker:<10} {n:>6} {median:>9.3f} {p95:>7.3f} {median - args.settle:>13.3f}")
    ratio = rows["embedded"][1] / rows["redis"][1]
    print(f"embedded / redis median latency: {ratio:.2f}x")


if __name__ == "__main__":
    main()
