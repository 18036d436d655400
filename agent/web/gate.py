"""The approval gate's forms: approve, change one value of one sample, or reject a draft.

Each POST needs the write token (``web_token``) and the name of the person; wrong tokens
count towards the address's lockout (agent.web.guard). What the gate refuses (a batch no
longer awaiting approval: 409; a value outside the design space, a missing field: 400) is
answered with one line of plain text, never a traceback.
"""

from __future__ import annotations

import logging

from celery import Celery
from flask import Blueprint, Response, redirect, request, url_for
from sqlalchemy.engine import Engine

from agent.config import Settings
from agent.errors import LabloopError
from agent.loop.approval import approve, edit, reject
from agent.loop.batches import campaign_space, record_progress
from agent.ops.task_names import RETRAIN_TASK
from agent.web.guard import GuessLimiter, plain_text, token_matches, too_many_guesses

log = logging.getLogger(__name__)


def gate_routes(
    settings: Settings, engine: Engine, celery: Celery, guesses: GuessLimiter
) -> Blueprint:
    """The POST routes of the approval gate, for ``create_app`` to register."""
    gate = Blueprint("gate", __name__)

    @gate.before_request
    def check_writer() -> Response | None:
        if settings.web_token is None:
            return plain_text("the page is read-only: set web_token to decide here", 403)
        address = request.remote_addr or "unknown"
        if (wait := guesses.retry_after(address)) is not None:
            return too_many_guesses(wait)
        if not token_matches(request.form.get("token"), settings.web_token):
            guesses.failed(address)
            return plain_text("wrong token", 403)
        return None

    @gate.errorhandler(LabloopError)  # e.g. the batch is not awaiting approval
    def not_awaiting(error: LabloopError) -> Response:
        return plain_text(str(error), 409)

    @gate.errorhandler(ValueError)  # a value outside the design space, a missing field
    def refused(error: ValueError) -> Response:
        return plain_text(str(error), 400)

    @gate.post("/batches/<int:number>/approve")
    def approve_batch(number: int) -> Response:
        who = _field("by", "your name")
        batch = approve(engine, campaign_space(settings), number, who)
        log.info("batch %d approved by %s on the status page", number, who)
        # results that came before the approval count now; the last one starts the retrain
        if (completed := record_progress(engine, batch.id)) is not None:
            celery.send_task(RETRAIN_TASK, args=[completed])  # routed by the app
        return _back_to(number)

    @gate.post("/batches/<int:number>/edit")
    def edit_batch(number: int) -> Response:
        who = _field("by", "your name")
        sample, name = _field("sample", "a sample"), _field("parameter", "a parameter")
        space = campaign_space(settings)
        if name not in space.parameters:
            raise ValueError(f"{name!r} is not a parameter of the design space")
        value = space.parameters[name].coerce(_field("value", "a value"))
        edit(engine, space, number, sample, {name: value}, settings.strategy)
        log.info("batch %d: %s set to %s=%s by %s on the status page", number, sample, name,
                 value, who)  # fmt: skip
        return _back_to(number)

    @gate.post("/batches/<int:number>/reject")
    def reject_batch(number: int) -> Response:
        who, reason = _field("by", "your name"), _field("reason", "a reason")
        reject(engine, number, reason, who)
        log.info("batch %d rejected by %s on the status page: %s", number, who, reason)
        return _back_to(number)

    return gate


def _field(name: str, what: str) -> str:
    """A form field's text, one line; ValueError (400) when it is empty."""
    text = " ".join(request.form.get(name, "").split())
    if not text:
        raise ValueError(f"give {what} ({name})")
    return text


def _back_to(number: int) -> Response:
    return redirect(url_for("page") + f"#batch-{number}")
