"""agent.inbox.ingest: one file -> one record, idempotent, nothing lost (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session, select

import agent.inbox.ingest as ingest_module
import agent.inbox.judge as judge_module
from agent.inbox.ingest import Ingestor
from agent.inbox.judge import Judge
from agent.store.db import Experiment, IngestedFile, Result
from tests.conftest import CYCLER_FILES, add_batch

DATA = Path(__file__).parent / "data" / "ingest"


def drop(settings, source: Path, name: str | None = None) -> Path:
    target = settings.inbox / (name or source.name)
    shutil.copyfile(source, target)
    return target


def rows(engine, model):
    with Session(engine) as session:
        return session.exec(select(model).order_by(model.id)).all()


def folder_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".error.txt"))


def test_result_sheet_records_ok_and_failed_rows(settings, engine):
    add_batch(engine, 1)
    report = Ingestor(settings, engine).ingest(drop(settings, DATA / "B001-results.csv"))
    assert report.status == "archived"
    assert report.sample_ids == ("B001-S01", "B001-S02")
    results = rows(engine, Result)
    assert [(r.outcome, r.discharge_mah_g) for r in results] == [("ok", 221.4), ("failed", None)]
    failed = results[1]
    assert failed.failure_class == "synthesis"
    assert "sintered" in failed.reason
    assert not (settings.inbox / "B001-results.csv").exists()
    assert folder_files(settings.archive) == [f"{report.file_id:06d}_B001-results.csv"]
    assert report.batch_ids == (1,)


def test_same_bytes_twice_are_recorded_once(settings, engine):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    first = ingestor.ingest(drop(settings, DATA / "B001-results.csv"))
    second = ingestor.ingest(drop(settings, DATA / "B001-results.csv", "renamed copy.csv"))
    assert first.status == "archived"
    assert second.status == "quarantined"
    assert "duplicate" in second.reason and "B001-results.csv" in second.reason
    assert len(rows(engine, Result)) == 2
    # each drop has its own row and ends in exactly one place
    assert [f.status for f in rows(engine, IngestedFile)] == ["archived", "quarantined"]
    assert len(folder_files(settings.archive)) == 1
    assert len(folder_files(settings.quarantine)) == 1
    error = settings.quarantine / f"{second.file_id:06d}_renamed copy.csv.error.txt"
    assert "duplicate" in error.read_text()
    assert "what now: nothing to do: its content is recorded already" in error.read_text()


def test_unknown_sample_is_quarantined_and_nothing_stored(settings, engine):
    add_batch(engine, 1)
    report = Ingestor(settings, engine).ingest(drop(settings, DATA / "unknown-sample.csv"))
    assert report.status == "quarantined"
    assert "unknown sample id B003-S99" in report.reason
    assert rows(engine, Result) == []
    assert (settings.quarantine / f"{report.file_id:06d}_unknown-sample.csv").exists()


def test_unknown_sample_with_parameters_becomes_manual_experiment(settings, engine):
    report = Ingestor(settings, engine).ingest(drop(settings, DATA / "manual-trial.csv"))
    assert report.status == "archived"
    [experiment] = rows(engine, Experiment)
    assert experiment.sample_id == "TRIAL-7"
    assert experiment.origin == "manual"
    assert experiment.parameters["calcination_temp_c"] == 725
    assert experiment.parameters["li_source"] == "LiOH"
    assert rows(engine, Result)[0].discharge_mah_g == 224.9


def test_retest_adds_a_result_and_keeps_history(settings, engine):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    ingestor.ingest(drop(settings, DATA / "B001-results.csv"))
    ingestor.ingest(drop(settings, DATA / "B001-S01-retest.csv"))
    with Session(engine) as session:
        s01 = session.exec(select(Experiment).where(Experiment.sample_id == "B001-S01")).one()
        values = session.exec(
            select(Result.discharge_mah_g).where(Result.experiment_id == s01.id).order_by(Result.id)
        ).all()
    assert values == [221.4, 223.0]


def test_crash_between_commit_and_move_is_finished_by_retry(settings, engine, monkeypatch):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    path = drop(settings, DATA / "B001-results.csv")

    def crash(*_args, **_kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(ingest_module, "place_file", crash)
    with pytest.raises(SystemExit):
        ingestor.ingest(path)
    assert path.exists()  # committed, not yet moved
    monkeypatch.undo()
    report = ingestor.ingest(path)
    assert report.status == "archived"
    assert not path.exists()
    assert len(rows(engine, IngestedFile)) == 1
    assert len(rows(engine, Result)) == 2


def test_crash_before_commit_is_redone_after_the_lease(settings, engine, monkeypatch):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    path = drop(settings, DATA / "B001-results.csv")
    monkeypatch.setattr(Ingestor, "_store", lambda *a, **k: (_ for _ in ()).throw(SystemExit()))
    with pytest.raises(SystemExit):
        ingestor.ingest(path)
    monkeypatch.undo()
    # the dead worker still holds the lease: a retry now leaves the file alone ...
    assert ingestor.ingest(path).status == "in-progress"
    # ... and takes over once the lease has run out
    with Session(engine) as session:
        row = session.exec(select(IngestedFile)).one()
        row.lease_until = None
        session.add(row)
        session.commit()
    assert ingestor.ingest(path).status == "archived"
    assert len(rows(engine, IngestedFile)) == 1
    assert len(rows(engine, Result)) == 2


def test_two_workers_racing_on_one_file_store_it_once(settings, engine):
    add_batch(engine, 1)
    path = drop(settings, DATA / "B001-results.csv")
    reports = []
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        reports.append(Ingestor(settings, engine).ingest(path))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in reports) in (
        ["archived", "in-progress"],
        ["archived", "archived"],
        ["archived", "missing"],
    )
    assert len(rows(engine, IngestedFile)) == 1
    assert len(rows(engine, Result)) == 2


BAD_INPUTS = {
    "empty.csv": b"",
    "random.bin": os.urandom(4096),
    "latin1.csv": "sample_id;Kapazität\xff\xfe;Ä\n1;2\n".encode("latin-1"),
    "wrong-columns.csv": b"name,colour,size\nwidget,blue,3\n",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_goes_to_quarantine_with_a_reason(settings, engine, name):
    path = settings.inbox / name
    path.write_bytes(BAD_INPUTS[name])
    report = Ingestor(settings, engine).ingest(path)
    assert report.status == "quarantined"
    assert report.reason
    stored = settings.quarantine / f"{report.file_id:06d}_{name}"
    assert stored.read_bytes() == BAD_INPUTS[name]  # nothing lost
    error = (stored.parent / (stored.name + ".error.txt")).read_text()
    assert report.reason in error and "what now: fix the cause" in error
    assert [f.status for f in rows(engine, IngestedFile)] == ["quarantined"]


def test_xlsx_of_junk_and_truncated_export_are_quarantined(settings, engine):
    junk = settings.inbox / "B001-S01.xlsx"
    with zipfile.ZipFile(junk, "w") as archive:
        archive.writestr("xl/junk.bin", os.urandom(512))
    truncated = settings.inbox / "B001-S02.csv"
    head = (CYCLER_FILES / "arbin" / "FastCharge_000025_CH8.csv").read_bytes()[:250]
    truncated.write_bytes(head)
    ingestor = Ingestor(settings, engine)
    assert ingestor.ingest(junk).status == "quarantined"
    report = ingestor.ingest(truncated)
    assert report.status == "quarantined", report
    assert len(rows(engine, IngestedFile)) == 2


def test_unsupported_formats_are_quarantined_saying_what_was_recognised(settings, engine):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    novonix = drop(
        settings, CYCLER_FILES / "novonix" / "test_Nova_Form-CH01-01_short.csv", "B001-S03.csv"
    )
    pec = drop(settings, CYCLER_FILES / "pec" / "Test25205.csv", "B001-S04.csv")
    for path, word in ((novonix, "Novonix"), (pec, "PEC")):
        report = ingestor.ingest(path)
        assert report.status == "quarantined"
        assert report.reason.startswith("unsupported format")
        assert word in report.reason


def test_symlink_is_refused_not_followed(settings, engine, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("sample_id,initial_discharge_mah_g,status,reason\nB001-S01,200,ok,\n")
    link = settings.inbox / "B001-S01.csv"
    link.symlink_to(secret)
    report = Ingestor(settings, engine).ingest(link)
    assert report.status == "quarantined"
    assert "symbolic link" in report.reason
    assert secret.exists() and rows(engine, Result) == []
    assert (settings.quarantine / f"{report.file_id:06d}_B001-S01.csv").is_symlink()


def test_backfill_outside_the_inbox_copies_and_leaves_the_original(settings, engine):
    add_batch(engine, 1)
    original = DATA / "B001-results.csv"
    report = Ingestor(settings, engine).backfill(original)
    assert report.status == "archived"
    assert original.exists()
    assert (settings.archive / f"{report.file_id:06d}_B001-results.csv").read_bytes() == (
        original.read_bytes()
    )


def test_manual_experiment_with_a_misspelt_parameter_is_quarantined(settings, engine):
    report = Ingestor(settings, engine).ingest(drop(settings, DATA / "manual-typo.csv"))
    assert report.status == "quarantined"
    assert "unknown recipe parameter column(s) calcination_temp" in report.reason
    assert rows(engine, Experiment) == []


def test_a_bench_trial_with_a_coating_temperature_but_no_coating_is_quarantined(settings, engine):
    sheet = settings.inbox / "bench.csv"
    sheet.write_text(
        "sample_id,initial_discharge_mah_g,status,reason,ni_fraction,coating_material,"
        "coating_amount,coating_temp_c\n"
        "BENCH-01,221.4,ok,,0.94,none,,450\n"
    )
    report = Ingestor(settings, engine).ingest(sheet)
    assert report.status == "quarantined"
    assert "BENCH-01: coating_temp_c = 450 but it applies only when coating_material is B" in (
        report.reason
    )
    assert rows(engine, Experiment) == []


REAL_FILES = [
    # (fixture, outcome, failure class, words in the reason)
    ("maccor/maccor_002.txt", "failed", "measurement", "charge cutoff never reached"),
    ("neware/neware_uio.csv", "failed", "measurement", "discharges first"),
    # rest / impedance only: recorded, but the sample's test has not run yet
    ("arbin/FastCharge_000025_CH8.csv", "failed", "untested", "no charge and no discharge"),
    ("maccor/maccor_test_file_4267-66-6519.041", "failed", "untested", "impedance"),
    # an anode half cell: it "charges" to 1.0 V only, whatever the mass
    ("biologic/biol.mpr", "failed", "measurement", "anode half cell"),
    # the first discharge stops at 3.0 V against the 2.75 V protocol
    (
        "biologic/test_loopsnewoutput_MB_CE1_short10k.csv",
        "failed",
        "measurement",
        "stopped at 3.000 V",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("fixture", "outcome", "failure_class", "words"), REAL_FILES)
def test_real_exports_are_recorded_with_their_verdict(
    settings, engine, fixture, outcome, failure_class, words
):
    add_batch(engine, 1)
    (settings.inbox / "masses.csv").write_text("sample_id,active_mass_mg\nB001-S01,10.0\n")
    suffix = Path(fixture).suffix
    report = Ingestor(settings, engine).ingest(
        drop(settings, CYCLER_FILES / fixture, f"B001-S01{suffix}")
    )
    assert report.status == "archived", report.reason
    [result] = rows(engine, Result)
    assert (result.outcome, result.failure_class) == (outcome, failure_class)
    assert words in result.reason
    assert (settings.inbox / "masses.csv").exists()  # the sidecar stays for the next cells


def test_capacity_uses_the_sidecar_mass_and_the_lab_protocol(settings, engine):
    """maccor_002.txt: first charge 2.44213 mAh to 3.80 V, discharge 2.25098 mAh to 1.30 V
    (hand-checked in tests/cycler); on 10 mg that is 244.213 and 225.098 mAh/g."""
    add_batch(engine, 1)
    (settings.inbox / "masses.csv").write_text("sample_id,active_mass_mg\nB001-S01,10.0\n")
    this_cell = settings.model_copy(update={"charge_cutoff_v": 3.8, "discharge_cutoff_v": 1.3})
    drop(settings, CYCLER_FILES / "maccor" / "maccor_002.txt", "B001-S01.txt")
    report = Ingestor(this_cell, engine).ingest(settings.inbox / "B001-S01.txt")
    assert report.status == "archived"
    [result] = rows(engine, Result)
    assert result.outcome == "ok"
    assert result.discharge_mah_g == pytest.approx(225.098, abs=1e-3)
    assert result.charge_mah_g == pytest.approx(244.213, abs=1e-3)
    assert result.coulombic_efficiency == pytest.approx(2.25098 / 2.44213, rel=1e-4)
    assert (result.active_mass_mg, result.mass_source) == (10.0, "sidecar")


def test_mass_from_the_file_wins_over_the_sidecar(settings, engine):
    add_batch(engine, 1)
    (settings.inbox / "masses.csv").write_text("sample_id,active_mass_mg\nB001-S01,10.0\n")
    drop(settings, CYCLER_FILES / "neware" / "neware_uio.csv", "B001-S01.csv")
    Ingestor(settings, engine).ingest(settings.inbox / "B001-S01.csv")
    [result] = rows(engine, Result)
    assert result.mass_source == "file"
    assert result.active_mass_mg == pytest.approx(2.08, abs=0.01)
    assert result.discharge_mah_g == pytest.approx(2250.15, abs=0.01)


def test_no_mass_anywhere_is_quarantined_with_what_to_do(settings, engine):
    add_batch(engine, 1)
    drop(settings, CYCLER_FILES / "maccor" / "maccor_002.txt", "B001-S01.txt")
    report = Ingestor(settings, engine).ingest(settings.inbox / "B001-S01.txt")
    assert report.status == "quarantined"
    assert "no active mass for B001-S01" in report.reason and "masses.csv" in report.reason
    with_default = settings.model_copy(update={"default_active_mass_mg": 12.5})
    drop(settings, CYCLER_FILES / "maccor" / "maccor_002.txt", "B001-S01.txt")
    assert Ingestor(with_default, engine).ingest(settings.inbox / "B001-S01.txt").status == (
        "archived"
    )
    [result] = rows(engine, Result)
    assert (result.active_mass_mg, result.mass_source) == (12.5, "default")


def test_export_starting_mid_test_is_quarantined(settings, engine):
    add_batch(engine, 1)
    fixture = CYCLER_FILES / "maccor" / "PredictionDiagnostics_000151_test.052"
    report = Ingestor(settings, engine).ingest(drop(settings, fixture, "B001-S01.052"))
    assert report.status == "quarantined"
    assert "cycle 37" in report.reason


def test_a_200_mb_file_is_quarantined_without_reading_it_all(settings, engine):
    huge = settings.inbox / "B001-S01.csv"
    with huge.open("wb") as handle:
        handle.write(b"\x00\x17binary dump\n")
        handle.truncate(200 * 1024 * 1024)
    report = Ingestor(settings, engine).ingest(huge)
    assert report.status == "quarantined"
    assert report.reason.startswith("unsupported format")
    assert (settings.quarantine / f"{report.file_id:06d}_B001-S01.csv").stat().st_size == (
        200 * 1024 * 1024
    )


def test_paths_leading_out_of_the_inbox_are_refused_untouched(settings, engine, tmp_path):
    outside = tmp_path / "precious.csv"
    outside.write_text("sample_id,initial_discharge_mah_g,status,reason\nB001-S01,200,ok,\n")
    ingestor = Ingestor(settings, engine)
    for name in ("../../precious.csv", str(outside), "sub/../../../precious.csv"):
        assert ingestor.ingest(name).status == "refused"
    linked = settings.inbox / "share"
    linked.symlink_to(tmp_path, target_is_directory=True)
    assert ingestor.ingest("share/precious.csv").status == "refused"
    assert outside.exists()
    assert rows(engine, IngestedFile) == []


def test_hard_link_into_the_inbox_is_quarantined_not_read(settings, engine, tmp_path):
    add_batch(engine, 1)
    original = tmp_path / "B001-results.csv"
    shutil.copyfile(DATA / "B001-results.csv", original)
    os.link(original, settings.inbox / "B001-results.csv")
    report = Ingestor(settings, engine).ingest("B001-results.csv")
    assert report.status == "quarantined"
    assert "hard link" in report.reason
    assert rows(engine, Result) == []
    assert original.exists()


def test_file_replaced_while_read_is_given_back_then_recorded(settings, engine, monkeypatch):
    add_batch(engine, 1)
    path = drop(settings, DATA / "B001-results.csv")
    real = judge_module.read_export

    def read_then_replace(target):
        export = real(target)
        target.write_bytes((DATA / "B001-S01-retest.csv").read_bytes())
        return export

    monkeypatch.setattr(judge_module, "read_export", read_then_replace)
    ingestor = Ingestor(settings, engine)
    assert ingestor.ingest(path).status == "changed"
    assert rows(engine, Result) == []
    monkeypatch.setattr(judge_module, "read_export", real)
    assert ingestor.ingest(path).status == "archived"
    assert [r.discharge_mah_g for r in rows(engine, Result)] == [223.0]  # the new content
    assert [f.status for f in rows(engine, IngestedFile)] == ["archived"]


@pytest.mark.parametrize("attempt", range(5))
def test_same_bytes_under_two_names_at_once_end_archived_and_duplicate(
    settings, engine, monkeypatch, attempt
):
    """Both workers read before either stores: the loser is a duplicate, not an error."""
    add_batch(engine, 1)
    first = drop(settings, DATA / "B001-results.csv", f"run{attempt}-a.csv")
    second = drop(settings, DATA / "B001-results.csv", f"run{attempt}-b.csv")
    both_read = threading.Barrier(2, timeout=30)
    real_read = Judge.read

    def read_then_wait(self, *args):
        tests = real_read(self, *args)
        both_read.wait()
        return tests

    monkeypatch.setattr(Judge, "read", read_then_wait)
    reports, errors = [], []

    def work(path):
        try:
            reports.append(Ingestor(settings, engine).ingest(path))
        except Exception as error:  # the race must not escape as an exception
            errors.append(error)

    threads = [threading.Thread(target=work, args=(p,)) for p in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.status for r in reports) == ["archived", "quarantined"]
    quarantined = next(r for r in reports if r.status == "quarantined")
    assert "duplicate" in quarantined.reason
    assert sorted(f.status for f in rows(engine, IngestedFile)) == ["archived", "quarantined"]
    assert len(rows(engine, Result)) == 2
    assert list(settings.inbox.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="raw byte file names are a POSIX matter")
def test_file_name_that_is_not_utf8_is_recorded_under_a_readable_name(settings, engine):
    add_batch(engine, 1)
    raw = os.fsencode(settings.inbox) + b"/r\xe9sum\xe9 B001.csv"  # latin-1, as from old SMB
    with open(raw, "wb") as handle:
        handle.write((DATA / "B001-results.csv").read_bytes())
    name = os.fsdecode(b"r\xe9sum\xe9 B001.csv")
    ingestor = Ingestor(settings, engine)
    report = ingestor.ingest(name)
    assert report.status == "archived"
    assert report.name == "r\\xe9sum\\xe9 B001.csv"
    (row,) = rows(engine, IngestedFile)
    assert row.original_name == "r\\xe9sum\\xe9 B001.csv"
    assert Path(row.stored_path).exists() and Path(row.stored_path).name.isprintable()
    assert os.listdir(os.fsencode(settings.inbox)) == []
    # asked again (a resubmit), the drop is found done, not crashed on
    assert ingestor.ingest(name).status == "archived"


@pytest.mark.skipif(os.name != "posix", reason="raw byte file names are a POSIX matter")
def test_unreadable_file_with_a_non_utf8_name_is_quarantined_with_its_reason(settings, engine):
    raw = os.fsencode(settings.inbox) + b"/\xff\xfe.csv"
    with open(raw, "wb") as handle:
        handle.write(b"name,colour\nwidget,blue\n")
    report = Ingestor(settings, engine).ingest(os.fsdecode(b"\xff\xfe.csv"))
    assert report.status == "quarantined"
    (row,) = rows(engine, IngestedFile)
    assert row.original_name == "\\xff\\xfe.csv"
    error_text = Path(row.stored_path + ".error.txt").read_text(encoding="utf-8")
    assert "\\xff\\xfe.csv" in error_text


def test_cycler_export_for_an_unknown_sample_says_to_fix_the_name(settings, engine):
    (settings.inbox / "masses.csv").write_text("sample_id,active_mass_mg\nB009-S03,10.0\n")
    arbin = CYCLER_FILES / "arbin" / "FastCharge_000025_CH8.csv"
    report = Ingestor(settings, engine).ingest(drop(settings, arbin, "B009-S03.csv"))
    assert report.status == "quarantined"
    assert report.reason.startswith("unknown sample id B009-S03: not in any recipe file")
    assert "rename the file" in report.reason
    assert "sheet columns" not in report.reason  # that advice is for result sheets only


WHOLE = (Path(__file__).parent / "data" / "arbin_mits_first_cycle.csv").read_bytes()
MASSES = "sample_id,active_mass_mg\nB001-S01,11.6\n"


def age(path: Path, seconds: float) -> None:
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


@pytest.mark.parametrize(
    "part",
    [
        b"",  # created empty, filled later
        WHOLE[: WHOLE.index(b"\n6,") + 40],  # cut mid-line inside the charge
        b"\n".join(WHOLE.split(b"\n")[:9]) + b"\n",  # whole lines, inside the first charge
        b"\n".join(WHOLE.split(b"\n")[:13]) + b"\n",  # inside the first discharge
    ],
    ids=["empty", "mid-line", "inside-charge", "inside-discharge"],
)
def test_a_new_file_that_looks_cut_off_is_tried_again_before_it_is_judged(settings, engine, part):
    add_batch(engine, 1)
    (settings.inbox / "masses.csv").write_text(MASSES)
    ingestor = Ingestor(settings.model_copy(update={"cut_short_grace_seconds": 60}), engine)
    path = settings.inbox / "B001-S01.csv"
    path.write_bytes(part)
    report = ingestor.ingest(path)
    assert report.status == "unfinished"
    assert path.exists() and rows(engine, IngestedFile) == [] and rows(engine, Result) == []
    # the writer finishes: the whole test is read
    path.write_bytes(WHOLE)
    assert ingestor.ingest(path).status == "archived"
    [result] = rows(engine, Result)
    assert result.outcome == "ok" and result.discharge_mah_g == pytest.approx(175.0, abs=0.1)


@pytest.mark.parametrize(
    ("part", "judged_as"),
    [
        (b"", "empty file"),
        (b"\n".join(WHOLE.split(b"\n")[:9]) + b"\n", "no discharge after the first charge"),
    ],
    ids=["empty", "inside-charge"],
)
def test_a_cut_off_file_older_than_the_grace_is_judged_as_it_stands(
    settings, engine, part, judged_as
):
    add_batch(engine, 1)
    (settings.inbox / "masses.csv").write_text(MASSES)
    ingestor = Ingestor(settings.model_copy(update={"cut_short_grace_seconds": 60}), engine)
    path = settings.inbox / "B001-S01.csv"
    path.write_bytes(part)
    age(path, 61)
    report = ingestor.ingest(path)
    assert report.status in ("archived", "quarantined")
    [row] = rows(engine, IngestedFile)
    reason = row.error if row.status == "quarantined" else rows(engine, Result)[0].reason
    assert judged_as in reason


def test_content_changed_in_place_while_read_is_caught_by_its_hash(settings, engine, monkeypatch):
    """Same size, mtime put back: only the hash tells the bytes read are not the file's."""
    add_batch(engine, 1)
    path = drop(settings, DATA / "B001-results.csv")
    real = judge_module.read_export

    def read_then_overwrite(target):
        export = real(target)
        stat = target.stat()
        data = bytearray(target.read_bytes())
        data[-2:-1] = b"X" if data[-2:-1] != b"X" else b"Y"
        target.write_bytes(bytes(data))
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return export

    monkeypatch.setattr(judge_module, "read_export", read_then_overwrite)
    report = Ingestor(settings, engine).ingest(path)
    assert report.status == "changed"
    assert path.exists() and rows(engine, Result) == []
