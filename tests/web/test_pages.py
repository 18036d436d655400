"""The page and the JSON API against a seeded labloop home (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select, update

from agent.config import Settings
from agent.loop.recipe_files import recipe_path
from agent.store.db import Batch, Experiment, ModelRun
from agent.web.app import ago, create_app
from agent.web.facts import waiting_files
from tests.web import COMPARISON, seed_campaign


@pytest.fixture
def client(settings: Settings, engine) -> FlaskClient:
    seed_campaign(settings, engine)
    return create_app(settings).test_client()


def batch_row(page: str, number: int) -> str:
    """The visible text of one batch's table row."""
    row = re.search(rf'<tr id="batch-{number}">(.*?)</tr>', page, re.S)
    assert row, f"no row for batch {number}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(1)))


def test_page_shows_batches_failures_quarantine_and_model(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)

    first = batch_row(page, 1)
    assert "running" in first and "2/10" in first
    assert "B001-S03" in first and "B001-S10" in first and "B001-S01" not in first
    assert "synthesis: sintered during calcination, no powder to test" in first
    assert 'href="/recipes/batch-001.csv"' in page

    second = batch_row(page, 2)
    assert "running" in second and "2/10" in second and "sintered, no powder" in second
    third = batch_row(page, 3)
    assert "trained" in third and "10/10" in third and "none" in third
    assert "cell: cell shorted during formation" in third

    assert "unknown sample id B003-S99" in page
    assert "unsupported format: Novonix HPC export" in page
    # waiting files as the watcher sees them: no temporary, hidden or masses file
    assert "B001-S03.csv" in page
    assert ".part" not in page and ".hidden.csv" not in page and "masses.csv</td>" not in page

    assert "model v1" in page and "3.61 mAh/g" in page
    for name, metrics in COMPARISON.items():
        assert f">{name}</th>" in page
        assert f"{metrics['RMSE test']:.3f}" in page
    assert '<img src="/figures/parity.png?v=1"' in page


def test_json_api_gives_the_numbers_the_page_shows(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    batches = client.get("/api/batches").get_json()["batches"]
    assert [b["number"] for b in batches] == [1, 2, 3]
    for batch in batches:
        row = batch_row(page, batch["number"])
        assert f"{batch['with_result']}/{batch['samples']}" in row
        assert batch["state"] in row
        assert all(sample in row for sample in batch["missing"])
    first = batches[0]
    assert (first["ok"], first["failed"], first["with_result"]) == (2, 1, 2)
    assert first["missing"] == [f"B001-S{slot:02d}" for slot in range(3, 11)]
    assert first["failures"][0]["reason"] == "sintered during calcination, no powder to test"
    assert first["recipe_file"] == "batch-001.csv" and batches[1]["recipe_file"] is None
    # best so far: B001's re-tested sample averages (221.4 + 223.0) / 2; B002 and B003 are lower
    assert [b["best_so_far_mah_g"] for b in batches] == pytest.approx([222.2, 222.2, 222.2])
    assert batches[2]["measured_max_mah_g"] == pytest.approx(220.5)

    files = client.get("/api/files").get_json()
    assert files["counts"] == {"archived": 4, "quarantined": 2, "processing": 0}
    assert [f["name"] for f in files["waiting"]] == ["B001-S03.csv"]
    reasons = {q["name"]: q["reason"] for q in files["quarantine"]["open"]}
    assert reasons["unknown-sample.csv"].startswith("unknown sample id B003-S99")
    assert files["quarantine"]["open_total"] == 2 and files["quarantine"]["resolved"] == []
    for name in reasons:
        assert name in page

    models = client.get("/api/models").get_json()
    assert models["latest"]["version"] == 1 and models["latest"]["n_train"] == 9
    assert models["comparison"] == COMPARISON
    assert datetime.fromisoformat(models["latest"]["created_at"]).tzinfo is not None

    queues = client.get("/api/queues").get_json()
    assert {q["name"]: q["tasks"] for q in queues["queues"]["waiting"]} == {
        "ingest": 0,
        "learning": 0,
    }
    subjects = [e["subject"] for e in queues["last_errors"]]
    assert "unknown-sample.csv" in subjects and "B003-S07" in subjects


def test_recipe_download_serves_only_recipe_files(client: FlaskClient, settings: Settings) -> None:
    response = client.get("/recipes/batch-001.csv")
    assert response.status_code == 200
    assert response.data == recipe_path(settings.recipes, 1).read_bytes()
    assert response.mimetype == "text/csv"
    (settings.recipes / "notes.txt").write_text("not a recipe")
    for url in (
        "/recipes/batch-002.csv",  # no such file
        "/recipes/notes.txt",
        "/recipes/batch-1.csv",
        "/recipes/../var/labloop.db",
        "/recipes/..%2Fvar%2Flabloop.db",
        "/recipes/batch-001.csv%00.txt",
    ):
        assert client.get(url).status_code == 404, url
    # a recipe file edited since labloop wrote it is not handed to the lab
    path = recipe_path(settings.recipes, 1)
    path.write_bytes(path.read_bytes() + b"B001-S11,a row nobody proposed\n")
    refused = client.get("/recipes/batch-001.csv")
    assert refused.status_code == 409 and b"changed since labloop wrote it" in refused.data


def test_parity_figure_is_a_png_of_the_latest_model(client: FlaskClient) -> None:
    response = client.get("/figures/parity.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_health_check_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    "url",
    ["sqlite:////nonexistent/folder/labloop.db", "postgresql+psycopg2://labloop@127.0.0.1:9/none"],
)
def test_an_unreachable_database_is_a_503(tmp_path: Path, url: str) -> None:
    client = create_app(Settings(home=tmp_path, database_url=url)).test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["database"] == "unreachable"
    page = client.get("/")
    assert page.status_code == 503 and "database is not answering" in page.get_data(as_text=True)
    assert client.get("/api/batches").status_code == 503


def test_without_a_token_nothing_can_be_written(client: FlaskClient) -> None:
    rules = list(client.application.url_map.iter_rules())
    writes = {rule.rule for rule in rules if "POST" in rule.methods}
    assert writes == {f"/batches/<int:number>/{action}" for action in ("approve", "edit", "reject")}
    for action in ("approve", "edit", "reject"):
        refused = client.post(f"/batches/2/{action}", data={"token": "", "by": "x"})
        assert refused.status_code == 403 and b"read-only" in refused.data
    for url in ("/", "/api/batches", "/api/files", "/recipes/batch-001.csv", "/healthz"):
        assert client.post(url).status_code == 405
        assert client.delete(url).status_code == 405


def test_an_empty_home_shows_an_empty_page(settings: Settings, engine) -> None:
    client = create_app(settings).test_client()
    page = client.get("/").get_data(as_text=True)
    assert "No batch has been proposed yet" in page and "No model trained yet" in page
    assert client.get("/figures/parity.png").status_code == 404


def test_times_from_a_database_without_zones_are_read_as_utc() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    naive = (now - timedelta(minutes=5)).replace(tzinfo=None)  # as PostgreSQL hands it back
    assert ago(naive, now) == "5 min ago"
    assert ago(now - timedelta(hours=26), now) == "1 d ago"


def test_a_batch_row_shows_its_best_prediction_with_its_interval_and_probes(
    client: FlaskClient, engine
) -> None:
    with Session(engine) as session:
        batch_id = session.exec(select(Batch.id).where(Batch.number == 2)).one()
        session.exec(update(Experiment).where(Experiment.batch_id == batch_id)
                     .values(predicted_mah_g=221.0, predicted_std_mah_g=1.0))  # fmt: skip
        session.exec(update(Experiment).where(Experiment.sample_id == "B002-S04")
                     .values(predicted_mah_g=224.0, predicted_std_mah_g=1.5,
                             probe="atmosphere=air"))  # fmt: skip
        session.exec(update(ModelRun).values(region_cv_rmse=4.25))
        session.commit()
    page = client.get("/").get_data(as_text=True)
    second = batch_row(page, 2)
    assert "224.0 (221.1–226.9)" in second  # 224.0 ± 1.96 x 1.5
    assert "1 probe of untried values" in second
    assert "224.0" not in batch_row(page, 1)
    assert "4.25 mAh/g" in page and "regions it did not see" in page


def test_a_file_name_that_is_not_utf8_is_shown_escaped(settings: Settings, engine) -> None:
    raw = os.fsencode(settings.inbox) + b"/r\xe9sum\xe9 <b>.csv"  # latin-1, as from old SMB
    with open(raw, "wb") as handle:
        handle.write(b"waiting")
    client = create_app(settings).test_client()
    response = client.get("/")
    assert response.status_code == 200
    assert "r\\xe9sum\\xe9 &lt;b&gt;.csv" in response.get_data(as_text=True)
    files = client.get("/api/files")
    assert files.status_code == 200
    assert "r\\\\xe9sum\\\\xe9 <b>.csv" in files.get_data(as_text=True)


def test_the_page_explains_the_recipe_columns(client: FlaskClient) -> None:
    from markupsafe import escape

    from agent.loop.recipe_files import COLUMN_MEANINGS

    page = client.get("/").get_data(as_text=True)
    assert "What the columns of a recipe file mean" in page
    for name, meaning in COLUMN_MEANINGS:
        assert f"<code>{name}</code>" in page and escape(meaning) in page


def test_the_page_shows_the_report_figures_as_svg_and_png(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    for name in ("best", "parity", "parameters"):
        assert f'src="/figures/batches/{name}.svg"' in page
        assert f'href="/figures/batches/{name}.png"' in page
        svg = client.get(f"/figures/batches/{name}.svg")
        assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
        assert b"<svg" in svg.data[:500]
        png = client.get(f"/figures/batches/{name}.png")
        assert png.mimetype == "image/png" and png.data[:4] == b"\x89PNG"
    assert client.get("/figures/batches/secrets.svg").status_code == 404
    assert client.get("/figures/batches/best.pdf").status_code == 404


def test_a_file_copied_with_its_old_time_waits_since_it_arrived(tmp_path):
    """Copies from a cycler PC often keep the export's modification time (cp -p, robocopy):
    "waiting since 3 weeks ago" would be wrong, the file arrived just now."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    old = inbox / "B001-S01.csv"
    old.write_text("sample_id,initial_discharge_mah_g,status,reason\nB001-S01,200,ok,\n")
    three_weeks = time.time() - 21 * 86400
    os.utime(old, (three_weeks, three_weeks))
    (waiting,) = waiting_files(inbox, "masses.csv")
    assert datetime.now(UTC) - waiting.arrived_at < timedelta(minutes=5)
