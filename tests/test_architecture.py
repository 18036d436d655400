"""The boundaries of the house, checked: the loop runs without a broker, readers only read.

The contracts are in pyproject.toml (`[tool.importlinter]`); `lint-imports` runs them too.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

import agent
from agent.errors import LabloopError

REPO = Path(__file__).resolve().parents[1]
# the edges: they start workers, send tasks and read queues; nothing else may
EDGES = {"agent.cli", "agent.demo", "agent.web"}


def contracts() -> list[dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_every_contract_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # import-linter finds the packages from the working folder
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    assert code == 0, "run `lint-imports` to see the import that breaks a contract"


def test_every_module_of_agent_is_either_an_edge_or_kept_from_the_broker() -> None:
    """A new module is covered by the broker contract unless it is named an edge here."""
    broker_free = set(contracts()[0]["source_modules"])
    assert "celery" in contracts()[0]["forbidden_modules"]
    top_level = {f"agent.{m.name}" for m in pkgutil.iter_modules(agent.__path__)}
    assert top_level - EDGES == broker_free, (
        "add the module to the contract in pyproject.toml, or to EDGES if it is one"
    )
    assert top_level >= EDGES


def test_the_contracts_catch_a_forbidden_and_an_upward_import(tmp_path: Path) -> None:
    """The contracts can fail: in a copy of the code where the ingest imports Celery and the
    design space imports the batch states (an upward import), both are broken."""
    for package in ("agent", "workers"):
        for path in (REPO / package).rglob("*.py"):
            target = tmp_path / path.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    ingest = tmp_path / "agent" / "inbox" / "ingest.py"
    ingest.write_text(ingest.read_text() + "\nimport celery  # noqa: E402\n")
    space = tmp_path / "agent" / "space" / "design.py"
    space.write_text(space.read_text() + "\nimport agent.loop.batches  # noqa: E402\n")
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    linted = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
    )  # fmt: skip
    assert linted.returncode == 1, linted.stdout + linted.stderr
    assert "agent.inbox.ingest -> celery" in linted.stdout, linted.stdout
    assert "agent.space.design -> agent.loop.batches" in linted.stdout, linted.stdout
    assert "2 broken" in linted.stdout, linted.stdout


def test_every_error_labloop_raises_on_purpose_has_the_one_base() -> None:
    """The CLI maps LabloopError to one line and exit 2: an error class outside it would
    show a person a traceback for a situation labloop expected."""
    own: list[type] = []
    for module in pkgutil.walk_packages(agent.__path__, "agent."):
        if ".migrations" in module.name:
            continue  # alembic's scripts, run by alembic
        loaded = importlib.import_module(module.name)
        own += [
            value for value in vars(loaded).values()
            if isinstance(value, type) and issubclass(value, BaseException)
            and value.__module__ == module.name
        ]  # fmt: skip
    names = {f"{error.__module__}.{error.__name__}": error for error in own}
    assert {"agent.cycler.base.ReadError", "agent.inbox.judge.Rejected"} <= names.keys()
    assert [name for name, error in names.items() if not issubclass(error, LabloopError)] == []
