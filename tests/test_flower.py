"""`labloop flower` serves Celery's own task view on the configured broker (real Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.stack import free_port

pytestmark = pytest.mark.redis


def test_flower_answers_on_the_redis_broker(tmp_path):
    port = free_port()
    env = {**os.environ, "LABLOOP_HOME": str(tmp_path),
           "LABLOOP_BROKER_URL": "redis://127.0.0.1:6379/10"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "flower", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, body = time.monotonic() + 30, ""
        while time.monotonic() < deadline and body != "OK":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck") as answer:
                    body = answer.read().decode()
            except OSError:
                time.sleep(0.3)
        assert body == "OK"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as page:
            assert page.status == 200 and b"Flower" in page.read()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
