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
import labloop
from agent.errors import LabloopError

REPO = Path(__file__).resolve().parents[1]


def contracts() -> list[dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_every_contract_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # import-linter finds the packages from the working folder
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    assert code == 0, "run `lint-imports` to see the import that breaks a contract"


def test_the_broker_contract_covers_the_whole_loop() -> None:
    """Every module of agent/, new ones included, is kept from the broker; the edges that
    may know it are a package of their own."""
    broker = contracts()[0]
    assert broker["source_modules"] == ["agent"]
    assert {"celery", "kombu", "redis", "workers", "labloop"} <= set(broker["forbidden_modules"])


def test_the_contracts_catch_a_forbidden_and_an_upward_import(tmp_path: Path) -> None:
    """The contracts can fail: in a copy of the code where the ingest imports Celery and the
    design space imports the batch states (an upward import), both are broken."""
    for package in ("agent", "workers", "labloop"):
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
    modules = [
        *pkgutil.walk_packages(agent.__path__, "agent."),
        *pkgutil.walk_packages(labloop.__path__, "labloop."),
    ]
    for module in modules:
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
