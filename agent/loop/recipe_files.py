"""Recipe files: recipes/batch-NNN.csv, one row per sample, for the lab to follow.

Written once, atomically (temp file + link, which refuses to replace a file), as UTF-8
with a byte-order mark so that spreadsheet programs show the units (°C) correctly.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.space.design import DesignSpace
from agent.store.files import write_atomic, write_once

PREDICTION_COLUMNS = (
    "predicted_capacity_mah_g",
    # the 95 % interval of a measurement: predicted ± 1.96 x uncertainty (1 sigma)
    "low_95_mah_g",
    "high_95_mah_g",
    "uncertainty_mah_g",
    "p_success",
    "model_version",
    # "atmosphere=air": the recipe tries a value few or no tried recipes used
    "probe",
)
Z_95 = 1.96


@dataclass(frozen=True)
class PlannedSample:
    sample_id: str
    recipe: dict[str, Any]
    predicted_mah_g: float | None = None
    uncertainty_mah_g: float | None = None
    p_success: float | None = None
    model_version: int | None = None
    probe: str | None = None


# the sample id the column meanings use as an example; beside a recipe file, one of its own
EXAMPLE_SAMPLE = "B004-S03"
# what each column of a recipe file means: written beside every recipe file, shown on the page
COLUMN_MEANINGS = (
    ("sample_id", "label the cell's export with it, in the file name or the test name "
                  f"({EXAMPLE_SAMPLE}.csv); labloop matches results by it"),
    ("recipe columns", "the recipe to make, on the design space's grid; units in the header; "
                       "a blank cell is a step that does not apply, as the header says (no "
                       "coating: no coating amount, temperature or time)"),
    ("predicted_capacity_mah_g", "the model's expected first-cycle discharge capacity at the "
                                 "lab's protocol"),
    ("low_95_mah_g, high_95_mah_g", "the 95 % interval of a measurement: about 19 of 20 "
                                    "results should land inside it"),
    ("uncertainty_mah_g", "the standard deviation behind that interval, which spans about "
                          "two of it either side: the model's uncertainty (larger far from "
                          "tried recipes) and measurement noise together"),
    ("p_success", "the chance the synthesis gives a powder to test: the success rate of tried "
                  "recipes nearby, 0.5 where none is near; a failed synthesis lowers it for "
                  "its neighbours"),
    ("model_version", "the model that proposed the row"),
    ("probe", "empty, or the value the recipe tries that few or no tried recipes used "
              "(atmosphere=air): a deliberate test of what the model cannot know yet"),
)  # fmt: skip


def recipe_path(folder: Path, batch_number: int) -> Path:
    return folder / f"batch-{batch_number:03d}.csv"


def about_path(recipe_file: Path) -> Path:
    """The text beside a recipe file that says what it holds (batch-004.about.txt)."""
    return recipe_file.with_name(recipe_file.stem + ".about.txt")


def about_text(recipe_name: str, batch_number: int, model: ModelSummary) -> str:
    """What a recipe file holds, which model made it and how far to trust that model."""
    region = (
        f"; on regions of the design space it did not see, {model.region_cv_rmse:.2f} mAh/g"
        if model.region_cv_rmse is not None
        else ""
    )
    width = max(len(name) for name, _ in COLUMN_MEANINGS)
    own_sample = f"B{batch_number:03d}-S03"
    lines = [
        f"{recipe_name}: the recipes labloop proposes for batch {batch_number}.",
        "",
        f"Made by model v{model.version}, trained on {model.n_train} measured experiments. "
        f"Its cross-validated error is {model.cv_rmse:.2f} mAh/g (R\u00b2 {model.cv_r2:.3f}, "
        f"mean over the test folds){region}.",
        "",
        "Columns:",
        *(
            f"  {name:<{width}}  {meaning.replace(EXAMPLE_SAMPLE, own_sample)}"
            for name, meaning in COLUMN_MEANINGS
        ),
        "",
        "Drop each cell's cycler export (or a result sheet, failed syntheses included) into "
        "the inbox; the tenth result of the batch starts the next proposal.",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModelSummary:
    """The figures of a model run a recipe file's reader needs."""

    version: int
    n_train: int
    cv_rmse: float
    cv_r2: float
    region_cv_rmse: float | None = None


def _cell(value: Any, digits: int | None = None) -> str:
    """Recipe values exactly as on the grid; predictions rounded to ``digits``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return f"{value:g}" if digits is None else f"{value:.{digits}f}"


def interval_95(
    predicted_mah_g: float | None, uncertainty_mah_g: float | None
) -> tuple[float | None, float | None]:
    """The 95 % interval of a prediction with its 1-sigma uncertainty (None if either is)."""
    if predicted_mah_g is None or uncertainty_mah_g is None:
        return None, None
    half = Z_95 * uncertainty_mah_g
    return predicted_mah_g - half, predicted_mah_g + half


def recipe_table(space: DesignSpace, samples: Sequence[PlannedSample]) -> list[list[str]]:
    """The cells of a recipe file, header row first: the file and the page show the same."""
    rows = [["sample_id", *(space.label(c) for c in space.columns), *PREDICTION_COLUMNS]]
    for sample in samples:
        rows.append(
            [
                sample.sample_id,
                *(_cell(sample.recipe[c]) for c in space.columns),
                _cell(sample.predicted_mah_g, 1),
                *(
                    _cell(v, 1)
                    for v in interval_95(sample.predicted_mah_g, sample.uncertainty_mah_g)
                ),
                _cell(sample.uncertainty_mah_g, 1),
                _cell(sample.p_success, 2),
                _cell(sample.model_version, 0),
                _cell(sample.probe),
            ]
        )
    return rows


def render(space: DesignSpace, samples: Sequence[PlannedSample]) -> bytes:
    """The CSV bytes of a recipe file."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(recipe_table(space, samples))
    return out.getvalue().encode("utf-8-sig")


def write_recipe_file(path: Path, space: DesignSpace, samples: Sequence[PlannedSample]) -> str:
    """Write a new recipe file; its sha256. FileExistsError if one is there already."""
    payload = render(space, samples)
    write_once(path, payload)
    return hashlib.sha256(payload).hexdigest()


def write_draft(path: Path, space: DesignSpace, samples: Sequence[PlannedSample]) -> Path:
    """Write (or rewrite) a draft for review: atomic, so a reader never sees half of it."""
    return write_atomic(path, render(space, samples))


def read_recipe_file(path: Path, space: DesignSpace) -> list[PlannedSample]:
    """The samples of a recipe file (header units stripped), checked against the space."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    # by the header's first word: a header's note may change, its parameter does not
    headers = {header.split(" ")[0]: header for header in rows[0]} if rows else {}
    samples = []
    for line, row in enumerate(rows, start=2):
        recipe: dict[str, Any] = {}
        for name in space.columns:
            if name not in headers:
                raise ValueError(f"{path.name}: column {space.label(name)!r} is missing")
            text = row[headers[name]]
            recipe[name] = float(text) if _is_number(text) else (text or None)
        try:
            space.validate(recipe)
        except ValueError as error:
            raise ValueError(f"{path.name} line {line}: {error}") from None
        samples.append(
            PlannedSample(
                sample_id=row["sample_id"],
                recipe=recipe,
                predicted_mah_g=_float(row.get("predicted_capacity_mah_g")),
                uncertainty_mah_g=_float(row.get("uncertainty_mah_g")),
                p_success=_float(row.get("p_success")),
                model_version=int(row["model_version"]) if row.get("model_version") else None,
                probe=row.get("probe") or None,
            )
        )
    return samples


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _float(text: str | None) -> float | None:
    return float(text) if text else None
