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
