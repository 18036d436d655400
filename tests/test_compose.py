"""docker-compose.yml: every labloop service runs a real `labloop` command line.

`docker compose config` needs the docker compose plugin, which this machine lacks, so the
file is checked by parsing it and asking the `labloop` command itself about each line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_has_the_whole_stack():
    names = set(services())
    expected = {"redis", "postgres", "watcher", "worker-ingest", "worker-learning", "web", "flower"}
    assert expected <= names
    for name in ("redis", "postgres"):
        assert "healthcheck" in services()[name]
    assert "pgdata" in yaml.safe_load(COMPOSE.read_text())["volumes"]


@pytest.mark.parametrize("name", [n for n, s in services().items() if "build" in s])
def test_every_labloop_service_runs_a_real_command(name):
    service = services()[name]
    result = CliRunner().invoke(app, [*service["command"], "--help"])
    assert result.exit_code == 0, result.output
    assert "./inbox:/lab/inbox" in service["volumes"]
    assert service["environment"]["LABLOOP_BROKER_URL"].startswith("redis://")
    assert service["environment"]["LABLOOP_DATABASE_URL"].startswith("postgresql")


def test_compose_runs_unattended_and_keeps_its_secrets_elsewhere():
    text = COMPOSE.read_text()
    every = services()
    # every service comes back after a crash or a reboot
    assert all(service.get("restart") == "unless-stopped" for service in every.values())
    # nothing listens beyond this machine; the page and Flower go behind a proxy
    ports = [port for service in every.values() for port in service.get("ports", [])]
    assert ports and all(port.startswith("127.0.0.1:") for port in ports)
    # the broker's append-only file and the database live on named volumes
    assert "redisdata:/data" in every["redis"]["volumes"]
    assert {"pgdata", "redisdata"} <= set(yaml.safe_load(text)["volumes"])
    # no password in the file: it comes from .env (an example ships, .env is ignored)
    assert "labloop:labloop@" not in text and "POSTGRES_PASSWORD: labloop" not in text
    assert "${POSTGRES_PASSWORD:?" in every["postgres"]["environment"]["POSTGRES_PASSWORD"]
    root = COMPOSE.parent
    assert "POSTGRES_PASSWORD=" in (root / ".env.example").read_text()
    assert ".env" in (root / ".gitignore").read_text().split()
    # a retrain may finish before the learning worker is killed
    assert every["worker-learning"]["stop_grace_period"] == "15m"


def test_the_image_runs_as_the_lab_staffs_user():
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "USER labloop" in dockerfile and "ARG LABLOOP_UID" in dockerfile
    build = services()["worker-ingest"]["build"]
    assert set(build["args"]) == {"LABLOOP_UID", "LABLOOP_GID"}


@pytest.mark.parametrize(
    ("name", "service"),
    [("watcher", "watcher"), ("worker-ingest", "ingest"), ("worker-learning", "learning")],
)
def test_the_loop_services_are_healthy_only_while_they_beat(name, service):
    """Each checks its own heartbeat with `labloop health`, the name its command beats as."""
    check = services()[name]["healthcheck"]
    assert check["test"] == ["CMD", "labloop", "health", service]
    command = services()[name]["command"]
    beats_as = "watcher" if command == ["watch"] else command[command.index("--queue") + 1]
    assert beats_as == service
    # three missed beats of 10 s make a heartbeat stale: checks more often than that
    assert int(check["interval"].rstrip("s")) * check["retries"] <= 60
    assert CliRunner().invoke(app, ["health", "--help"]).exit_code == 0
