"""The approval gate on the status page: the draft, its forms (token-protected), who decided."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from pydantic import SecretStr
from sqlmodel import Session, select

from agent.config import Settings
from agent.loop.batches import campaign_space
from agent.loop.propose import draft_path, propose_next_batch
from agent.loop.retrain import retrain
from agent.store.db import Batch, BatchState, Experiment
from agent.web.app import create_app
from tests.conftest import add_ok_results
from tests.web.test_pages import batch_row
from workers.app import make_app


def test_approve_button_needs_the_token_and_releases_the_file(engine, small, with_history):
    settings = small.model_copy(
        update={"approval": "required", "web_token": SecretStr("lab-secret")}
    )
    space = campaign_space(settings)
    batch = propose_next_batch(engine, settings, space, retrain(engine, settings, space))
    client = create_app(settings).test_client()
    page = client.get("/").get_data(as_text=True)
    assert "awaiting approval" in page and 'action="/batches/1/approve"' in page
    assert client.post("/batches/1/approve", data={"by": "mallory"}).status_code == 403
    wrong = {"by": "mallory", "token": "guess"}
    assert client.post("/batches/1/approve", data=wrong).status_code == 403
    assert not Path(batch.recipe_file).exists()
    right = {"by": "J. Kim", "token": "lab-secret"}
    answer = client.post("/batches/1/approve", data=right)
    assert answer.status_code == 302
    assert Path(batch.recipe_file).exists()
    with Session(engine) as session:
        assert session.exec(select(Batch.approved_by)).one() == "J. Kim"
    assert "approved by J. Kim just now" in batch_row(client.get("/").get_data(as_text=True), 1)
    assert client.post("/batches/1/approve", data=right).status_code == 409  # once only
    read_only = create_app(small).test_client().get("/").get_data(as_text=True)
    assert "/approve" not in read_only


def _gated(engine, small) -> tuple[Settings, Batch]:
    """A batch proposed under the approval gate, the page writable with 'lab-secret'."""
    settings = small.model_copy(
        update={"approval": "required", "web_token": SecretStr("lab-secret")}
    )
    space = campaign_space(settings)
    return settings, propose_next_batch(engine, settings, space, retrain(engine, settings, space))


def _draft_row(page: str) -> str:
    draft = re.search(r'<tr class="draft" id="draft-1">(.*?)</table>', page, re.S)
    assert draft, "no draft shown for batch 1"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", draft.group(1)))


def test_the_page_shows_the_draft_and_a_value_can_be_changed(engine, small, with_history):
    settings, batch = _gated(engine, small)
    client = create_app(settings).test_client()
    draft_file = draft_path(batch)
    page = client.get("/").get_data(as_text=True)
    assert "B001-S" not in _missing_cell(page, 1)  # a draft is at no bench yet
    shown = _draft_row(page)
    # every cell of the draft file, in its order: ids, recipe values, 95 % interval, P(success)
    for row in csv.reader(io.StringIO(draft_file.read_text(encoding="utf-8-sig"))):
        assert " ".join(cell for cell in row if cell) in shown, row

    with Session(engine) as session:
        before = session.exec(select(Experiment).where(Experiment.sample_id == "B001-S03")).one()
    hours = 9 if before.parameters["calcination_time_h"] == 8 else 8
    change = {"by": "J. Kim", "token": "lab-secret", "sample": "B001-S03",
              "parameter": "calcination_time_h", "value": str(hours)}  # fmt: skip
    assert client.post("/batches/1/edit", data={**change, "token": "guess"}).status_code == 403
    outside = client.post("/batches/1/edit", data={**change, "parameter": "calcination_temp_c",
                                                   "value": "900"})  # fmt: skip
    assert outside.status_code == 400
    assert outside.get_data(as_text=True) == "calcination_temp_c = 900 is outside [650, 800]\n"
    nameless = client.post("/batches/1/edit", data={**change, "by": " "})
    assert (nameless.status_code, nameless.data) == (400, b"give your name (by)\n")
    stranger = client.post("/batches/1/edit", data={**change, "sample": "B009-S01"})
    assert (stranger.status_code, stranger.data) == (409, b"B009-S01 is not a sample of batch 1\n")
    with Session(engine) as session:  # refused changes change nothing
        still = session.exec(select(Experiment).where(Experiment.sample_id == "B001-S03")).one()
    assert still.parameters == before.parameters

    assert client.post("/batches/1/edit", data=change).status_code == 302
    with Session(engine) as session:
        after = session.exec(select(Experiment).where(Experiment.sample_id == "B001-S03")).one()
    assert after.parameters == {**before.parameters, "calcination_time_h": hours}
    assert f",{hours},".encode() in draft_file.read_bytes().split(b"\n")[3]  # header, S01, S02
    assert not Path(batch.recipe_file).exists()


def test_a_draft_rejected_on_the_page_can_no_longer_be_approved(engine, small, with_history):
    settings, batch = _gated(engine, small)
    client = create_app(settings).test_client()
    who = {"by": "J. Kim", "token": "lab-secret"}
    assert client.post("/batches/1/reject", data=who).data == b"give a reason (reason)\n"
    answer = client.post("/batches/1/reject", data={**who, "reason": "furnace down"})
    assert answer.status_code == 302
    with Session(engine) as session:
        assert session.exec(select(Batch.state)).one() == BatchState.REJECTED
    page = client.get("/").get_data(as_text=True)
    assert "rejected: furnace down (by J. Kim)" in page and 'id="draft-1"' not in page
    assert "B001-S" not in _missing_cell(page, 1)  # never made: nothing is missing
    late = client.post("/batches/1/approve", data=who)
    assert (late.status_code, late.data) == (409, b"batch 1 is not awaiting approval\n")
    assert not Path(batch.recipe_file).exists() and not draft_path(batch).exists()


def _missing_cell(page: str, number: int) -> str:
    """The text of a batch row's "Still missing" cell."""
    row = re.search(rf'<tr id="batch-{number}">.*?<td class="missing">(.*?)</td>', page, re.S)
    assert row, page
    return row.group(1)


def test_approving_a_batch_whose_results_are_all_in_queues_its_retrain(engine, small, with_history):
    """Results that came before the approval count once it is given: the page's approval
    queues the retrain on the broker, routed to the learning queue."""
    settings, batch = _gated(engine, small)
    add_ok_results(engine, batch.id)
    assert settings.embedded_broker
    client = create_app(settings, make_app(settings)).test_client()
    answer = client.post("/batches/1/approve", data={"by": "J. Kim", "token": "lab-secret"})
    assert answer.status_code == 302
    queued = sorted((settings.state / "broker" / "queue").glob("*.msg"))
    assert [path.name.split(".")[-2] for path in queued] == ["learning"]
    headers = json.loads(queued[0].read_bytes())["headers"]
    assert (headers["task"], headers["argsrepr"]) == ("labloop.retrain", "[1]")
