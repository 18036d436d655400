"""What each batch taught: the per-batch table (predicted maximum, measured range, best so
far, mean absolute percentage error (MAPE) of the predictions on the batch, failures), the
experiments behind it, and the parity plot of a model's out-of-fold predictions. The
figures per batch are in ``agent.reports.figures``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Figure, not pyplot: files only, no display backend needed on a lab server
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.cycler.base import Outcome
from agent.store.db import Batch, Experiment, Result


@dataclass(frozen=True)
class BatchSummary:
    number: int
    state: str
    model_version: int | None
    samples: int
    measured: int
    failed: int
    predicted_max: float | None
    measured_min: float | None
    measured_max: float | None
    best_so_far: float | None
    mape_percent: float | None


def experiments_frame(engine: Engine) -> pd.DataFrame:
    """One row per experiment: batch number (None: history/manual), recipe, prediction,
    mean ok capacity and number of failed results. The recipes of a rejected batch, or of
    a draft still awaiting approval, are at no bench: they are left out."""
    with Session(engine) as session:
        batches = session.exec(select(Batch)).all()
        left_out = {b.id for b in batches if b.at_no_bench}
        numbers = {b.id: b.number for b in batches if b.id not in left_out}
        experiments = [
            e for e in session.exec(select(Experiment)).all() if e.batch_id not in left_out
        ]
        results = session.exec(
            select(Result.experiment_id, Result.outcome, Result.discharge_mah_g,
                   Result.failure_class).order_by(Result.id)
        ).all()  # fmt: skip
    outcomes = pd.DataFrame(results, columns=["experiment_id", "outcome", "capacity", "class"])
    ok = outcomes[(outcomes["outcome"] == Outcome.OK) & outcomes["capacity"].notna()]
    measured = ok.groupby("experiment_id")["capacity"].mean()
    failures = outcomes[outcomes["outcome"] == Outcome.FAILED].groupby("experiment_id")
    failed, failure_class = failures.size(), failures["class"].last()
    rows = [
        {
            **e.parameters,
            "sample_id": e.sample_id,
            "batch": numbers.get(e.batch_id),
            "predicted": e.predicted_mah_g,
            "predicted_std": e.predicted_std_mah_g,
            "measured": measured.get(e.id, np.nan),
            "failed": int(failed.get(e.id, 0)),
            "failure_class": failure_class.get(e.id),
        }
        for e in experiments
    ]
    return pd.DataFrame(rows)


def batch_summaries(engine: Engine) -> list[BatchSummary]:
    """One summary per batch the lab was given (not rejected, not awaiting approval)."""
    frame = experiments_frame(engine)
    with Session(engine) as session:
        batches = session.exec(select(Batch).order_by(Batch.number)).all()
    batches = [b for b in batches if not b.at_no_bench]
    history = frame[frame["batch"].isna()] if len(frame) else frame
    best = float(history["measured"].max()) if len(history) else np.nan
    summaries = []
    for batch in batches:
        own = frame[frame["batch"] == batch.number]
        measured = own.dropna(subset=["measured"])
        if len(measured):
            best = np.nanmax([best, measured["measured"].max()])
        paired = measured.dropna(subset=["predicted"])
        mape = (
            float((abs(paired["predicted"] - paired["measured"]) / paired["measured"]).mean() * 100)
            if len(paired)
            else None
        )
        summaries.append(
            BatchSummary(
                number=batch.number,
                state=batch.state,
                model_version=batch.model_version,
                samples=len(own),
                measured=len(measured),
                failed=int((own["failed"] > 0).sum()) if len(own) else 0,
                predicted_max=_max(own["predicted"]) if len(own) else None,
                measured_min=_min(measured["measured"]),
                measured_max=_max(measured["measured"]),
                best_so_far=None if np.isnan(best) else float(best),
                mape_percent=mape,
            )
        )
    return summaries


def _max(values: pd.Series) -> float | None:
    return None if values.dropna().empty else float(values.max())


def _min(values: pd.Series) -> float | None:
    return None if values.dropna().empty else float(values.min())


def model_parity_png(measured: Sequence[float], predicted: Sequence[float], version: int) -> bytes:
    """A model's out-of-fold predictions against the measured values, as PNG bytes."""
    figure = Figure(figsize=(5, 4.6))
    ax = figure.subplots()
    mape = _draw_parity(ax, np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float))
    ax.set_title(f"model v{version}: out-of-fold predictions"
                 + ("" if mape is None else f", MAPE {mape:.1f} %"))  # fmt: skip
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _draw_parity(
    ax: Axes, measured: pd.Series | np.ndarray, predicted: pd.Series | np.ndarray
) -> float | None:
    """Predicted vs measured with the y = x line; returns the MAPE in % (None: no points)."""
    ax.set_xlabel("measured first discharge (mAh/g)")
    ax.set_ylabel("predicted (mAh/g)")
    if len(measured) == 0:
        return None
    low = min(predicted.min(), measured.min()) - 2
    high = max(predicted.max(), measured.max()) + 2
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.scatter(measured, predicted, color="tab:blue")
    return float((abs(predicted - measured) / measured).mean() * 100)
