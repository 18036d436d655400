"""What the page links to for download: recipe files, the batch figures, the parity plot.

Figures are drawn on request from the database as it is now and kept until the data
change; a recipe file is served only while it is byte for byte the one labloop wrote.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, send_from_directory
from sqlalchemy.engine import Engine

from agent.config import Settings
from agent.loop.batches import batch_by_number, campaign_space
from agent.loop.propose import recipe_is_ours
from agent.reports.figures import FIGURE_NAMES, FORMATS, batch_figures, figure_bytes
from agent.reports.per_batch import model_parity_png
from agent.web import facts
from agent.web.guard import plain_text


def download_routes(settings: Settings, engine: Engine, summaries: facts.SummaryCache) -> Blueprint:
    """The GET routes of recipe files and figures, for ``create_app`` to register."""
    downloads = Blueprint("downloads", __name__)
    parity_pngs: dict[int, bytes] = {}  # a model run never changes: one PNG per version

    @downloads.get("/recipes/<name>")
    def recipe(name: str) -> Response:
        # only names the loop writes; send_from_directory also refuses anything outside
        if not facts.RECIPE_NAME.fullmatch(name) or not (settings.recipes / name).is_file():
            abort(404)
        batch = batch_by_number(engine, int(name[len("batch-") : -len(".csv")]))
        if batch is not None and not recipe_is_ours(batch):
            # edited or replaced since labloop wrote it: the lab must not follow it
            return plain_text(
                f"{name} changed since labloop wrote it; ask whoever keeps labloop", 409
            )
        return send_from_directory(settings.recipes, name, mimetype="text/csv", as_attachment=True)

    figure_files: dict[tuple[Any, ...], bytes] = {}  # (data key, name, format) -> bytes

    @downloads.get("/figures/batches/<name>.<fmt>")
    def batch_figure(name: str, fmt: str) -> Response:
        """The demo report's figures, drawn from the database as it is now."""
        if name not in FIGURE_NAMES or fmt not in FORMATS:
            abort(404)
        key = (summaries.key(), name, fmt)
        if key not in figure_files:
            if any(old[0] != key[0] for old in figure_files):
                figure_files.clear()  # drawn from older data: never shown again
            figure = batch_figures(engine, campaign_space(settings), only=name)[name]
            figure_files[key] = figure_bytes(figure, fmt)
        mimetype = "image/svg+xml" if fmt == "svg" else "image/png"
        return Response(figure_files[key], mimetype=mimetype)

    @downloads.get("/figures/parity.png")
    def parity_png() -> Response:
        parity = facts.latest_parity(engine)
        if parity is None:
            abort(404)
        if parity.version not in parity_pngs:
            parity_pngs[parity.version] = model_parity_png(
                parity.measured, parity.predicted, parity.version
            )
        return Response(parity_pngs[parity.version], mimetype="image/png")

    return downloads
