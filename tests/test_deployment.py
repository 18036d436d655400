"""The deployment: the compose file's set of processes, without containers, on this
machine's Redis and PostgreSQL (watcher, ingest worker, learning worker, status page and
Flower, each its own process started by the command docker-compose.yml gives it), and the
image's Dockerfile, read and its build stage replayed (no docker engine on CI machines)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import create_engine, text

from agent.config import FAST_BUDGET
from agent.store.db import init_db, make_engine
from tests.conftest import POSTGRES_URL, add_batch, postgres_url
from tests.stack import Stack, free_port, sheet
from tests.synthetic import write_history

REPO = Path(__file__).resolve().parents[1]
BROKER = "redis://127.0.0.1:6379/13"
SMALL = {**FAST_BUDGET, "LABLOOP_SETTLE_SECONDS": "0.2", "COLUMNS": "200"}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except OSError:
        return 0, b""


@pytest.fixture
def database_schema():
    schema = f"labloop_deploy_{uuid.uuid4().hex[:8]}"
    with create_engine(POSTGRES_URL).begin() as admin:
        admin.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield postgres_url(schema)
    with create_engine(POSTGRES_URL).begin() as admin:
        admin.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.mark.redis
@pytest.mark.postgres
def test_the_compose_processes_run_the_loop_on_redis_and_postgres(tmp_path, database_schema):
    redis.Redis.from_url(BROKER).flushdb()
    home = tmp_path / "home"
    env = {**os.environ, **SMALL, "LABLOOP_HOME": str(home), "LABLOOP_BROKER_URL": BROKER,
           "LABLOOP_DATABASE_URL": database_schema}  # fmt: skip
    engine = make_engine(database_schema)
    init_db(engine)
    add_batch(engine, 1)
    history = write_history(tmp_path / "history.csv", rows=120, seed=8)
    web_port, flower_port = free_port(), free_port()

    def service(name: str, *args: str) -> Stack:
        return Stack(home, env, tmp_path / f"{name}.log", args=list(args))

    # the compose file's own command lines; the page and Flower on free ports of this
    # machine (a repeated option's last value counts)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    here = {"web": ["--host", "127.0.0.1", "--port", str(web_port)],
            "flower": ["--address", "127.0.0.1", "--port", str(flower_port)]}  # fmt: skip
    names = {"watcher": "watcher", "ingest": "worker-ingest", "learning": "worker-learning",
             "web": "web", "flower": "flower"}  # fmt: skip
    services = {
        name: service(name, *compose[entry]["command"], *here.get(name, []))
        for name, entry in names.items()
    }
    importer = service("import", "import-history", str(history))
    importer.start()
    assert importer.process.wait(timeout=120) == 0
    (home / "inbox").mkdir(parents=True, exist_ok=True)
    try:
        for running in services.values():
            running.start()
        watcher = services["watcher"]
        for slot in range(1, 11):
            sheet(home / "inbox" / f"B001-S{slot:02d}.csv", f"B001-S{slot:02d}", 214.0 + slot)
        recipe = home / "recipes" / "batch-002.csv"
        assert watcher.wait_for(recipe.exists, timeout=180), (
            tmp_path / "learning.log"
        ).read_text()[-3000:]

        # the watcher restarted with files dropped while it was down
        watcher.process.send_signal(signal.SIGTERM)
        watcher.process.wait(timeout=30)
        for slot in range(1, 4):
            sheet(home / "inbox" / f"B002-S{slot:02d}.csv", f"B002-S{slot:02d}", 220.0)
        time.sleep(1.0)
        assert len(list((home / "inbox").glob("B002-*.csv"))) == 3  # nobody read them
        watcher.start()
        assert watcher.wait_for(lambda: not list((home / "inbox").glob("B002-*.csv")), 60)

        status, body = get(f"http://127.0.0.1:{web_port}/api/batches")
        assert status == 200
        states = {b["number"]: (b["state"], b["with_result"]) for b in json.loads(body)["batches"]}
        assert states[1] == ("trained", 10)
        assert states[2] == ("running", 3)
        assert get(f"http://127.0.0.1:{web_port}/healthz")[0] == 200
        assert watcher.wait_for(
            lambda: get(f"http://127.0.0.1:{flower_port}/healthcheck") == (200, b"OK"), 30
        )
        assert all(s.process.poll() is None for s in services.values())
    finally:
        for running in services.values():
            running.stop()
        engine.dispose()
    assert len(list((home / "archive").iterdir())) == 13  # ten of batch 1, three of batch 2


def dockerfile_stages() -> list[dict[str, object]]:
    """The Dockerfile's stages in order: {"name", "instructions": [(KEYWORD, argument)]}
    (continued lines joined, comments left out)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[dict[str, object]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, argument = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = argument.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "instructions": []})
        stages[-1]["instructions"].append((keyword.upper(), argument.strip()))
    return stages


def test_the_image_installs_the_wheel_its_build_stage_makes(tmp_path):
    *builders, final = dockerfile_stages()
    [build] = [stage for stage in builders if stage["name"]]
    final_steps = final["instructions"]
    # the final stage takes the wheels from the build stage and installs a .whl of them,
    # with no source tree copied in and nothing installed from a folder
    [(_, copied)] = [(k, a) for k, a in final_steps if k == "COPY"]
    source, wheels = copied.split()[1:]
    assert copied.split()[0] == f"--from={build['name']}"
    installs = [a for k, a in final_steps if k == "RUN" and "pip install" in a]
    assert len(installs) == 1
    [wheel_glob] = [w for w in shlex.split(installs[0]) if w.endswith(".whl")]
    assert wheel_glob.startswith(wheels.rstrip("/") + "/")
    assert not any(k == "COPY" and "--from" not in a for k, a in final_steps)

    # replay the build stage: its COPYs into a context, its pip command there
    context = tmp_path / "src"
    context.mkdir()
    for keyword, argument in build["instructions"]:
        if keyword == "COPY":
            *sources, target = argument.split()
            for name in sources:
                into = context / target if target not in ("./", ".") else context / name
                copy = shutil.copytree if (REPO / name).is_dir() else shutil.copyfile
                copy(REPO / name, into)
    [command] = [a for k, a in build["instructions"] if k == "RUN"]
    words = shlex.split(command.replace(source, str(tmp_path / "wheels")))
    assert words[:2] == ["pip", "wheel"] and words[-1] == "."
    done = subprocess.run([sys.executable, "-m", *words], cwd=context, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built = list((tmp_path / "wheels").glob(Path(wheel_glob).name))
    assert [wheel.name.split("-")[0] for wheel in built] == ["labloop"]
