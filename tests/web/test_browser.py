"""The page in a real headless Chromium, read as a person reads it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from werkzeug.serving import make_server

from agent.config import Settings
from agent.loop.recipe_files import recipe_path
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, Experiment, init_db, make_engine
from agent.web.app import create_app
from tests.web import seed_campaign

REFRESH = 2.0  # seconds between reloads of the gated page


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` on a free port of this machine, in a thread; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join()


def seeded_home(tmp_path: Path, **settings: Any) -> tuple[Settings, Engine]:
    settings = Settings(home=tmp_path / "home", **settings)
    settings.ensure_folders()
    engine = make_engine(settings.database_url)
    init_db(engine)
    seed_campaign(settings, engine)
    return settings, engine


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A seeded home, its page served on a free port; yields the URL and the database."""
    settings, engine = seeded_home(tmp_path)
    with serving(create_app(settings)) as url:
        yield url, engine
    engine.dispose()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[str]:
    """A seeded home whose batch 2 awaits approval; the page reloads every REFRESH s."""
    settings, engine = seeded_home(tmp_path, web_token=SecretStr("lab-secret"))
    recipes = DesignSpace.load().random(10, rng=2)
    with Session(engine) as session:
        session.exec(update(Batch).where(Batch.number == 2).values(
            approval_required=True, state=BatchState.PROPOSED,
            recipe_file=str(recipe_path(settings.recipes, 2))))  # fmt: skip
        batch_id = session.exec(select(Batch.id).where(Batch.number == 2)).one()
        samples = session.exec(select(Experiment).where(Experiment.batch_id == batch_id)).all()
        for experiment, recipe in zip(samples, recipes, strict=True):
            experiment.parameters = recipe
            session.add(experiment)
        session.commit()
    with serving(create_app(settings, refresh_seconds=REFRESH)) as url:
        yield url
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


def _mark(browser: webdriver.Chrome) -> None:
    """Leave a mark on the page as loaded: a reload wipes it."""
    browser.execute_script("window.servedOnce = true")


def _marked(browser: webdriver.Chrome) -> bool:
    return browser.execute_script("return window.servedOnce === true")


def test_the_page_reloads_itself_when_nobody_touches_it(
    browser: webdriver.Chrome, gated: str
) -> None:
    browser.get(gated)
    # without JavaScript a person reloads by hand
    assert browser.find_element(By.LINK_TEXT, "Reload now").get_attribute("href") == gated
    _mark(browser)
    started = time.monotonic()
    WebDriverWait(browser, 10 * REFRESH).until(lambda b: not _marked(b))
    assert time.monotonic() - started >= 0.5 * REFRESH  # its own period, not at once
    assert browser.find_element(By.ID, "draft-2").is_displayed()


def test_the_page_does_not_reload_over_a_form_being_filled_in(
    browser: webdriver.Chrome, gated: str
) -> None:
    browser.get(gated)
    approve = browser.find_element(By.CSS_SELECTOR, "#draft-2 form.approve")
    name = approve.find_element(By.NAME, "by")
    name.send_keys("J. Kim")
    _mark(browser)
    time.sleep(2.5 * REFRESH)  # the name field has the focus
    assert _marked(browser) and name.get_attribute("value") == "J. Kim"

    browser.execute_script("document.activeElement.blur()")
    time.sleep(2.5 * REFRESH)  # no focus, but a changed field
    assert _marked(browser) and name.get_attribute("value") == "J. Kim"

    approve.find_element(By.NAME, "token").send_keys("lab-secret")
    approve.find_element(By.TAG_NAME, "button").click()  # the form goes through
    WebDriverWait(browser, 10).until(lambda b: "approved by J. Kim" in b.page_source)
    assert "approved by J. Kim just now" in browser.find_element(By.ID, "batch-2").text
    assert not browser.find_elements(By.ID, "draft-2")


def test_a_read_protected_page_opens_with_the_token_as_password(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    settings, engine = seeded_home(tmp_path, web_read_token=SecretStr("read-secret"))
    with serving(create_app(settings)) as url:
        browser.get(url)  # no credentials: the browser asks for them, nothing is shown
        assert not browser.find_elements(By.ID, "batch-2")
        browser.get(url.replace("http://", "http://lab:read-secret@"))
        assert browser.find_element(By.ID, "batch-2").text.startswith("B002 running 2/10")
        # the style sheet came with the same credentials: the page is laid out
        title = browser.find_element(By.TAG_NAME, "h1")
        assert title.value_of_css_property("font-size") == "22px"
    engine.dispose()
