"""Who may read and write the page: the read token, and the lockout after wrong guesses."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent.config import Settings
from agent.store.db import init_db, make_engine
from agent.web.app import create_app
from agent.web.guard import GuessLimiter

READER = ("anyone", "read-secret")  # HTTP Basic: any user name, the token as password


def _protected(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"web_read_token": SecretStr("read-secret"), "web_token": SecretStr("lab-secret")}
    )


def test_the_read_token_guards_every_route_but_the_health_check(settings: Settings, engine):
    open_page = create_app(settings).test_client()
    assert open_page.get("/").status_code == 200  # unset: open as before
    client = create_app(_protected(settings)).test_client()
    for url in ("/", "/api/batches", "/api/files", "/api/queues", "/static/style.css"):
        refused = client.get(url)
        assert refused.status_code == 401, url
        assert refused.headers["WWW-Authenticate"].startswith('Basic realm="labloop"')
        assert b"Traceback" not in refused.data and b"read-secret" not in refused.data
        assert client.get(url, auth=READER).status_code == 200, url
    assert client.get("/", auth=("anyone", "wrong")).status_code == 401
    assert client.get("/", auth=("lab", "read-secret")).status_code == 200  # any user name
    # what curl -u sends, byte for byte
    header = "Basic " + base64.b64encode(b"x:read-secret").decode()
    assert client.get("/api/batches", headers={"Authorization": header}).status_code == 200
    assert client.get("/healthz").status_code == 200  # compose's health check has no token
    # a write needs both: the read token to reach the route, the write token in the form
    assert (
        client.post("/batches/1/approve", data={"by": "x", "token": "lab-secret"}).status_code
        == 401
    )


def test_wrong_guesses_lock_the_address_out_until_the_window_passes(settings: Settings, engine):
    now = [1000.0]
    guesses = GuessLimiter(limit=5, window_seconds=60.0, clock=lambda: now[0])
    client = create_app(_protected(settings), guesses=guesses).test_client()
    write = {"by": "mallory", "token": "guess"}
    answers = [client.get("/", auth=("x", f"guess-{n}")).status_code for n in range(3)]
    answers += [client.post("/batches/9/approve", data=write, auth=READER).status_code
                for _ in range(2)]  # fmt: skip
    assert answers == [401, 401, 401, 403, 403]  # five wrong tokens, of both kinds

    locked = client.get("/", auth=READER)  # the sixth try: the right token, still refused
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "60"
    right_write = {"by": "J. Kim", "token": "lab-secret"}
    now[0] += 45
    refused = client.post("/batches/9/approve", data=right_write, auth=READER)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "15"
    other = client.get("/", auth=READER, environ_base={"REMOTE_ADDR": "192.0.2.8"})
    assert other.status_code == 200  # another address is not locked out
    assert client.get("/healthz").status_code == 200

    now[0] += 15.5  # the window has passed
    assert client.get("/", auth=READER).status_code == 200
    accepted = client.post("/batches/9/approve", data=right_write, auth=READER)
    assert (accepted.status_code, accepted.data) == (409, b"batch 9 is not awaiting approval\n")


def test_wrong_guesses_spread_wider_than_the_window_do_not_lock_out():
    now = [0.0]
    guesses = GuessLimiter(limit=5, window_seconds=60.0, clock=lambda: now[0])
    for _ in range(4):
        guesses.failed("192.0.2.1")
    now[0] += 61
    for _ in range(4):
        guesses.failed("192.0.2.1")
    assert guesses.retry_after("192.0.2.1") is None
    guesses.failed("192.0.2.1")
    assert guesses.retry_after("192.0.2.1") == 60


def _warning_of_labloop_web(home: Path, env: dict[str, str]) -> str:
    """What `labloop web --host 0.0.0.0` says on stderr up to its warning (then stopped)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LABLOOP_HOME": str(home), "COLUMNS": "300", **env}
    command = [sys.executable, "-m", "agent.cli", "web", "--host", "0.0.0.0", "--port", str(port)]
    web = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, said = time.monotonic() + 60, ""
        while "reachable from other machines" not in said and time.monotonic() < deadline:
            said += web.stderr.readline()
    finally:
        web.terminate()
        web.wait(timeout=30)
    return " ".join(said.split())  # the terminal may wrap the line


@pytest.mark.parametrize("protected", [False, True], ids=["open", "read-protected"])
def test_labloop_web_beyond_this_machine_says_whether_reading_is_protected(
    tmp_path: Path, protected: bool
) -> None:
    env = {"LABLOOP_WEB_READ_TOKEN": "read-secret"} if protected else {}
    said = _warning_of_labloop_web(tmp_path, env)
    assert "0.0.0.0 is reachable from other machines" in said
    if protected:
        assert "read protection is on" in said and "in clear" in said
        assert "can read the page" not in said and "read-secret" not in said
    else:
        assert "read protection is off: anyone there can read the page" in said
        assert "set web_read_token" in said


def test_an_empty_token_from_the_environment_leaves_the_page_unprotected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compose passes LABLOOP_WEB_READ_TOKEN= when .env leaves it empty
    monkeypatch.setenv("LABLOOP_WEB_READ_TOKEN", "")
    monkeypatch.setenv("LABLOOP_WEB_TOKEN", "")
    settings = Settings(home=tmp_path)
    assert settings.web_read_token is None and settings.web_token is None
    settings.ensure_folders()
    init_db(make_engine(settings.database_url))
    client = create_app(settings).test_client()
    assert client.get("/api/files").status_code == 200  # not "the empty password opens it"
    answer = client.post("/batches/1/approve", data={"by": "x", "token": ""})
    assert answer.status_code == 403 and b"read-only" in answer.data
