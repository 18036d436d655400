"""The approval gate's button on the status page: token-protected, records who."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlmodel import Session, select

from agent.campaign import campaign_space
from agent.db import Batch
from agent.planning import propose_next_batch
from agent.training import retrain
from agent.web.app import create_app


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
    assert client.post("/batches/1/approve", data=right).status_code == 409  # once only
    read_only = create_app(small).test_client().get("/").get_data(as_text=True)
    assert "/approve" not in read_only
