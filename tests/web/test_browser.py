"""The page in a real headless Chromium, read as a person reads it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session
from werkzeug.serving import make_server

from agent.config import Settings
from agent.db import Batch, BatchState, init_db, make_engine
from agent.web.app import create_app
from tests.web import seed_campaign


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A seeded home, its page served on a free port; yields the URL and the database."""
    settings = Settings(home=tmp_path / "home")
    settings.ensure_folders()
    engine = make_engine(settings.database_url)
    init_db(engine)
    seed_campaign(settings, engine)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", engine
    server.shutdown()
    thread.join()
    engine.dispose()


def test_a_person_sees_states_and_reasons_and_a_change_after_reload(
    browser: webdriver.Chrome, served: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = served
    browser.get(url)
    row = browser.find_element(By.ID, "batch-2")
    assert row.is_displayed()
    assert row.text.startswith("B002 running 2/10"), row.text
    header = browser.find_element(By.TAG_NAME, "header").text
    assert "Batch 2 is running: 2/10 results in." in header

    reason = browser.find_element(By.XPATH, "//td[contains(., 'unknown sample id B003-S99')]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", reason)
    assert reason.is_displayed() and reason.size["height"] > 10
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "status.png"))

    with Session(engine) as session:  # the retrain of batch 2 has finished
        session.exec(update(Batch).where(Batch.number == 2).values(state=BatchState.TRAINED))
        session.commit()
    browser.refresh()
    assert browser.find_element(By.ID, "batch-2").text.startswith("B002 trained 2/10")
    assert "Batch 2 is" not in browser.find_element(By.TAG_NAME, "header").text
