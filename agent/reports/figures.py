"""The figures that explain a batch, and the data behind each (tests check the data).

* ``parity``: per batch, predicted against measured with the 95 % interval of each
  prediction, failed samples marked below the axis with their class, shared axes, MAPE;
* ``parameters``: the parameters the batches moved away from the history's habit, history
  and each batch side by side: numbers as strip plots on their own axis with units,
  categoricals as bars of each group's share;
* ``best``: the best capacity found so far after each batch, with the history's best.

The demo writes them to ``report/`` (PNG and SVG); the status page serves the same ones.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Figure, not pyplot: files only, no display backend needed on a lab server
from matplotlib.figure import Figure
from sqlalchemy.engine import Engine

from agent.loop.recipe_files import Z_95
from agent.reports.per_batch import batch_summaries, experiments_frame
from agent.space.design import DesignSpace

FORMATS = ("png", "svg")
FAILURE_MARKERS = {"synthesis": "x", "cell": "v", "measurement": "d", "untested": "."}


@dataclass(frozen=True)
class ParityPoint:
    batch: int
    sample_id: str
    predicted: float
    half_95: float  # half the width of the 95 % interval (0 when no uncertainty was stored)
    measured: float | None  # None: the sample failed
    failure_class: str | None = None


def parity_points(frame: pd.DataFrame) -> list[ParityPoint]:
    """Every batch sample with a prediction: measured, or failed with its class."""
    own = frame[frame["batch"].notna() & frame["predicted"].notna()]
    points = []
    for row in own.itertuples():
        measured = None if pd.isna(row.measured) else float(row.measured)
        if measured is None and not row.failed:
            continue  # no result yet
        std = 0.0 if pd.isna(row.predicted_std) else float(row.predicted_std)
        points.append(
            ParityPoint(
                int(row.batch), row.sample_id, float(row.predicted), Z_95 * std, measured,
                None if measured is not None else (row.failure_class or "failed"),
            )
        )  # fmt: skip
    return sorted(points, key=lambda p: (p.batch, p.sample_id))


def moved_parameters(frame: pd.DataFrame, space: DesignSpace) -> list[str]:
    """Parameters some batch set to a value other than the history's most common one."""
    history, batches = _groups(frame)[0][1], frame[frame["batch"].notna()]
    moved = []
    for name in space.columns:
        if name not in frame or batches[name].dropna().empty:
            continue
        habit = history[name].mode()
        if habit.empty or (batches[name].dropna() != habit.iloc[0]).any():
            moved.append(name)
    return moved


def category_shares(frame: pd.DataFrame, name: str) -> dict[str, dict[str, int]]:
    """Per group (history, B1, ...): how many recipes used each value of ``name``."""
    return {
        label: group[name].dropna().astype(str).value_counts().to_dict()
        for label, group in _groups(frame)
    }


def history_best(frame: pd.DataFrame) -> float | None:
    history = frame[frame["batch"].isna()]["measured"].dropna() if len(frame) else pd.Series()
    return None if history.empty else float(history.max())


# -- drawing ---------------------------------------------------------------------------


def draw_parity(points: Sequence[ParityPoint]) -> Figure:
    batches = sorted({p.batch for p in points}) or [0]
    # wide enough for the title with one batch; constrained layout keeps it off the panels
    figure = Figure(figsize=(max(3.6 * len(batches) + 0.8, 6.4), 4.2), layout="constrained")
    axes = figure.subplots(1, len(batches), squeeze=False, sharex=True, sharey=True)[0]
    values = [v for p in points for v in (p.predicted - p.half_95, p.predicted + p.half_95)]
    values += [p.measured for p in points if p.measured is not None]
    low, high = (min(values) - 3, max(values) + 3) if values else (150.0, 250.0)
    floor = low - 0.06 * (high - low)  # where failed samples sit: below every measurement
    for ax, number in zip(axes, batches, strict=True):
        own = [p for p in points if p.batch == number]
        ok = [p for p in own if p.measured is not None]
        ax.plot([low, high], [low, high], color="grey", linewidth=1)
        if ok:
            ax.errorbar([p.measured for p in ok], [p.predicted for p in ok],
                        yerr=[p.half_95 for p in ok], fmt="o", color="tab:blue", ecolor="0.6",
                        capsize=2, label="tested ok (95 % interval)")  # fmt: skip
        for failure_class, marker in FAILURE_MARKERS.items():
            failed = [p for p in own if p.failure_class == failure_class]
            if failed:
                ax.scatter([floor] * len(failed), [p.predicted for p in failed], marker=marker,
                           color="tab:red", label=f"failed: {failure_class}")  # fmt: skip
        mape = _mape(ok)
        title = f"batch {number}" + ("" if mape is None else f": MAPE {mape:.1f} %")
        ax.set_title(title if own else "no result yet")
        ax.set_xlabel("measured first discharge (mAh/g)")
        ax.axvline(floor + 0.03 * (high - low), color="0.85", linewidth=0.8)
    axes[0].set_ylabel("predicted (mAh/g)")
    axes[0].set_xlim(floor - 0.03 * (high - low), high)
    axes[0].set_ylim(low, high)
    legend = {
        label: handle
        for ax in axes
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    if legend:  # every kind of point shown in any batch, once
        axes[0].legend(legend.values(), legend.keys(), fontsize=7, loc="upper left")
    figure.suptitle("predicted vs measured, per batch (failed samples at the left edge)")
    return figure


def draw_parameters(frame: pd.DataFrame, space: DesignSpace, names: Sequence[str]) -> Figure:
    names = list(names) or ["(none)"]
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * rows), layout="constrained")
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    groups = _groups(frame)
    for ax, name in zip(axes, names, strict=False):
        if name not in frame:
            ax.set_title("no batch has moved a parameter yet")
            continue
        parameter = space.declared.get(name)
        if parameter is None or parameter.numeric:  # a derived value (mn_fraction) is a number
            _strip(ax, groups, name, space.label(name, note=False))
        else:
            _bars(ax, category_shares(frame, name), name)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    figure.suptitle("what the batches changed: the history (grey) against each batch")
    return figure


def draw_best(
    series: Sequence[float],
    numbers: Sequence[int],
    history: float | None,
    own_best: Sequence[float | None] = (),
) -> Figure:
    figure = Figure(figsize=(6, 3.6))
    ax = figure.subplots()
    if history is not None:
        ax.axhline(history, color="grey", linestyle="--", label=f"history's best {history:.1f}")
    measured = [(n, v) for n, v in zip(numbers, own_best, strict=False) if v is not None]
    if measured:
        ax.scatter(*zip(*measured, strict=True), color="0.55", s=18, zorder=3,
                   label="best measured in the batch")  # fmt: skip
    if series:
        ax.plot(numbers, series, marker="o", color="tab:blue", label="best found so far")
        ax.annotate(f"{series[-1]:.1f}", (numbers[-1], series[-1]), textcoords="offset points",
                    xytext=(0, 6), ha="center")  # fmt: skip
    ax.set_xlabel("batch")
    ax.set_ylabel("best first discharge (mAh/g)")
    ax.set_xticks(list(numbers))
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=100)
    return buffer.getvalue()


FIGURE_NAMES = ("best", "parity", "parameters")


def batch_figures(engine: Engine, space: DesignSpace, only: str | None = None) -> dict[str, Figure]:
    """The figures of a labloop home by name: all three, or ``only`` the one asked for (the
    page draws each on its own request)."""
    frame = experiments_frame(engine)
    best = history_best(frame)
    drawn: dict[str, Figure] = {}
    if only in (None, "best"):
        summaries = batch_summaries(engine)
        series = [s.best_so_far for s in summaries if s.best_so_far is not None]
        numbers = [s.number for s in summaries if s.best_so_far is not None]
        own_best = [s.measured_max for s in summaries if s.best_so_far is not None]
        drawn["best"] = draw_best(series, numbers, best, own_best)
    if only in (None, "parity"):
        drawn["parity"] = draw_parity(parity_points(frame))
    if only in (None, "parameters"):
        drawn["parameters"] = draw_parameters(frame, space, moved_parameters(frame, space))
    return drawn


def write_figures(engine: Engine, space: DesignSpace, folder: Path) -> list[Path]:
    """Write each figure as PNG and SVG into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in batch_figures(engine, space).items():
        for fmt in FORMATS:
            path = folder / f"{name}.{fmt}"
            path.write_bytes(figure_bytes(figure, fmt))
            written.append(path)
    return written


def _groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if not len(frame):
        return [("history", frame)]
    return [("history", frame[frame["batch"].isna()])] + [
        (f"B{int(b)}", frame[frame["batch"] == b]) for b in sorted(frame["batch"].dropna().unique())
    ]


def _strip(ax, groups, name: str, label: str) -> None:  # noqa: ANN001 - matplotlib Axes
    rng = np.random.default_rng(0)  # the same jitter every time: figures are reproducible
    for position, (group, data) in enumerate(groups):
        values = pd.to_numeric(data[name], errors="coerce").dropna().to_numpy()
        jitter = rng.uniform(-0.25, 0.25, len(values))
        colour = "0.6" if group == "history" else "tab:blue"
        ax.scatter(position + jitter, values, s=8 if group == "history" else 18,
                   alpha=0.35 if group == "history" else 0.9, color=colour)  # fmt: skip
    ax.set_xticks(range(len(groups)), [g for g, _ in groups])
    ax.set_ylabel(label)
    ax.set_title(name)


def _bars(ax, shares: dict[str, dict[str, int]], name: str) -> None:  # noqa: ANN001
    values = sorted({value for counts in shares.values() for value in counts})
    width = 0.8 / max(1, len(shares))
    for index, (group, counts) in enumerate(shares.items()):
        total = sum(counts.values()) or 1
        heights = [100 * counts.get(v, 0) / total for v in values]
        positions = np.arange(len(values)) + index * width
        colour = "0.6" if group == "history" else None
        bars = ax.bar(positions, heights, width, label=group, color=colour)
        ax.bar_label(bars, [str(counts.get(v, 0)) or "" for v in values], fontsize=6)
    ax.set_xticks(np.arange(len(values)) + 0.4 - width / 2, values)
    ax.set_ylabel("share of the group's recipes (%)\n(bar labels: counts)")
    ax.set_title(name)
    ax.legend(fontsize=7)


def _mape(points: Sequence[ParityPoint]) -> float | None:
    if not points:
        return None
    return float(np.mean([abs(p.predicted - p.measured) / p.measured for p in points]) * 100)
