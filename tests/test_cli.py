"""The `labloop` command line: backfill, batches, status (in-process, no broker)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from agent.store.db import Batch, init_db, make_engine
from tests.conftest import add_batch

DATA = Path(__file__).parent / "data" / "ingest"


def labloop(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABLOOP_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_backfill_records_a_folder_and_leaves_the_originals(tmp_path):
    home = tmp_path / "home"
    (home / "var").mkdir(parents=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    add_batch(engine, 1)
    engine.dispose()
    old = tmp_path / "old-results"
    shutil.copytree(DATA, old)
    # written just now, yet named by a person: judged at once, not left for a later try
    (old / "empty.csv").write_bytes(b"")
    before = sorted(p.name for p in old.iterdir())
    done = labloop(home, "ingest", str(old))
    assert done.returncode == 0, done.stderr
    # B001-results and the re-test are recorded; the manual trial too; three are refused
    assert "3 archived, 3 quarantined" in done.stdout
    assert "unknown sample id B003-S99" in done.stdout
    assert "quarantined empty.csv: unsupported format: empty file" in done.stdout
    # each refusal is said once, on stdout, not again as a log warning
    assert "quarantined" not in done.stderr, done.stderr
    assert sorted(p.name for p in old.iterdir()) == before
    listing = labloop(home, "batch", "list")
    assert "B001" in listing.stdout and "running" in listing.stdout


def test_closing_an_unknown_batch_is_a_clear_error(tmp_path):
    done = labloop(tmp_path, "batch", "close", "7", "--reason", "cells lost")
    assert done.returncode != 0
    assert "batch 7 is not open" in done.stderr + done.stdout


def test_propose_pins_from_the_command_line_and_campaign_from_the_environment(
    tmp_path, monkeypatch, small_budget
):
    from tests.synthetic import write_history

    home = tmp_path / "home"
    history = write_history(tmp_path / "history.csv", rows=80, seed=1)
    monkeypatch.setenv("LABLOOP_CAMPAIGN", '{"atmosphere": "air"}')
    assert labloop(home, "import-history", str(history)).returncode == 0
    done = labloop(home, "propose", "--set", "ni_fraction=0.94", "--set",
                   "calcination_temp_c=700:720")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # piped: what it is doing on stderr, one line per step; the results on stdout
    assert done.stderr.splitlines() == [
        "training the model (hyperparameter search, comparison, uncertainty) ...",
        "proposing the next batch from model v1 (the swarm) ...",
    ]
    assert done.stdout.startswith("model v1:") and "batch 1: " in done.stdout
    bad = labloop(home, "propose", "--set", "ni_fraction=0.5")
    assert bad.returncode != 0 and "ni_fraction" in bad.stderr + bad.stdout
    from agent.loop.recipe_files import read_recipe_file
    from agent.space.design import DesignSpace

    samples = read_recipe_file(home / "recipes" / "batch-001.csv", DesignSpace.load())
    assert {s.recipe["atmosphere"] for s in samples} == {"air"}
    assert {s.recipe["ni_fraction"] for s in samples} == {0.94}
    assert all(700 <= s.recipe["calcination_temp_c"] <= 720 for s in samples)


def test_ingest_completes_the_batch_and_queues_its_retrain(tmp_path):
    """`labloop ingest` takes the workers' path: the last result completes the batch and its
    retrain waits on the broker (the embedded one here) for `labloop run`."""
    home = tmp_path / "home"
    (home / "var").mkdir(parents=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    add_batch(engine, 1, size=2)  # B001-results.csv holds S01 and S02
    done = labloop(home, "ingest", str(DATA / "B001-results.csv"))
    assert done.returncode == 0, done.stderr
    assert "batch 1 complete: retrain queued" in done.stdout
    with Session(engine) as session:
        assert session.exec(select(Batch.state).where(Batch.number == 1)).one() == "complete"
    engine.dispose()
    queued = [
        json.loads(p.read_text())["headers"]
        for p in (home / "var" / "broker" / "queue").glob("*.msg")
    ]
    assert [(h["task"], h["argsrepr"]) for h in queued] == [("labloop.retrain", "[1]")]


def test_expected_situations_are_one_line_on_stderr_with_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proposed = labloop(empty, "propose")
    assert proposed.returncode == 2
    assert proposed.stdout == ""
    # the step it was at, then the one line that says what to do
    assert (
        proposed.stderr.strip().splitlines()[-1].startswith("labloop: only 0 measured experiments")
    )
    assert "Traceback" not in proposed.stderr and len(proposed.stderr.strip().splitlines()) == 2
    closed = labloop(empty, "batch", "close", "7", "--reason", "cells lost")
    assert closed.returncode == 2
    assert closed.stderr.strip() == ("labloop: batch 7 is not open (unknown, or complete already)")
    # a mistyped home is said, and not made into a new, empty lab
    typo = tmp_path / "hom"
    for command in (["status"], ["batch", "list"]):
        looked = labloop(typo, *command)
        assert looked.returncode == 2, looked.stdout
        assert looked.stderr.strip().startswith(f"labloop: no labloop home at {typo}")
    assert not typo.exists()

    # history files that cannot be imported: where they are missing, unreadable or misshapen
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("ni_fraction,r\u00e9sum\u00e9\n".encode("latin-1"))
    (tmp_path / "no-status.csv").write_text("ni_fraction,initial_discharge_mah_g\n0.92,210\n")
    (tmp_path / "blank.csv").write_text("")
    for name, says in [("nowhere.csv", "no such file"), ("latin1.csv", "not UTF-8 text"),
                       ("no-status.csv", "missing column(s): status"),
                       ("blank.csv", "empty, no header row")]:  # fmt: skip
        refused = labloop(empty, "import-history", str(tmp_path / name))
        assert refused.returncode == 2, (name, refused.stderr)
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("labloop: ") and says in last, (name, refused.stderr)
        assert "Traceback" not in refused.stderr


def test_a_taken_port_is_one_line_not_a_traceback(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = labloop(tmp_path, "web", "--port", str(port))
    assert served.returncode == 2
    assert served.stderr.strip().startswith(f"labloop: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in served.stderr


def test_status_prints_no_third_party_log_lines(tmp_path):
    done = labloop(tmp_path, "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("files: 0 archived")
    assert "alembic" not in done.stdout + done.stderr


def test_any_file_name_is_listed_by_status_escaped(tmp_path):
    """Names with markup, control characters or bytes that are not UTF-8 never break the
    listing (nor forge lines in it)."""
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    names = [b"[bold]loud.csv", b"line\nbreak.csv", b"r\xe9sum\xe9 <b>.csv"]
    for name in names:
        with open(os.fsencode(home / "inbox") + b"/" + name, "wb") as handle:
            handle.write(b"nothing a reader knows\n")
    done = labloop(home, "ingest", str(home / "inbox"))
    assert done.returncode == 0, done.stderr
    assert "3 quarantined" in done.stdout
    listed = labloop(home, "status")
    assert listed.returncode == 0, listed.stderr
    for shown in ("[bold]loud.csv", "line\\x0abreak.csv", "r\\xe9sum\\xe9 <b>.csv"):
        assert shown in listed.stdout


COMMANDS = [[], ["run"], ["worker"], ["web"], ["ingest"], ["status"], ["import-history"],
            ["retrain"], ["propose"], ["batch", "list"], ["batch", "close"], ["batch", "edit"],
            ["demo"], ["lab", "history"], ["health"]]  # fmt: skip


def test_help_reads_like_a_unix_tool(tmp_path):
    """Normal metavars (N, PATH..., NAME=VALUE), no typed placeholders, flags take no value."""
    for command in COMMANDS:
        shown = labloop(tmp_path, *command, "--help")
        assert shown.returncode == 0, (command, shown.stderr)
        for odd in ("<bool>", "<int>", "<str>", "<list", "{", "}"):
            assert odd not in shown.stdout, (command, odd)
    assert "ingest [OPTIONS] PATH..." in labloop(tmp_path, "ingest", "--help").stdout
    assert "NAME=VALUE" in labloop(tmp_path, "propose", "--help").stdout


def test_every_setting_and_option_is_in_the_readme():
    import typer.main

    from agent.cli import app
    from agent.config import Settings

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert [f for f in Settings.model_fields if f"`{f}`" not in readme] == []
    builtin = {"--help", "--install-completion", "--show-completion"}

    def undocumented(command, path: str) -> list[str]:  # noqa: ANN001 - a click command
        missing = [
            f"{path} {opt}"
            for param in command.params
            if param.param_type_name == "option"
            for opt in param.opts
            if opt.startswith("--") and opt not in builtin and opt not in readme
        ]
        for name, sub in getattr(command, "commands", {}).items():
            missing += undocumented(sub, f"{path} {name}")
        return missing

    assert undocumented(typer.main.get_command(app), "labloop") == []


def test_propose_under_approval_prints_the_draft_it_wrote(tmp_path, monkeypatch, small_budget):
    from tests.synthetic import write_history

    home = tmp_path / "home"
    history = write_history(tmp_path / "history.csv", rows=60, seed=2)
    monkeypatch.setenv("LABLOOP_APPROVAL", "required")
    assert labloop(home, "import-history", str(history)).returncode == 0
    done = labloop(home, "propose")
    assert done.returncode == 0, done.stderr
    draft = home / "recipes" / "drafts" / "batch-001.csv"
    assert f"batch 1: draft {draft} awaits approval" in done.stdout.replace("\n", "")
    assert draft.exists() and not (home / "recipes" / "batch-001.csv").exists()


def test_the_page_warns_when_it_listens_beyond_this_machine():
    from agent.web.cli import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7")


def test_labloop_web_on_all_interfaces_says_who_can_read_it(tmp_path):
    from tests.web.test_guard import _warning_of_labloop_web

    said = _warning_of_labloop_web(tmp_path, {})
    assert "0.0.0.0 is reachable from other machines" in said


def test_half_open_connections_do_not_starve_the_page(tmp_path):
    """Connections that send half a request hold no worker thread: the page still answers."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LABLOOP_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "agent.cli", "web", "--port", str(port)]
    web = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    stalled = []
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(50):  # more than the server's threads, each stuck mid-header
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            stalled.append(sock)
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
        # a thread per connection (the development server) would hold 50 threads here
        status = Path(f"/proc/{web.pid}/status").read_text()
        threads = int(next(line for line in status.splitlines() if line.startswith("Threads:"))
                      .split()[1])  # fmt: skip
        assert threads < 30, threads
    finally:
        for sock in stalled:
            sock.close()
        web.terminate()
        web.wait(timeout=30)
