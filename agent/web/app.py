"""The status page and its JSON API: server-rendered, one Flask app per home.

Routes (GET): ``/`` the page; ``/api/batches``, ``/api/queues``, ``/api/files``,
``/api/models`` the same facts as JSON; ``/healthz`` for a health check; the recipe files
and figures it links to (agent.web.downloads).
With ``web_read_token`` set every route but ``/healthz`` needs it (agent.web.guard). The
writes, the approval gate's forms (agent.web.gate), need the ``web_token`` of the settings;
without one configured the page is read-only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from flask import (
    Flask,
    Response,
    jsonify,
    render_template,
    request,
)
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import OperationalError

from agent.config import Settings
from agent.loop.batches import campaign_space
from agent.loop.recipe_files import COLUMN_MEANINGS
from agent.ops.heartbeat import service_beats
from agent.ops.task_failures import by_batch, open_failures
from agent.reports.figures import FIGURE_NAMES
from agent.store.db import as_utc, make_engine
from agent.web import facts
from agent.web.downloads import download_routes
from agent.web.drafts import gate_facts
from agent.web.facts import BatchFacts
from agent.web.gate import gate_routes
from agent.web.guard import GuessLimiter, protect_reading
from workers.queues import WorkerProbe, queue_counter, with_held_tasks

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10


def create_app(
    settings: Settings,
    celery: Celery | None = None,
    guesses: GuessLimiter | None = None,
    refresh_seconds: float = REFRESH_SECONDS,
) -> Flask:
    """The web app for the labloop home of ``settings``; ``celery`` defaults to the workers'.

    ``guesses`` counts wrong tokens per address (default: 5 a minute lock an address out
    for a minute); ``refresh_seconds`` is how often an untouched page reloads itself.
    """
    if celery is None:
        # the page is an entry point like the CLI, so it may use the workers' own app
        from workers.app import make_app

        celery = make_app(settings)
    engine = make_engine(settings.database_url)  # connects on first use: never at start-up
    summaries = facts.SummaryCache(engine)
    queues = queue_counter(celery)
    workers = WorkerProbe(celery.control, queues.broker)

    app = Flask(__name__)
    app.json = _JSONProvider(app)
    app.jinja_env.filters.update(ago=ago, clock=clock, utc=as_utc)
    app.jinja_env.globals.update(refresh_seconds=refresh_seconds)
    guesses = guesses or GuessLimiter()
    if settings.web_read_token is not None:
        protect_reading(app, settings.web_read_token, guesses)
    app.register_blueprint(gate_routes(settings, engine, celery, guesses))
    app.register_blueprint(download_routes(settings, engine, summaries))

    def queue_facts() -> dict[str, Any]:
        services = service_beats(engine, settings.heartbeat_seconds)
        return {
            "queues": with_held_tasks(queues.count(), services),
            "workers": workers.facts(),
            "services": services,
            "task_failures": open_failures(engine),
            "last_errors": facts.last_errors(engine),
        }

    def batches() -> list[BatchFacts]:
        return facts.batch_facts(engine, settings.recipes, summaries)

    def files() -> facts.FileFacts:
        return facts.file_facts(engine, settings.inbox, settings.masses_file)

    @app.get("/")
    def page() -> str:
        all_batches = batches()
        queue = queue_facts()
        return render_template(
            "index.html",
            now=datetime.now(UTC),
            batches=all_batches,
            gate=gate_facts(engine, campaign_space(settings)),
            figure_names=FIGURE_NAMES,
            files=files(),
            models=facts.model_facts(engine),
            writes_enabled=settings.web_token is not None,
            column_meanings=COLUMN_MEANINGS,
            header_notes=facts.header_notes(all_batches, queue["task_failures"], queue["services"]),
            held_up=by_batch(queue["task_failures"]),
            busy_workers={s.worker_name: s.busy_with for s in queue["services"] if s.fresh},
            **queue,
        )

    @app.get("/api/batches")
    def api_batches() -> Response:
        return jsonify(batches=batches())

    @app.get("/api/queues")
    def api_queues() -> Response:
        return jsonify(queue_facts())

    @app.get("/api/files")
    def api_files() -> Response:
        return jsonify(files())

    @app.get("/api/models")
    def api_models() -> Response:
        return jsonify(facts.model_facts(engine))

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        if facts.database_ok(engine):
            return jsonify(status="ok", database="ok"), 200
        return jsonify(status="error", database="unreachable"), 503

    @app.errorhandler(OperationalError)  # connection refused, file not found, server gone
    def database_down(error: OperationalError) -> tuple[Response | str, int]:
        log.warning("database error on %s: %s", request.path, error)
        if request.path.startswith("/api/"):
            return jsonify(error="the database is not answering"), 503
        return render_template("unavailable.html"), 503

    return app


class _JSONProvider(DefaultJSONProvider):
    """Dataclasses as objects (Flask's default) and times as ISO 8601 in UTC."""

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return as_utc(o).isoformat()
        return DefaultJSONProvider.default(o)


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 d ago'."""
    if moment is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - as_utc(moment)).total_seconds()
    if seconds < 60:
        return "just now"
    unit, size = next((u, s) for u, s in (("d", 86400), ("h", 3600), ("min", 60)) if seconds >= s)
    return f"{int(seconds // size)} {unit} ago"


def clock(moment: datetime | None) -> str:
    """The local time of the server, as lab staff read a clock: 'Mon 12 Jan 07:24'."""
    return "-" if moment is None else as_utc(moment).astimezone().strftime("%a %d %b %H:%M")
