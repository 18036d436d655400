"""An installed labloop (a wheel, not this checkout) works from any folder: its design space,
history, templates and migrations travel inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent.config import FAST_BUDGET
from tests.conftest import add_batch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project's wheel unpacked into a folder of its own (dependencies from this venv)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    [wheel] = out.glob("labloop-*.whl")
    target = out / "site"
    zipfile.ZipFile(wheel).extractall(target)
    return target


def test_the_wheel_runs_the_loop_from_an_unrelated_folder(installed, tmp_path):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = {**os.environ, **FAST_BUDGET, "PYTHONPATH": str(installed), "COLUMNS": "200",
           "LABLOOP_HOME": str(tmp_path / "home")}  # fmt: skip

    def labloop(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    where = subprocess.run(
        [sys.executable, "-c", "import agent; print(agent.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(installed))  # not this checkout
    history = installed / "agent" / "data" / "historical.csv"
    assert "700 experiments added" in labloop("import-history", str(history)).stdout
    assert "batch 1: " in labloop("propose").stdout
    from agent.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'var' / 'labloop.db'}")
    add_batch(engine, 2, size=2)  # a batch a result sheet can complete
    engine.dispose()
    sheet = tmp_path / "results.csv"
    sheet.write_text("sample_id,initial_discharge_mah_g,status,reason\nB002-S01,221.0,ok,\n"
                     "B002-S02,,failed,sintered\n")  # fmt: skip
    ingested = labloop("ingest", str(sheet))
    assert "1 archived" in ingested.stdout and "batch 2 complete" in ingested.stdout
    assert "model v2" in labloop("retrain").stdout
