"""A person watching the page during a live virtual-lab demo sees batch 1 go from running
to trained: real services, a real headless Chromium, nothing faked in between."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.by import By

from tests.stack import free_port


def processes_of(home: Path) -> list[int]:
    """Pids of live processes started for this labloop home (by their environment)."""
    marker = f"LABLOOP_HOME={home}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def batch_one_state(driver, url: str) -> str | None:  # noqa: ANN001 - a selenium driver
    try:
        driver.get(url)
        return driver.find_element(By.CSS_SELECTOR, "#batch-1 .state").text
    except (NoSuchElementException, WebDriverException):
        return None


def test_batch_moves_from_running_to_trained_on_screen(browser, tmp_path: Path):
    home = tmp_path / "demo"
    # 1.5 s between files: batch 1 stays "running" for about 15 s, long enough for a reload
    # to see it on a loaded machine
    env = {**os.environ, "LABLOOP_HOME": str(home)}
    env.pop("LABLOOP_BROKER_URL", None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "demo", "--batches", "2", "--fast", "--pace", "1.5"],
        env=env, stdout=(tmp_path / "demo.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    web = None
    try:
        deadline = time.monotonic() + 60
        while not (home / "var" / "labloop.db").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        port = free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        web = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "web", "--port", str(port)], env=env, **quiet
        )
        url = f"http://127.0.0.1:{port}/"
        seen: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "trained" not in seen:
            state = batch_one_state(browser, url)
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            time.sleep(0.3)
        browser.save_screenshot(str(tmp_path / "live.png"))
        assert "running" in seen and "trained" in seen, (seen, (tmp_path / "demo.log").read_text())
        assert seen.index("running") < seen.index("trained")
    finally:
        for process in (web, demo):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
    # the demo stops its workers on SIGTERM: none may outlive it
    time.sleep(1.0)
    assert processes_of(home) == []
