"""Tests of the status page. ``seed_campaign`` fills a labloop home for them to look at.

What it leaves, through the real ingest path and real files:

* B001 running, 2/10 in: S01 ok (and re-tested), S02 failed ("sintered during calcination,
  no powder to test"); its recipe file written by agent.loop.recipe_files;
* B002 running, 2/10 in: S02 failed ("sintered, no powder");
* B003 trained, 10/10 in: S07 failed as a cell ("cell shorted during formation");
* quarantined: a result for B003-S99 (unknown sample id) and a Novonix export;
* in the inbox, waiting: B001-S03.csv (and a .part, a hidden file and masses.csv, ignored);
* model v1, trained after batch 3, with its four-model comparison and parity data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from agent.config import Settings
from agent.inbox.ingest import Ingestor
from agent.loop.recipe_files import PlannedSample, recipe_path, write_recipe_file
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, ModelRun
from tests.conftest import CYCLER_FILES, add_batch

DATA = Path(__file__).resolve().parents[1] / "data"
# a real export of a format labloop does not read (BEEP test data, Apache-2.0)
NOVONIX = CYCLER_FILES / "novonix" / "test_Nova_Form-CH01-01_short.csv"
COMPARISON = {
    name: {"RMSE train": rmse / 2, "RMSE test": rmse, "R2 train": 0.97, "R2 test": r2}
    for name, rmse, r2 in (("DT", 6.125, 0.41), ("RF", 4.25, 0.63), ("GBM", 3.456, 0.78),
                           ("NN", 5.5, 0.52))
}  # fmt: skip


def seed_campaign(settings: Settings, engine: Engine) -> None:
    for number in (1, 2, 3):
        add_batch(engine, number)
    ingestor = Ingestor(settings, engine)
    full_batch = settings.home.parent / "B003-results.csv"
    full_batch.write_text(
        "sample_id,initial_discharge_mah_g,status,reason,failure_class\n"
        + "".join(
            f"B003-S{slot:02d},{210 + slot}.5,ok,,\n" if slot != 7
            else "B003-S07,,failed,cell shorted during formation,cell\n"
            for slot in range(1, 11)
        )
    )  # fmt: skip
    for path in (
        DATA / "ingest" / "B001-results.csv",
        DATA / "ingest" / "B001-S01-retest.csv",
        DATA / "results_ok_failed.csv",
        full_batch,
        DATA / "ingest" / "unknown-sample.csv",
        NOVONIX,
    ):  # dropped into the inbox one by one, as lab staff do
        shutil.copy(path, settings.inbox / path.name)
        ingestor.ingest(path.name)
    space = DesignSpace.load()
    path = recipe_path(settings.recipes, 1)
    sha = write_recipe_file(
        path,
        space,
        [PlannedSample(f"B001-S{slot:02d}", recipe) for slot, recipe in
         enumerate(space.random(10, rng=1), start=1)],
    )  # fmt: skip
    for name in ("B001-S03.csv", "B001-S04.csv.part", ".hidden.csv", "masses.csv"):
        (settings.inbox / name).write_text("sample_id,initial_discharge_mah_g,status,reason\n")
    with Session(engine) as session:
        session.exec(update(Batch).where(Batch.number == 3).values(state=BatchState.TRAINED))
        session.exec(
            update(Batch).where(Batch.number == 1).values(recipe_file=str(path), recipe_sha256=sha)
        )
        session.add(
            ModelRun(
                version=1, trigger_batch=3, n_train=9, n_outcomes=10, counts={},
                hyperparameters={}, comparison=COMPARISON, cv_rmse=3.61, cv_r2=0.77,
                parity={"measured": [211.5, 212.5, 213.5], "predicted": [212.0, 211.0, 214.2]},
                model_path="models/model-v0001.joblib", model_sha256="0" * 64,
            )
        )  # fmt: skip
        session.commit()
