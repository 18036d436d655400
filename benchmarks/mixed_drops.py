"""1,000 mixed drops into a running stack: everything ends in archive/ or quarantine/ once.

The drop set: valid exports of every vendor format from the virtual lab (with their
masses.csv), one in 25 of them copied slowly (three chunks 2 s apart, the file held open),
renamed duplicates, the same new bytes under two names in the same instant, malformed
(truncated) exports, empty files, one huge file, non-UTF-8 text, names with spaces and
non-ASCII letters, names that are not UTF-8, and a second wave that drops the same names
again (exact duplicates). All are copied into the inbox as fast as
the disk allows while `labloop run` (watcher + real workers on Redis, or on the embedded
broker with --broker embedded) is running. --kill-mid-run kills -9 what runs ingest tasks
(a pool child of the ingest worker if it has any, else the worker itself) once a quarter
of the drops are recorded: nothing may be lost or recorded twice.

    .venv/bin/python benchmarks/mixed_drops.py --drops 1000 [--kill-mid-run]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlmodel import Session, func, select

from agent.config import EMBEDDED_BROKER
from agent.inbox.sample_ids import format_sample_id
from agent.lab import VirtualLab
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, Experiment, IngestedFile, init_db, make_engine

REDIS_URL = "redis://127.0.0.1:6379/12"


@dataclass(frozen=True)
class DropSet:
    first_wave: list[Path]
    second_wave: list[Path]  # the same names again, dropped after the first wave is in
    slow: frozenset[Path] = frozenset()  # files of the first wave copied slowly

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


def _renamed(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"copy {index} of {source.name}"
    shutil.copyfile(source, target)
    return [target]


def _truncated(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"cut-{index}-{source.name}"
    target.write_bytes(source.read_bytes()[: rng.randint(50, 400)])
    return [target]


def _empty(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"empty-{index}.csv"
    target.write_bytes(b"")
    return [target]


def _latin1(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"Kapazität-{index}.csv"
    target.write_bytes("Probe;Kapazität ÿþ\n1;2\n".encode("latin-1"))
    return [target]


def _unicode(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"résultat ✓ {index}.csv"
    target.write_text("sample_id,initial_discharge_mah_g,status,reason\nB999-S99,1,ok,\n")
    return [target]


def _spaces(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"cell {index} final (2).txt"
    target.write_bytes(os.urandom(300))
    return [target]


def _junk(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    target = staging / f"junk-{index}.bin"
    target.write_bytes(os.urandom(rng.randint(10, 5000)))
    return [target]


def _twins(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    """New bytes (a re-test) under two names, dropped in the same instant: one is archived,
    the other quarantined as its duplicate."""
    content = _text_source(staging, source, rng).read_bytes() + b"\n"
    pair = [staging / f"twin-{index}-{side}-{source.name}" for side in "ab"]
    for path in pair:
        path.write_bytes(content)
    return pair


def _undecodable_name(staging: Path, index: int, source: Path, rng: random.Random) -> list[Path]:
    """A re-test under a legacy share's latin-1 name: bytes that are not UTF-8."""
    text = _text_source(staging, source, rng)
    name = f"re-test {index} r\xe9sum\xe9 ".encode("latin-1") + os.fsencode(text.name)
    target = staging / os.fsdecode(name)
    target.write_bytes(text.read_bytes() + b"\n\n")
    return [target]


def _text_source(staging: Path, source: Path, rng: random.Random) -> Path:
    """``source`` if it is a text export (a line more keeps it readable), else another one."""
    while b"\0" in source.read_bytes()[:4096]:
        source = rng.choice([p for p in staging.iterdir() if p.suffix in (".csv", ".txt")])
    return source


# The awkward drops beside the valid exports, made in turn: each writes its files into the
# staging folder (``source`` is a valid export to copy or spoil) and returns them. A slow
# copy is a way of dropping rather than a file: see DropSet.slow and drop_all.
DROP_KINDS: dict[str, Callable[[Path, int, Path, random.Random], list[Path]]] = {
    "renamed": _renamed,
    "truncated": _truncated,
    "empty": _empty,
    "latin1": _latin1,
    "unicode": _unicode,
    "spaces": _spaces,
    "junk": _junk,
    "twins": _twins,
    "undecodable name": _undecodable_name,
}
SLOW_EVERY = 25  # one valid export in 25 is copied slowly: 3 chunks, 2 s apart, held open
SLOW_PAUSE_SECONDS = 2.0


def make_drops(staging: Path, drops: int, seed: int = 0, huge_mb: int = 50) -> DropSet:
    """``drops`` files in ``staging`` (plus masses.csv); about half are valid exports."""
    rng = random.Random(seed)
    valid_count = drops // 2
    samples = [format_sample_id(i // 10 + 1, i % 10 + 1) for i in range(valid_count)]
    lab = VirtualLab(seed)
    valid = lab.run_batch(samples, DesignSpace.load().random(valid_count, seed), staging)
    first: list[Path] = list(valid)
    makers = list(DROP_KINDS.values())
    index = 0
    while len(first) + 2 < drops - drops // 10:
        make = makers[index % len(makers)]
        source = rng.choice(valid)
        index += 1
        first.extend(make(staging, index, source, rng))
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
    return DropSet(first, second, frozenset(valid[::SLOW_EVERY]))


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


def drop_all(files: list[Path], inbox: Path, slow: Collection[Path] = ()) -> None:
    """Copy every file into the inbox as fast as the disk allows; those in ``slow`` as a
    network copy does, in three chunks with pauses, the file held open throughout (in
    threads, so the others do not wait). Returns once every copy is complete."""
    copies = []
    for path in files:
        if path in slow:
            copies.append(threading.Thread(target=_slow_copy, args=(path, inbox / path.name)))
            copies[-1].start()
        else:
            shutil.copyfile(path, inbox / path.name)
    for copy in copies:
        copy.join()


def _slow_copy(source: Path, target: Path) -> None:
    data = source.read_bytes()
    step = -(-len(data) // 3)
    with target.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            time.sleep(SLOW_PAUSE_SECONDS)


def check_slow_copies(home: Path, slow: Collection[Path]) -> int:
    """Each slowly copied file was read whole: its stored bytes are the source's, and it was
    archived (or is a duplicate of the same bytes under another name)."""
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    try:
        with Session(engine) as session:
            for source in slow:
                row = session.exec(  # the first drop of the name (the second wave repeats it)
                    select(IngestedFile)
                    .where(IngestedFile.original_name == source.name)
                    .order_by(IngestedFile.id)
                ).first()
                # whole: archived, or a duplicate of the same bytes dropped under another name
                whole = row.status == "archived" or row.error.startswith("duplicate:")
                assert whole, (source.name, row.error)
                assert Path(row.stored_path).read_bytes() == source.read_bytes(), source.name
    finally:
        engine.dispose()
    return len(slow)


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


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc: Linux only)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        # the command name (in parentheses) may hold spaces: the parent pid follows its ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def ingest_worker_pid(run_pid: int) -> int:
    """The ingest worker process started by the `labloop run` whose pid is ``run_pid``."""
    for pid in child_pids(run_pid):
        try:
            if b"ingest@" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise LookupError(f"labloop run (pid {run_pid}) has no ingest worker")


def _waits_on_a_pipe(pid: int) -> bool:
    """Whether process ``pid`` sleeps reading a pipe (a pool child waiting for a task)."""
    try:
        return "pipe_read" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def kill_ingest_runner(run_pid: int) -> str:
    """kill -9 what runs ingest tasks under `labloop run`; returns what was killed.

    That is a pool child of the ingest worker if it has any (prefork), an idle one first
    (the issue's case: on the embedded broker it holds the lock of the pipe all children
    take tasks from), else the worker process itself (a threads or solo pool runs the
    tasks in it).
    """
    worker = ingest_worker_pid(run_pid)
    pool = sorted(child_pids(worker), key=lambda pid: not _waits_on_a_pipe(pid))
    victim = pool[0] if pool else worker
    os.kill(victim, signal.SIGKILL)
    return f"pool child {victim} of the ingest worker" if pool else f"ingest worker {victim}"


def wait_settled(home: Path, expected: int, deadline: float) -> None:
    """Until ``expected`` drops are settled; TimeoutError at ``deadline`` (monotonic)."""
    while not settled(home, expected):
        if time.monotonic() > deadline:
            left = [p.name for p in (home / "inbox").iterdir() if p.name != "masses.csv"]
            raise TimeoutError(f"{count_rows(home)} rows of {expected}, {len(left)} in the inbox")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=1000)
    parser.add_argument("--broker", choices=["redis", "embedded"], default="redis")
    parser.add_argument(
        "--kill-mid-run",
        action="store_true",
        help="kill -9 what runs ingest tasks once a quarter of the drops are in",
    )
    parser.add_argument(
        "--deadline", type=float, default=1800.0, help="seconds the drops may take to settle"
    )
    args = parser.parse_args()
    broker = REDIS_URL if args.broker == "redis" else EMBEDDED_BROKER
    if args.broker == "redis":
        redis.Redis.from_url(REDIS_URL).flushdb()
    killed = None
    with tempfile.TemporaryDirectory() as tmp:
        home, staging = Path(tmp) / "home", Path(tmp) / "staging"
        staging.mkdir()
        prepare_home(home, args.drops)
        drop_set = make_drops(staging, args.drops)
        (home / "inbox").mkdir(exist_ok=True)
        shutil.copyfile(staging / "masses.csv", home / "inbox" / "masses.csv")
        env = {**os.environ, "LABLOOP_HOME": str(home), "LABLOOP_BROKER_URL": broker,
               "LABLOOP_SETTLE_SECONDS": "0.5"}  # fmt: skip
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        process = subprocess.Popen([sys.executable, "-m", "agent.cli", "run"], env=env, **quiet)
        try:
            time.sleep(8)
            started = time.monotonic()
            deadline = started + args.deadline
            dropping = threading.Thread(
                target=drop_all, args=(drop_set.first_wave, home / "inbox", drop_set.slow)
            )
            dropping.start()
            if args.kill_mid_run:
                while count_rows(home) < drop_set.total // 4:
                    time.sleep(0.05)
                killed = (time.monotonic() - started, count_rows(home),
                          kill_ingest_runner(process.pid))  # fmt: skip
            dropping.join()
            wait_settled(home, len(drop_set.first_wave), deadline)
            drop_all(drop_set.second_wave, home / "inbox")
            wait_settled(home, drop_set.total, deadline)
            elapsed = time.monotonic() - started
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=60)
        counts = check_conservation(home, drop_set.total)
        counts["slow copies read whole"] = check_slow_copies(home, drop_set.slow)
    print(f"{args.broker}: drops={drop_set.total} in {elapsed:.1f} s "
          f"({drop_set.total / elapsed:.1f} files/s); services up throughout: {alive}")  # fmt: skip
    if killed is not None:
        at, rows, what = killed
        print(f"kill -9 of {what} at {at:.1f} s ({rows} rows in); "
              f"all settled {elapsed - at:.1f} s after it")  # fmt: skip
    for name, value in counts.items():
        print(f"{name:<18} {value:>6}")


if __name__ == "__main__":
    main()
