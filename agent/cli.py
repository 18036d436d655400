"""The `labloop` command."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from agent import config
from agent.errors import LabloopError
from agent.lab.cli import lab_app
from agent.lab.truth import LABS

if TYPE_CHECKING:  # imported where used: `labloop --help` stays quick
    from agent.ops.task_failures import FailureFacts
    from agent.reports.status import BatchProgress

app = typer.Typer(help="labloop: cycler files in, next NCM recipes out.", no_args_is_help=True)
# results on stdout; logs and errors on stderr, so a pipe gets only the results
# a line is never broken to fit 80 columns when piped (a path or a reason stays one line,
# for grep and logs); tables still fit the width
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
OWN_LOGGERS = ("agent", "workers")


@app.callback()
def _main(
    home: Annotated[
        Path | None,
        typer.Option(help="labloop home folder (default: LABLOOP_HOME or .)", metavar="DIR"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="labloop's own progress messages too")
    ] = False,
) -> None:
    if home is not None:
        # the environment carries it to worker processes as well
        os.environ["LABLOOP_HOME"] = str(home.resolve())
        config.get_settings.cache_clear()
    logging.basicConfig(
        level=logging.WARNING,  # third-party libraries: only what went wrong
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=errors, show_path=False)],
        force=True,
    )
    _log_own(logging.DEBUG if verbose else logging.WARNING)


def _log_own(level: int) -> None:
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def _as_service() -> None:
    """A service's log is its output: labloop's own messages at INFO (DEBUG with -v)."""
    if logging.getLogger(OWN_LOGGERS[0]).level > logging.INFO:
        _log_own(logging.INFO)


def _settings(only_reads: bool = False) -> config.Settings:
    """The settings, the home's folders made; a command that ``only_reads`` refuses a home
    that is not there (a mistyped --home must not become a new, empty lab)."""
    settings = config.get_settings()
    if only_reads and not settings.home.is_dir():
        raise LabloopError(
            f"no labloop home at {settings.home}: check --home or LABLOOP_HOME "
            "(`labloop run`, `import-history` or `demo` make one)"
        )
    settings.ensure_folders()
    return settings


@app.command()
def run(
    concurrency: Annotated[
        int, typer.Option(help="ingest tasks at a time (threads of the ingest worker)", metavar="N")
    ] = 2,
) -> None:
    """Run the loop on this machine: the inbox watcher and the workers. Ctrl-C stops."""
    from workers import supervisor
    from workers.queues import broker_words
    from workers.tasks import submit_ingest

    _as_service()
    settings = _settings()
    broker = broker_words(settings.broker_url, settings.state / "broker")
    console.print(f"labloop: inbox {settings.inbox}, broker {broker}")
    workers = supervisor.Workers(supervisor.machine_workers(concurrency))
    try:
        with supervisor.watching(settings, submit_ingest):
            supervisor.wait_for_signal(every_second=workers.keep_alive)
    finally:
        console.print("labloop: stopping")
        workers.stop()


@app.command()
def worker(
    queue: Annotated[
        list[str],
        typer.Option(help="queue to consume: ingest, learning (repeat for both)", metavar="QUEUE"),
    ] = [  # noqa: B006
        "ingest",
        "learning",
    ],
    concurrency: Annotated[int, typer.Option(help="worker processes", metavar="N")] = 1,
) -> None:
    """Run one Celery worker (for a deployment with one process per service)."""
    from workers import supervisor
    from workers.queues import ALL_QUEUES

    _settings()
    unknown = set(queue) - set(ALL_QUEUES)
    if unknown:
        raise typer.BadParameter(f"unknown queue(s) {sorted(unknown)}; use ingest or learning")
    command = supervisor.worker_command(queue, concurrency, "-".join(queue))
    os.execv(command[0], command)


@app.command()
def web(
    port: Annotated[int, typer.Option(help="port of the status page", metavar="PORT")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on", metavar="HOST")] = "127.0.0.1",
) -> None:
    """The status page: batches, queues, inbox, quarantine, latest model.

    Read-only unless web_token is set: then batches awaiting approval are decided there.

    With web_read_token set, reading the page needs that token (the HTTP Basic password)."""
    from agent.web.cli import serve

    _as_service()
    _settings()
    serve(host, port)


@app.command()
def flower(
    port: Annotated[int, typer.Option(help="port of Flower's web page", metavar="PORT")] = 5555,
    address: Annotated[
        str, typer.Option(help="address to listen on", metavar="HOST")
    ] = "127.0.0.1",
) -> None:
    """Celery's own view of tasks and workers (Flower), on the configured broker."""
    _settings()
    command = [sys.executable, "-m", "celery", "-A", "workers.app:app", "flower",
               f"--port={port}", f"--address={address}"]  # fmt: skip
    os.execv(command[0], command)


@app.command()
def watch() -> None:
    """Run only the inbox watcher, handing files to the configured broker."""
    from workers import supervisor
    from workers.tasks import submit_ingest

    _as_service()
    settings = _settings()
    with supervisor.watching(settings, submit_ingest):
        supervisor.wait_for_signal()


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="files or folders to record", metavar="PATH...")
    ],
) -> None:
    """Record files now, in this process (backfill). Files outside the inbox are copied."""
    from agent.inbox.ingest import Ingestor

    settings = _settings()
    files = sorted(
        {f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()}
    )
    if not files:
        raise typer.BadParameter("no files found")
    # files named here are finished (a person chose them): judged now, not left for the
    # grace a file still being copied into the inbox gets
    ingestor = Ingestor(settings.model_copy(update={"cut_short_grace_seconds": 0.0}))
    if logging.getLogger(OWN_LOGGERS[0]).level > logging.INFO:  # each fate is printed once
        logging.getLogger("agent.inbox.ingest").setLevel(logging.ERROR)
    inbox = settings.inbox.resolve()
    outcomes: dict[str, int] = {}
    touched: set[int] = set()
    for path in track(files, description="ingesting", console=console):
        in_inbox = path.resolve().is_relative_to(inbox)
        report = ingestor.ingest(path.resolve()) if in_inbox else ingestor.backfill(path)
        outcomes[report.status] = outcomes.get(report.status, 0) + 1
        touched.update(report.batch_ids)
        if report.status == "quarantined":
            console.print(f"[yellow]quarantined[/] {escape(report.name)}: {escape(report.reason)}")
    console.print(", ".join(f"{n} {status}" for status, n in sorted(outcomes.items())))
    _advance(sorted(touched))


def _advance(batch_ids: list[int]) -> None:
    """Complete the batches these results finished and queue their retrain, as the
    workers do; a broker that cannot take the task leaves it to `labloop run`'s start."""
    from workers.tasks import advance_batches

    try:
        completed = advance_batches(batch_ids)
    except Exception as error:  # the batch is complete either way; only the queueing failed
        console.print(
            f"batches complete; the broker did not take the retrain ({error}): "
            "`labloop run` retrains them when it starts"
        )
        return
    for number in completed:
        console.print(f"batch {number} complete: retrain queued (`labloop run` does it)")


@app.command()
def status() -> None:
    """Files ingested and quarantined, results per batch, recent failures."""
    from agent.ops.task_failures import by_batch
    from agent.reports.status import build_status
    from agent.store.db import get_engine

    settings = _settings(only_reads=True)
    facts = build_status(
        get_engine(settings.database_url), heartbeat_seconds=settings.heartbeat_seconds
    )
    files = facts.files
    console.print(
        f"files: {files.archived} archived, {files.quarantined} quarantined "
        f"({facts.quarantine.open_total} need a person), "
        f"{files.processing} in progress"
    )
    for service in facts.services:
        style = "" if service.fresh else "[red]"
        console.print(f"{style}{escape(service.describe())}")
    if not facts.services:
        console.print("services: no heartbeat yet (is `labloop run` running?)")
    if facts.task_failures:
        gave_up = Table("when", "task", "error", title="tasks that gave up (until resolved)")
        for failure in facts.task_failures:
            when = failure.failed_at.astimezone().strftime("%d %b %H:%M:%S")
            gave_up.add_row(
                when, escape(failure.what), escape(f"{failure.error_type}: {failure.message}")
            )
        console.print(gave_up)
    _print_batches(facts.batches, by_batch(facts.task_failures))
    if facts.failures:
        failures = Table("sample", "class", "reason", title="recent failed tests")
        for f in facts.failures:
            failures.add_row(escape(f.sample_id), f.failure_class or "", escape(f.reason or ""))
        console.print(failures)
    if facts.quarantine.open:
        quarantine = Table("file", "reason", title="quarantine: needs a person")
        for q in facts.quarantine.open:
            quarantine.add_row(escape(q.name), escape(q.reason))
        console.print(quarantine)
    if facts.quarantine.resolved:
        console.print(
            f"{facts.quarantine.resolved_total} quarantined file(s) resolved since "
            "(a corrected file or a later result): see the status page"
        )


@app.command()
def health(
    service: Annotated[
        str,
        typer.Argument(help="watcher, or a worker's queues: ingest, learning", metavar="SERVICE"),
    ],
    host: Annotated[
        str | None,
        typer.Option(
            help="the machine whose SERVICE is checked (default: this one)", metavar="HOST"
        ),
    ] = None,
    any_host: Annotated[
        bool, typer.Option("--any-host", help="healthy if SERVICE beats on any machine")
    ] = False,
) -> None:
    """Exit 0 when SERVICE's last heartbeat is fresh, 1 otherwise (for health checks).

    A container's check asks about its own machine: another machine's fresh worker must not
    keep a dead one here looking healthy.
    """
    import socket

    from sqlalchemy.exc import SQLAlchemyError

    from agent.ops.heartbeat import service_beats
    from agent.store.db import get_engine

    settings = _settings()
    try:
        beats = service_beats(get_engine(settings.database_url), settings.heartbeat_seconds)
    except SQLAlchemyError as error:
        errors.print(f"{service}: the database is not answering ({error})")
        raise typer.Exit(1) from error
    known = sorted({b.service for b in beats})
    beats = [b for b in beats if b.service == service]
    here = host or socket.gethostname()
    elsewhere = sorted({b.host for b in beats if b.host != here})
    if not any_host:
        beats = [b for b in beats if b.host == here]
    for beat in beats:
        console.print(escape(beat.describe()))
    if not beats and elsewhere:
        errors.print(f"{service}: no heartbeat from {here} (it beats on {', '.join(elsewhere)})")
    elif not beats:  # a typo, or a service that never started: say which ones did beat
        seen = f" (services that beat: {', '.join(known)})" if known else ""
        errors.print(f"{service}: no heartbeat recorded{seen}")
    raise typer.Exit(0 if any(b.fresh for b in beats) else 1)


@app.command("import-history")
def import_history_command(
    path: Annotated[
        Path,
        typer.Argument(help="CSV: parameters, initial_discharge_mah_g, status", metavar="FILE"),
    ],
) -> None:
    """Load past experiments (failed rows too) as `historical`."""
    from agent.loop.batches import campaign_space
    from agent.loop.history_import import import_history
    from agent.store.db import get_engine

    settings = _settings()
    with _step(f"importing {path.name}"):
        summary = import_history(get_engine(settings.database_url), path, campaign_space(settings))
    console.print(
        f"{summary.added} experiments added ({summary.ok} ok, {summary.failed} failed, "
        f"{summary.unmeasured} never measured), {summary.already_there} already there"
    )


@app.command()
def retrain() -> None:
    """Train a new model version on everything recorded, in this process."""
    from agent.loop.batches import campaign_space
    from agent.loop.retrain import retrain as train
    from agent.store.db import get_engine

    settings = _settings()
    with _step("training the model (hyperparameter search, comparison, uncertainty)"):
        run = train(get_engine(settings.database_url), settings, campaign_space(settings))
    _print_model(run)


@app.command()
def propose(
    pins: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="pin or narrow a parameter for this proposal: name=value or name=low:high "
            "(repeatable)",
            metavar="NAME=VALUE",
        ),
    ] = None,
) -> None:
    """Propose the next batch now (the first one from history alone: "zero-shot")."""
    from agent.loop.batches import campaign_space
    from agent.loop.model_files import latest_run
    from agent.loop.propose import batch_of_model, draft_path, propose_next_batch
    from agent.loop.retrain import retrain as train
    from agent.store.db import get_engine

    settings = _settings()
    if pins:
        settings = settings.model_copy(
            update={"campaign": {**settings.campaign, **_parse_overrides(pins)}}
        )
    engine = get_engine(settings.database_url)
    try:
        space = campaign_space(settings)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    run = latest_run(engine)
    if run is None or batch_of_model(engine, run.version) is not None:
        with _step("training the model (hyperparameter search, comparison, uncertainty)"):
            run = train(engine, settings, space)
        _print_model(run)
    with _step(f"proposing the next batch from model v{run.version} (the swarm)"):
        batch = propose_next_batch(engine, settings, space, run)
    if batch is None:
        console.print(f"campaign complete: its {settings.max_batches} batches are proposed")
        return
    if batch.awaiting_approval:
        console.print(
            f"batch {batch.number}: draft {draft_path(batch)} awaits approval "
            f"(labloop batch approve {batch.number}); the lab's file comes then"
        )
        return
    console.print(f"batch {batch.number}: {batch.recipe_file}")


def _parse_overrides(items: list[str]) -> dict[str, object]:
    """["atmosphere=air", "ni_fraction=0.94:0.96"] -> {"atmosphere": "air", "ni_fraction": [..]}"""
    overrides: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected name=value or name=low:high")
        parts = [_number_or_text(v) for v in value.split(":")]
        overrides[name.strip()] = parts if len(parts) == 2 else parts[0]
    return overrides


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _print_model(run) -> None:  # noqa: ANN001 - a ModelRun
    console.print(
        f"model v{run.version}: {run.n_train} measured experiments, "
        f"CV RMSE {run.cv_rmse:.2f} mAh/g, R² {run.cv_r2:.3f} "
        "(tuned GBM, mean over the test folds of k-fold CV)"
    )
    if run.comparison:
        title = "k-fold CV, mean over the folds (paper Table 1; GBM: the tuned model in use)"
        table = Table("metric", *run.comparison, title=title)
        for metric in next(iter(run.comparison.values())):
            table.add_row(metric, *(f"{run.comparison[m][metric]:.3f}" for m in run.comparison))
        console.print(table)


app.add_typer(lab_app, name="lab")

batch_app = typer.Typer(help="Batches: list them, close one whose samples will never come.")
app.add_typer(batch_app, name="batch")


@batch_app.command("list")
def batch_list() -> None:
    """Every batch with its state and results in."""
    from agent.ops.task_failures import by_batch
    from agent.reports.status import build_status
    from agent.store.db import get_engine

    settings = _settings(only_reads=True)
    facts = build_status(get_engine(settings.database_url))
    _print_batches(facts.batches, by_batch(facts.task_failures))


@batch_app.command("close")
def batch_close(
    number: Annotated[int, typer.Argument(help="batch number", metavar="N")],
    reason: Annotated[
        str, typer.Option(help="why the missing samples will never come", metavar="TEXT")
    ],
) -> None:
    """Mark a batch complete without its missing samples, and start its retrain."""
    from agent.loop.batches import close_batch
    from agent.store.db import get_engine

    settings = _settings()
    if not close_batch(get_engine(settings.database_url), number, reason):
        raise LabloopError(f"batch {number} is not open (unknown, or complete already)")
    from workers.tasks import retrain as retrain_task

    retrain_task.delay(number)
    console.print(f"batch {number} closed ({escape(reason)}); retrain queued")


def _who(by: str | None) -> str:
    return by or os.environ.get("USER") or "unknown"


@batch_app.command("approve")
def batch_approve(
    number: Annotated[int, typer.Argument(help="batch number", metavar="N")],
    by: Annotated[
        str | None, typer.Option(help="who approves (default: $USER)", metavar="NAME")
    ] = None,
) -> None:
    """Approve a proposed batch: its recipe file is released to the lab."""
    from agent.loop.approval import approve
    from agent.loop.batches import campaign_space
    from agent.store.db import get_engine

    settings = _settings()
    batch = approve(get_engine(settings.database_url), campaign_space(settings), number, _who(by))
    console.print(f"batch {number} approved by {batch.approved_by}: {batch.recipe_file}")
    _advance([batch.id])  # results that came before the approval count now


@batch_app.command("reject")
def batch_reject(
    number: Annotated[int, typer.Argument(help="batch number", metavar="N")],
    reason: Annotated[str, typer.Option(help="why the proposal is turned down", metavar="TEXT")],
    by: Annotated[
        str | None, typer.Option(help="who rejects (default: $USER)", metavar="NAME")
    ] = None,
) -> None:
    """Reject a proposed batch; `labloop propose` makes a new one."""
    from agent.loop.approval import reject
    from agent.store.db import get_engine

    settings = _settings()
    reject(get_engine(settings.database_url), number, reason, _who(by))
    console.print(f"batch {number} rejected: {escape(reason)}")


@batch_app.command("edit")
def batch_edit(
    number: Annotated[int, typer.Argument(help="batch number", metavar="N")],
    sample: Annotated[str, typer.Argument(help="sample id, e.g. B004-S03", metavar="SAMPLE")],
    changes: Annotated[
        list[str],
        typer.Option("--set", help="name=value to change (repeatable)", metavar="NAME=VALUE"),
    ],
) -> None:
    """Change a sample's recipe in a batch awaiting approval (validated, predicted again)."""
    from agent.loop.approval import edit
    from agent.loop.batches import campaign_space
    from agent.store.db import get_engine

    settings = _settings()
    try:
        experiment = edit(get_engine(settings.database_url), campaign_space(settings), number,
                          sample, _parse_overrides(changes), settings.strategy)  # fmt: skip
    except ValueError as error:  # a value outside the space
        raise LabloopError(str(error)) from None
    console.print(f"{sample} changed; predicted {experiment.predicted_mah_g:.1f} mAh/g")


def _print_batches(batches: list[BatchProgress], held: dict[int, FailureFacts]) -> None:
    """The batches table; a batch a failed retrain or proposal holds up says so."""
    table = Table("batch", "state", "samples", "with result", "ok", "failed", title="batches")
    for b in batches:
        label = "history/manual" if b.number is None else f"B{b.number:03d}"
        state = f"{b.state}, {held[b.number].step} failed" if b.number in held else b.state
        table.add_row(label, state, str(b.samples), str(b.with_result), str(b.ok), str(b.failed))
    console.print(table)


DEMO_MARKER = ".labloop-demo"


@app.command()
def demo(
    batches: Annotated[int, typer.Option(help="batches the virtual lab runs", metavar="N")] = 3,
    seed: Annotated[int, typer.Option(help="virtual lab seed", metavar="N")] = 0,
    pace: Annotated[
        float, typer.Option(help="seconds between two dropped files", metavar="SECONDS")
    ] = 0.3,
    fast: Annotated[bool, typer.Option(help="small learning and swarm budgets")] = False,
    lab: Annotated[
        str, typer.Option(help=f"virtual lab: {', '.join(LABS)}", metavar="NAME")
    ] = "baseline",
) -> None:
    """The whole loop, hands-off, on a virtual NCM lab (in ./demo unless --home is given)."""
    if lab not in LABS:
        raise typer.BadParameter(
            f"unknown lab {lab!r}; known: {', '.join(LABS)}", param_hint="--lab"
        )
    from agent.demo import DemoConfig, run_demo

    home = _demo_home()
    # a SIGTERM (service manager, test harness) unwinds like Ctrl-C: the workers stop too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if logging.getLogger().level > logging.DEBUG:  # the live line says it all; -v for more
        logging.getLogger().setLevel(logging.WARNING)
    os.environ.update({"LABLOOP_HOME": str(home), "LABLOOP_MAX_BATCHES": str(batches),
                       "LABLOOP_SEED": os.environ.get("LABLOOP_SEED", str(seed))})  # fmt: skip
    # the virtual lab writes each export whole (renamed into place), so a dead cell's short
    # file need not wait out the minute a real cycler's half-copied export is given
    os.environ.setdefault("LABLOOP_CUT_SHORT_GRACE_SECONDS", "2")
    if fast:
        os.environ.update(config.FAST_BUDGET)
    config.get_settings.cache_clear()
    settings = _settings()
    # imported only now: the Celery app is built from the settings at import
    from workers.queues import broker_words
    from workers.tasks import submit_ingest

    broker = broker_words(settings.broker_url, settings.state / "broker")
    console.print(f"labloop demo: {batches} batches in {home}, broker {broker}")
    demo_config = DemoConfig(batches=batches, seed=seed, pace_seconds=pace, lab=lab)
    with _progress_display() as show:
        summaries = run_demo(settings, demo_config, submit_ingest, show)
    table = Table("batch", "model", "predicted max", "measured range", "best so far", "MAPE %",
                  "failed", title="what each batch taught")  # fmt: skip
    for s in summaries:
        measured = (f"{s.measured_min:.1f}-{s.measured_max:.1f}" if s.measured_min is not None
                    else "-")  # fmt: skip
        table.add_row(
            f"B{s.number:03d}", f"v{s.model_version}", _fmt(s.predicted_max), measured,
            _fmt(s.best_so_far), _fmt(s.mape_percent, 2), f"{s.failed}/{s.samples}",
        )  # fmt: skip
    console.print(table)
    console.print(f"figures: {home / 'report'}; recipes: {home / 'recipes'}")


@contextmanager
def _step(text: str) -> Iterator[None]:
    """Say on stderr what a long step is doing: a spinner in a terminal, a line otherwise."""
    if errors.is_terminal:
        with errors.status(f"{text} ..."):
            yield
    else:
        errors.print(f"{text} ...", markup=False, highlight=False)
        yield


@contextmanager
def _progress_display() -> Iterator[Callable[[Any], None]]:
    """A live line in a terminal; piped or logged, a plain line whenever the stage moves
    (on stderr: stdout keeps only the results)."""

    def line(progress: Any) -> str:  # a demo.Progress
        return (
            f"batch {progress.batch}: {progress.stage:<9} | results "
            f"{progress.recorded}/{progress.samples} | failed tests {progress.failures}"
        )

    if errors.is_terminal:
        with Live(console=errors, refresh_per_second=4, transient=True) as live:
            yield lambda progress: live.update(line(progress))
        return
    last: list[tuple[int, str]] = []

    def print_stage(progress: Any) -> None:
        if [(progress.batch, progress.stage)] != last:
            last[:] = [(progress.batch, progress.stage)]
            errors.print(line(progress), markup=False, highlight=False)

    yield print_stage


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _demo_home() -> Path:
    """./demo (or the chosen home), emptied if an earlier demo left it; never a real lab."""
    import shutil

    home = Path(os.environ.get("LABLOOP_HOME", "demo")).resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            raise LabloopError(f"{home} is not empty and not a demo folder: choose another --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("made by `labloop demo`; emptied by the next one\n")
    return home


def main() -> None:
    try:
        app()
    except LabloopError as error:
        errors.print(f"labloop: {error}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
