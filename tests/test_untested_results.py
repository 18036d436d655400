"""A rest- or impedance-only file is recorded, but the sample's test has not run yet.

It must never be dropped or quarantined, it must not complete the sample's batch, and it must
not enter the training set; the sample's later real test completes it as usual.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from agent.inbox.ingest import Ingestor
from agent.loop import batches
from agent.loop.training_data import load_training_set
from agent.reports.status import build_status
from agent.store.db import IngestedFile, Result
from tests.conftest import CYCLER_FILES, add_batch

TEST_DATA = Path(__file__).parent / "data"

NOT_TESTS = [
    ("arbin/FastCharge_000025_CH8.csv", "(rest)"),
    ("maccor/maccor_test_file_4267-66-6519.041", "(impedance, other, rest)"),
]


def ingest(ingestor: Ingestor, source: Path, name: str) -> None:
    shutil.copyfile(source, ingestor.settings.inbox / name)
    report = ingestor.ingest(name)
    assert report.status == "archived", report.reason


@pytest.mark.parametrize(("fixture", "seen"), NOT_TESTS)
def test_file_without_a_test_waits_for_the_real_one(settings, engine, fixture, seen):
    batch = add_batch(engine, 1, size=2)
    (settings.inbox / "masses.csv").write_text(
        "sample_id,active_mass_mg\nB001-S01,10.0\nB001-S02,10.0\n"
    )
    ingestor = Ingestor(settings, engine)
    # the hand-made NCM coin cell: ok, 203.01 mAh/g
    ingest(ingestor, TEST_DATA / "arbin_mits_first_cycle.csv", "B001-S02.csv")
    ingest(ingestor, CYCLER_FILES / fixture, "B001-S01" + Path(fixture).suffix)

    with Session(engine) as session:
        untested = session.exec(select(Result).where(Result.failure_class == "untested")).one()
        assert session.exec(select(IngestedFile.status)).all() == ["archived", "archived"]
        assert batches.missing_samples(session, batch.id) == ["B001-S01"]
    assert untested.outcome == "failed"
    assert untested.reason == (
        f"no charge and no discharge in the file {seen}: the cycling test has not run yet"
    )
    assert batches.record_progress(engine, batch.id) is None
    training = load_training_set(engine)
    assert training.sample_ids == ["B001-S02"]
    assert training.counts["unmeasured"] == 1
    # the status page and `labloop status` list it with its class and reason
    status = build_status(engine)
    [line] = status.failures
    assert (line.sample_id, line.failure_class) == ("B001-S01", "untested")
    [progress] = status.batches
    assert (progress.samples, progress.with_result) == (2, 1)  # S01 is still to be tested

    # the sample's real test comes in: the batch completes and trains on both (maccor_002.txt
    # is an ok first cycle on its own protocol, 3.8-1.3 V)
    its_protocol = {"charge_cutoff_v": 3.8, "discharge_cutoff_v": 1.3}
    retest = Ingestor(settings.model_copy(update=its_protocol), engine)
    ingest(retest, CYCLER_FILES / "maccor" / "maccor_002.txt", "B001-S01-retest.txt")
    assert batches.record_progress(engine, batch.id) == 1
    training = load_training_set(engine)
    assert sorted(training.sample_ids) == ["B001-S01", "B001-S02"]
    assert training.counts["unmeasured"] == 0
