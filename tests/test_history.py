"""agent.loop.history_import: past records in, failed and unmeasured kept, re-import adds none."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from agent.cycler import read_export
from agent.loop.history_import import import_history
from agent.loop.training_data import load_training_set
from agent.space.design import DesignSpace
from agent.store.db import Experiment, Result

SPACE = DesignSpace.load()
HEADER = "ni_fraction,calcination_temp_c,li_source,initial_discharge_mah_g,status,reason"


def test_import_keeps_failed_and_unmeasured_rows_and_is_idempotent(engine, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        f"{HEADER},failure_class\n"
        "0.92,750,LiOH,214.2,ok,,\n"
        "0.92,,Li2CO3,210.9,ok,,\n"
        "0.94,800,LiOH,,failed,sintered,\n"
        "0.94,700,LiOH,,failed,short circuit,cell\n"
        "0.92,760,LiOH,,ok,,\n"
    )
    summary = import_history(engine, path, SPACE)
    assert (summary.added, summary.ok, summary.failed, summary.unmeasured) == (5, 2, 2, 1)
    with Session(engine) as session:
        experiments = session.exec(select(Experiment).order_by(Experiment.id)).all()
        results = session.exec(select(Result).order_by(Result.id)).all()
    assert [e.origin for e in experiments] == ["historical"] * 5
    assert experiments[1].parameters["calcination_temp_c"] is None
    assert [r.failure_class for r in results] == [None, None, "synthesis", "cell"]
    again = import_history(engine, path, SPACE)
    assert (again.added, again.already_there) == (0, 5)


def test_training_set_uses_each_failure_class_for_what_it_means(engine, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        f"{HEADER},failure_class\n"
        "0.92,750,LiOH,214.2,ok,,\n"
        "0.94,800,LiOH,,failed,sintered,synthesis\n"
        "0.94,700,LiOH,,failed,short circuit,cell\n"
        "0.94,705,LiOH,,failed,aborted,measurement\n"
        "0.92,760,LiOH,,ok,,\n"
    )
    import_history(engine, path, SPACE)
    training = load_training_set(engine)
    assert training.capacity_mah_g.tolist() == [214.2]
    assert training.success.tolist() == [1, 0]  # the ok row, the synthesis failure
    assert training.counts == {"ok": 1, "synthesis": 1, "cell": 1, "measurement": 1,
                               "unmeasured": 1}  # fmt: skip


def test_bad_history_files_are_refused_with_the_reason(engine, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("ni_fraction,initial_discharge_mah_g\n0.92,210\n")
    with pytest.raises(ValueError, match="missing column.*status"):
        import_history(engine, path, SPACE)
    path.write_text(f"{HEADER},colour\n0.92,750,LiOH,214,ok,,red\n")
    with pytest.raises(ValueError, match="unknown column.*colour"):
        import_history(engine, path, SPACE)


@pytest.mark.parametrize("word", ["ok", "Success", "succeeded", "failed", "FAIL", "failure"])
def test_history_and_result_sheets_read_a_status_word_alike(engine, tmp_path, word):
    """One vocabulary for results entered by hand: a word a sheet accepts, a history file
    accepts, with the same outcome; a failure without a class is a synthesis failure in both."""
    ok = word.lower() in ("ok", "success", "succeeded")
    history = tmp_path / "history.csv"
    history.write_text(f"sample_id,{HEADER}\nH1,0.92,750,LiOH,{214.2 if ok else ''},{word},\n")
    import_history(engine, history, SPACE)
    with Session(engine) as session:
        stored = session.exec(select(Result)).one()
    sheet = tmp_path / "B001-S01.csv"
    sheet.write_text(
        f"sample_id,initial_discharge_mah_g,status,reason\nB001-S01,{214.2 if ok else ''},{word},\n"
    )
    [row] = read_export(sheet)
    assert (stored.outcome, stored.failure_class) == (
        row.status.value,
        None if row.failure_class is None else row.failure_class.value,
    )
    assert stored.outcome == ("ok" if ok else "failed")
    assert stored.failure_class == (None if ok else "synthesis")


def test_a_history_is_read_as_a_result_sheet_is(engine, tmp_path):
    """One reader of rows entered by hand: a semicolon history with decimal commas reads as
    the comma one does, and a wrong value is refused in the sheets' words, with its line."""
    comma = tmp_path / "comma.csv"
    comma.write_text(f"sample_id,{HEADER}\nH1,0.92,750,LiOH,214.2,ok,\n")
    semicolon = tmp_path / "semicolon.csv"
    semicolon.write_text(f"sample_id;{HEADER.replace(',', ';')}\nH2;0,92;750;LiOH;214,2;ok;\n")
    import_history(engine, comma, SPACE)
    import_history(engine, semicolon, SPACE)
    with Session(engine) as session:
        stored = session.exec(select(Experiment).order_by(Experiment.sample_id)).all()
        capacities = session.exec(select(Result.discharge_mah_g)).all()
    assert [e.parameters for e in stored][0] == [e.parameters for e in stored][1]
    assert capacities == [214.2, 214.2]
    broken = tmp_path / "broken.csv"
    broken.write_text(f"{HEADER}\n0.92,750,LiOH,lots,ok,\n")
    with pytest.raises(ValueError, match="broken.csv: history row 2 .* 'lots' is not a number"):
        import_history(engine, broken, SPACE)
