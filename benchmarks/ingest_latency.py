"""Latency from a file closed in inbox/ to its row committed, through `labloop run`.

Runs the whole stack (watcher + real Celery workers) per detection rule and broker,
writes N one-row result sheets one at a time straight into the inbox (open, write,
close, as a local copy does), and reads each file's commit time from the database.

Rules: "close" is the watcher's default on Linux (inotify: handed on a short quiet
period after the writer closes the file); "settle" is the settle-only rule that was the
only one before (polling observer at 0.1 s, handed on once unchanged for --settle
seconds), the rule that still applies on network shares. Prints median and p95 per
row, and settle / close as ratios.

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

from agent.inbox.sample_ids import format_sample_id
from agent.store.db import Batch, BatchState, Experiment, IngestedFile, init_db, make_engine

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


def watcher_env(rule: str, settle: float) -> dict[str, str]:
    if rule == "close":
        return {}
    # polling sees no closes: the settle time alone decides, as on a network share
    return {
        "LABLOOP_POLLING": "true",
        "LABLOOP_POLL_INTERVAL_SECONDS": "0.1",
        "LABLOOP_SETTLE_SECONDS": str(settle),
    }


def run_one(rule: str, broker: str, files: int, settle: float, gap: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prepare(home, files)
        env = {**os.environ, "LABLOOP_HOME": str(home), **watcher_env(rule, settle)}
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
            inbox = home / "inbox"
            time.sleep(8)  # let the workers come up: measure steady state, not start-up
            closed: dict[str, float] = {}
            for i in range(files):
                sample = format_sample_id(i // 10 + 1, i % 10 + 1)
                path = inbox / f"{sample}.csv"
                path.write_text(
                    f"sample_id,initial_discharge_mah_g,status,reason\n{sample},215.0,ok,\n"
                )
                closed[path.name] = datetime.now(UTC).timestamp()
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
                row.finished_at.replace(tzinfo=UTC).timestamp() - closed[row.original_name]
                for row in done
            ]
        finally:
            engine.dispose()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--settle", type=float, default=1.0, help="settle rule's time (s)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between drops")
    parser.add_argument("--rules", default="close,settle", help="close, settle or both")
    parser.add_argument("--brokers", default="redis", help="redis, embedded or both")
    args = parser.parse_args()
    rows = {}
    for broker in args.brokers.split(","):
        for rule in args.rules.split(","):
            latencies = run_one(rule, broker, args.files, args.settle, args.gap)
            p95 = statistics.quantiles(latencies, n=20)[18]
            rows[rule, broker] = (len(latencies), statistics.median(latencies), p95)
    print(f"files={args.files} settle={args.settle}s gap={args.gap}s")
    print(f"{'rule':<7} {'broker':<9} {'files':>6} {'median s':>9} {'p95 s':>7}")
    for (rule, broker), (n, median, p95) in rows.items():
        print(f"{rule:<7} {broker:<9} {n:>6} {median:>9.3f} {p95:>7.3f}")
    for broker in args.brokers.split(","):
        if ("close", broker) in rows and ("settle", broker) in rows:
            close, settle = rows["close", broker], rows["settle", broker]
            print(
                f"{broker}: settle / close median {settle[1] / close[1]:.2f}x, "
                f"p95 {settle[2] / close[2]:.2f}x"
            )


if __name__ == "__main__":
    main()
