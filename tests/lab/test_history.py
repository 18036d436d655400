"""The generated history has the paper's biased shape and imports cleanly."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from agent.lab.cli import lab_app
from agent.lab.history import generate_history, write_history
from agent.lab.truth import true_optimum
from agent.loop.history_import import import_history
from agent.space.design import DesignSpace
from agent.store.db import Experiment, Result, init_db, make_engine
from tests.conftest import REPO

SPACE = DesignSpace.load()
RESULT_COLUMNS = ["initial_discharge_mah_g", "status", "reason"]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return generate_history(0, 700)


def test_ni_counts_follow_the_paper(history):
    counts = history["ni_fraction"].value_counts()
    assert abs(counts[0.92] - 634) <= 0.05 * 634
    assert abs(counts[0.94] - 18) <= 5
    best, _ = true_optimum(SPACE)
    # the optimum's Ni is (almost) never visited
    assert (history["ni_fraction"] == best["ni_fraction"]).mean() < 0.05


def test_habits_show_as_narrow_and_one_value_distributions(history):
    coating = history["coating_temp_c"]
    span = SPACE.parameters["coating_temp_c"].high - SPACE.parameters["coating_temp_c"].low
    assert coating.std() < 15 and coating.std() < span / 20
    calcination = history["calcination_temp_c"]
    assert 8 < calcination.std() < 30  # roughly Gaussian, not a habit
    assert abs(calcination.skew()) < 0.5
    one_value = [c for c in SPACE.parameters if history[c].nunique() == 1]
    assert len(one_value) >= 3
    assert {"li_source", "atmosphere", "calcination_time_h"} <= set(one_value)


def test_poor_results_are_under_reported_and_failures_have_reasons(history):
    ok = history[history["status"] == "ok"]
    failed = history[history["status"] == "failed"]
    unmeasured = ok["initial_discharge_mah_g"].isna()
    assert 0.05 < unmeasured.mean() < 0.35
    assert len(failed) >= 5 and failed["reason"].str.len().gt(0).all()
    assert failed["initial_discharge_mah_g"].isna().all()
    assert (ok.loc[~unmeasured, "reason"] == "").all()


def test_rows_are_valid_recipes_on_the_grid(history):
    for recipe in history[list(SPACE.columns)].to_dict("records"):
        SPACE.validate(recipe)
    assert list(history.columns) == ["sample_id", *SPACE.columns, *RESULT_COLUMNS]


def test_history_imports_cleanly(tmp_path, history):
    path = write_history(tmp_path / "historical.csv", seed=0, n=700)
    engine = make_engine(f"sqlite:///{tmp_path / 'labloop.db'}")
    init_db(engine)
    summary = import_history(engine, path, SPACE)
    unmeasured = (history["status"] == "ok") & history["initial_discharge_mah_g"].isna()
    assert (summary.rows, summary.added) == (700, 700)
    assert summary.failed == (history["status"] == "failed").sum()
    assert summary.unmeasured == unmeasured.sum()
    with Session(engine) as session:
        experiments = session.exec(select(func.count()).select_from(Experiment)).one()
        results = session.exec(select(func.count()).select_from(Result)).one()
    assert (experiments, results) == (700, 700 - unmeasured.sum())
    engine.dispose()


def test_cli_writes_the_shipped_file_reproducibly(tmp_path):
    out = tmp_path / "historical.csv"
    result = CliRunner().invoke(lab_app, ["history", "--out", str(out), "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (REPO / "agent" / "data" / "historical.csv").read_bytes()
