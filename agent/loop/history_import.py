"""Import past experiments (one CSV row each) as `historical` experiments and results.

Columns: the design-space parameters (missing values allowed), ``initial_discharge_mah_g``,
``status`` (ok | failed), ``reason``; optional ``sample_id`` (default H<row>) and
``failure_class`` (a failed row without one counts as a synthesis failure, as in result
sheets). Failed rows are kept. A row marked ok without a value is stored as an experiment
with no result: poor results were often never measured, and that is data too.
Importing the same file again adds nothing (rows are keyed by file hash and row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.cycler.base import STATUS_WORDS, Outcome, hand_entered_failure
from agent.errors import LabloopError
from agent.space.design import DesignSpace
from agent.store.db import Experiment, Origin, Result
from agent.store.files import sha256_of

REQUIRED = ("initial_discharge_mah_g", "status")


class HistoryError(LabloopError, ValueError):
    """A history file that cannot be imported as it stands; nothing of it is stored."""


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    added: int
    already_there: int
    ok: int
    failed: int
    unmeasured: int


def _value(raw: Any) -> Any:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    return raw.item() if hasattr(raw, "item") else raw


def _read(path: Path) -> pd.DataFrame:
    """The history's rows, or a HistoryError saying why they cannot be read."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise HistoryError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise HistoryError(f"{path} is a folder; give the history's CSV file") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path.name}: not UTF-8 text; save it as CSV (UTF-8)") from None
    except pd.errors.EmptyDataError:
        raise HistoryError(f"{path.name}: empty, no header row") from None
    except pd.errors.ParserError as error:
        raise HistoryError(f"{path.name}: not a CSV table ({error})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def import_history(engine: Engine, path: Path, space: DesignSpace) -> ImportSummary:
    """Store every row of the history file at ``path``; HistoryError if it cannot be read."""
    frame = _read(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise HistoryError(f"{path.name}: missing column(s) {', '.join(missing)}")
    unknown = [
        c for c in frame.columns
        if c not in space.columns and c not in (*REQUIRED, "reason", "sample_id", "failure_class")
    ]  # fmt: skip
    if unknown:
        raise HistoryError(f"{path.name}: unknown column(s) {', '.join(unknown)}")
    sha = sha256_of(path)
    counts = dict.fromkeys(("added", "already", "ok", "failed", "unmeasured"), 0)
    with Session(engine) as session:
        known = set(session.exec(select(Experiment.sample_id)).all())
        for row_number, row in enumerate(frame.to_dict("records"), start=2):
            sample_id = str(_value(row.get("sample_id")) or f"H{row_number - 1:05d}")
            if sample_id in known:
                counts["already"] += 1
                continue
            status = STATUS_WORDS.get(str(row["status"]).strip().lower())
            if status is None:
                raise HistoryError(
                    f"{path.name} line {row_number}: status {row['status']!r} is not one of "
                    f"{', '.join(STATUS_WORDS)}"
                )
            parameters = {n: _value(row[n]) for n in space.columns if n in row}
            experiment = Experiment(
                sample_id=sample_id, origin=Origin.HISTORICAL, parameters=parameters
            )
            session.add(experiment)
            session.flush()
            capacity = _value(row["initial_discharge_mah_g"])
            result = _result(row, status, capacity, experiment.id, sha, row_number)
            if result is None:
                counts["unmeasured"] += 1
            else:
                session.add(result)
                counts[result.outcome] += 1
            counts["added"] += 1
            known.add(sample_id)
        session.commit()
    return ImportSummary(len(frame), counts["added"], counts["already"], counts["ok"],
                         counts["failed"], counts["unmeasured"])  # fmt: skip


def _result(
    row: dict[str, Any], status: Outcome, capacity: Any, experiment_id: int, sha: str, line: int
) -> Result | None:
    reason = _value(row.get("reason"))
    if status is Outcome.OK:
        if capacity is None:
            return None
        return Result(experiment_id=experiment_id, outcome=Outcome.OK,
                      discharge_mah_g=float(capacity), reason=reason, source_sha256=sha,
                      source_row=line)  # fmt: skip
    failure_class = hand_entered_failure(_value(row.get("failure_class")))
    return Result(
        experiment_id=experiment_id, outcome=Outcome.FAILED, failure_class=failure_class,
        reason=reason, discharge_mah_g=None if capacity is None else float(capacity),
        source_sha256=sha, source_row=line,
    )  # fmt: skip
