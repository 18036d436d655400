"""A quarantined file stops asking for a person once what it was for has happened."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from agent.inbox.ingest import Ingestor
from agent.reports.status import build_status, quarantine
from tests.conftest import add_batch

DATA = Path(__file__).parent / "data" / "ingest"
SHEET = (DATA / "B001-results.csv").read_text()


def put(settings, name: str, text: str) -> Path:
    path = settings.inbox / name
    path.write_text(text)
    return path


def held(engine):
    with Session(engine) as session:
        return quarantine(session, limit=50)


def test_a_corrected_file_dropped_again_resolves_its_quarantine(settings, engine):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    broken = SHEET.replace("status", "statuz")
    assert ingestor.ingest(put(settings, "results.csv", broken)).status == "quarantined"
    assert [q.name for q in held(engine).open] == ["results.csv"]
    archived = ingestor.ingest(put(settings, "results.csv", SHEET))
    assert archived.status == "archived"
    now = held(engine)
    assert now.open == [] and now.open_total == 0
    (resolved,) = now.resolved
    assert resolved.name == "results.csv"
    assert resolved.resolved_by == f"dropped again and archived as file #{archived.file_id}"


def test_a_later_result_for_the_sample_named_in_the_file_resolves_it(settings, engine):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    put(settings, "B001-S02 garbled.csv", "nothing a reader knows\n")
    put(settings, "B001-S05 garbled.csv", "nothing a reader knows\n")
    for name in ("B001-S02 garbled.csv", "B001-S05 garbled.csv"):
        assert ingestor.ingest(name).status == "quarantined"
    assert ingestor.ingest(put(settings, "sheet.csv", SHEET)).status == "archived"  # S01, S02
    now = held(engine)
    assert [q.name for q in now.open] == ["B001-S05 garbled.csv"]  # S05 still has no result
    (resolved,) = now.resolved
    assert resolved.name == "B001-S02 garbled.csv"
    assert resolved.resolved_by.startswith("B001-S02 recorded since: failed (synthesis)")
    assert resolved.resolved_batch == 1


def test_a_duplicate_is_resolved_from_the_start_and_status_counts_only_open_ones(settings, engine):
    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    first = ingestor.ingest(put(settings, "a.csv", SHEET))
    assert ingestor.ingest(put(settings, "copy of a.csv", SHEET)).status == "quarantined"
    assert ingestor.ingest(put(settings, "junk.csv", "x\n")).status == "quarantined"
    status = build_status(engine)
    assert status.files.quarantined == 2
    assert [q.name for q in status.quarantine.open] == ["junk.csv"]
    (duplicate,) = status.quarantine.resolved
    assert duplicate.resolved_by == f"its content is archived as file #{first.file_id} (a.csv)"


def test_the_page_shows_only_what_needs_a_person(settings, engine):
    from agent.web.app import create_app

    add_batch(engine, 1)
    ingestor = Ingestor(settings, engine)
    ingestor.ingest(put(settings, "results.csv", SHEET.replace("status", "statuz")))
    ingestor.ingest(put(settings, "results.csv", SHEET))
    page = create_app(settings).test_client().get("/").get_data(as_text=True)
    assert "Quarantine: needs a person (0)" in page
    assert "Nothing in quarantine needs a person." in page
    assert "Resolved since (1)" in page and "dropped again and archived as file #" in page
