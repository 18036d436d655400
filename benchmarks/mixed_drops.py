"""1,000 mixed drops into a running stack: everything ends in archive/ or quarantine/ once.

The drop set: valid exports of every vendor format from the virtual lab (with their
masses.csv), renamed duplicates, malformed (truncated) exports, empty files, one huge
file, non-UTF-8 text, names with spaces and non-ASCII letters, and a second wave that
drops the same names again (exact duplicates). All are copied into the inbox as fast as
the disk allows while `labloop run` (watcher + real workers on Redis) is running.

    .venv/bin/python benchmarks/mixed_drops.py --drops 1000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlmodel import Session, func, select

from agent.db import Batch, BatchState, Experiment, IngestedFile, init_db, make_engine
from agent.lab import VirtualLab
from agent.sample_ids import format_sample_id
from agent.space import DesignSpace

REDIS_URL = "redis://127.0.0.1:6379/12"


@dataclass(frozen=True)
class DropSet:
    first_wave: list[Path]
    second_wave: list[Path]  # the same names again, dropped after the first wave is in

    @property
    def total(self) -> int:
        return len(self.first_wave) + len(self.second_wave)


def prepare_home(home: Path, samples: int) -> None:
    """A labloop home whose batches name ``samples`` samples (10 per batch)."""
    (home / "var").mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    space = DesignSpace.load()
    with Session(engine) as session:
        for number in range(1, samples // 10 + 1):
            batch = Batch(number=number, state=BatchState.RUNNING)
            session.add(batch)
            session.flush()
            for slot, recipe in enumerate(space.random(10, number), start=1):
                session.add(Experiment(sample_id=format_sample_id(number, slot),
                                       batch_id=batch.id, parameters=recipe))  # fmt: skip
        session.commit()
    engine.dispose()


def make_drops(staging: Path, drops: int, seed: int = 0, huge_mb: int = 50) -> DropSet:
    """``drops`` files in ``staging`` (plus masses.csv); about half are valid exports."""
    rng = random.Random(seed)
    valid_count = drops // 2
    samples = [format_sample_id(i // 10 + 1, i % 10 + 1) for i in range(valid_count)]
    lab = VirtualLab(seed)
    valid = lab.run_batch(samples, DesignSpace.load().random(valid_count, seed), staging)
    first: list[Path] = list(valid)
    kinds = ["renamed", "truncated", "empty", "latin1", "unicode", "spaces", "junk"]
    index = 0
    while len(first) + 1 < drops - drops // 10:
        kind = kinds[index % len(kinds)]
        source = rng.choice(valid)
        index += 1
        if kind == "renamed":
            target = staging / f"copy {index} of {source.name}"
            shutil.copyfile(source, target)
        elif kind == "truncated":
            target = staging / f"cut-{index}-{source.name}"
            target.write_bytes(source.read_bytes()[: rng.randint(50, 400)])
        elif kind == "empty":
            target = staging / f"empty-{index}.csv"
            target.write_bytes(b"")
        elif kind == "latin1":
            target = staging / f"Kapazität-{index}.csv"
            target.write_bytes("Probe;Kapazität ÿþ\n1;2\n".encode("latin-1"))
        elif kind == "unicode":
            target = staging / f"résultat ✓ {index}.csv"
            target.write_text("sample_id,initial_discharge_mah_g,status,reason\nB999-S99,1,ok,\n")
        elif kind == "spaces":
            target = staging / f"cell {index} final (2).txt"
            target.write_bytes(os.urandom(300))
        else:
            target = staging / f"junk-{index}.bin"
            target.write_bytes(os.urandom(rng.randint(10, 5000)))
        first.append(target)
    huge = staging / "B999-S01 huge dump.csv"
    with huge.open("wb") as handle:
        handle.write(b"\x00binary")
        handle.truncate(huge_mb * 1024 * 1024)
    first.append(huge)
    second_wave = staging / "again"
    second_wave.mkdir()
    second = []
    while len(first) + len(second) < drops:
        source = rng.choice(valid)
        target = second_wave / source.name
        if not target.exists():
            shutil.copyfile(source, target)
            second.append(target)
    return DropSet(first, second)


def count_rows(home: Path, **where: str) -> int:
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    try:
        with Session(engine) as session:
            query = select(func.count()).select_from(IngestedFile)
            for column, value in where.items():
                query = query.where(getattr(IngestedFile, column) == value)
            return session.exec(query).one()
    finally:
        engine.dispose()


def settled(home: Path, expected: int) -> bool:
    return count_rows(home) >= expected and count_rows(home, status="processing") == 0


def drop_all(files: list[Path], inbox: Path) -> None:
    for path in files:
        shutil.copyfile(path, inbox / path.name)


def check_conservation(home: Path, drops: int) -> dict[str, int]:
    """Every drop is one row and one file in archive/ or quarantine/; returns the counts."""
    archived = [p for p in (home / "archive").iterdir()]
    quarantined = [p for p in (home / "quarantine").iterdir() if not p.name.endswith(".error.txt")]
    counts = {
        "rows": count_rows(home),
        "archived rows": count_rows(home, status="archived"),
        "quarantined rows": count_rows(home, status="quarantined"),
        "archive files": len(archived),
        "quarantine files": len(quarantined),
        "left in inbox": len([p for p in (home / "inbox").iterdir() if p.name != "masses.csv"]),
    }
    assert counts["rows"] == drops, counts
    assert counts["archive files"] == counts["archived rows"], counts
    assert counts["quarantine files"] == counts["quarantined rows"], counts
    assert counts["archive files"] + counts["quarantine files"] == drops, counts
    assert counts["left in inbox"] == 0, counts
    return counts


def main() -> None:
    import subprocess
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=1000)
    args = parser.parse_args()
    redis.Redis.from_url(REDIS_URL).flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        home, staging = Path(tmp) / "home", Path(tmp) / "staging"
        staging.mkdir()
        prepare_home(home, args.drops)
        drop_set = make_drops(staging, args.drops)
        (home / "inbox").mkdir(exist_ok=True)
        shutil.copyfile(staging / "masses.csv", home / "inbox" / "masses.csv")
        env = {**os.environ, "LABLOOP_HOME": str(home), "LABLOOP_BROKER_URL": REDIS_URL,
               "LABLOOP_SETTLE_SECONDS": "0.5"}  # fmt: skip
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        process = subprocess.Popen([sys.executable, "-m", "agent.cli", "run"], env=env, **quiet)
        try:
            time.sleep(8)
            started = time.monotonic()
            drop_all(drop_set.first_wave, home / "inbox")
            while not settled(home, len(drop_set.first_wave)):
                time.sleep(0.5)
            drop_all(drop_set.second_wave, home / "inbox")
            while not settled(home, drop_set.total):
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=60)
        counts = check_conservation(home, drop_set.total)
    print(f"drops={drop_set.total} in {elapsed:.1f} s ({drop_set.total / elapsed:.1f} files/s); "
          f"services up throughout: {alive}")  # fmt: skip
    for name, value in counts.items():
        print(f"{name:<18} {value:>6}")


if __name__ == "__main__":
    main()
