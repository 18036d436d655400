"""The batch figures plot what the database holds: checked from the data behind them and
from what ends up on the axes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from sqlmodel import Session, select

from agent.loop.recipe_files import Z_95
from agent.reports.figures import (
    batch_figures,
    category_shares,
    draw_parameters,
    draw_parity,
    history_best,
    moved_parameters,
    parity_points,
    write_figures,
)
from agent.reports.per_batch import batch_summaries, experiments_frame
from agent.space.design import DesignSpace
from agent.store.db import Batch, BatchState, Experiment, Origin, Result

SPACE = DesignSpace.load()
BASE = {"ni_fraction": 0.90, "li_source": "LiOH", "atmosphere": "O2", "calcination_temp_c": 720}


def seed(engine) -> None:
    """History: 6 recipes at the habit (best 215); B1: Ni and temperature moved, one Li2CO3
    probe, one failed synthesis and one dead cell; B2: one result in so far."""
    with Session(engine) as session:
        for i in range(6):
            recipe = {**BASE, "ni_fraction": 0.88 + 0.01 * (i % 3)}
            session.add(Experiment(sample_id=f"H{i}", origin=Origin.HISTORICAL, parameters=recipe))
        for number in (1, 2):
            batch = Batch(number=number, state=BatchState.RUNNING, model_version=number)
            session.add(batch)
            session.flush()
            for slot in range(1, 6):
                recipe = {**BASE, "ni_fraction": 0.94, "calcination_temp_c": 700 + 5 * slot}
                if slot == 5:
                    recipe["li_source"] = "Li2CO3"
                session.add(Experiment(sample_id=f"B00{number}-S0{slot}", batch_id=batch.id,
                                       parameters=recipe, predicted_mah_g=220.0 + slot,
                                       predicted_std_mah_g=2.0, model_version=number))  # fmt: skip
        session.flush()
        ids = {e.sample_id: e.id for e in session.exec(select(Experiment)).all()}
        results = [("H0", 205.0), ("H1", 210.0), ("H2", 215.0), ("H3", 208.0), ("H4", 199.0),
                   ("H5", 212.0), ("B001-S01", 219.0), ("B001-S02", 224.0), ("B001-S03", 221.5),
                   ("B002-S01", 226.0)]  # fmt: skip
        for row, (sample, capacity) in enumerate(results):
            session.add(Result(experiment_id=ids[sample], outcome="ok", discharge_mah_g=capacity,
                               source_sha256="seed", source_row=row))  # fmt: skip
        for row, (sample, failure_class) in enumerate(
            [("B001-S04", "synthesis"), ("B001-S05", "cell")], start=len(results)
        ):
            session.add(Result(experiment_id=ids[sample], outcome="failed",
                               failure_class=failure_class, source_sha256="seed",
                               source_row=row))  # fmt: skip
        session.commit()


def test_parity_points_carry_intervals_and_failures(engine):
    seed(engine)
    points = parity_points(experiments_frame(engine))
    assert [(p.sample_id, p.measured, p.failure_class) for p in points] == [
        ("B001-S01", 219.0, None), ("B001-S02", 224.0, None), ("B001-S03", 221.5, None),
        ("B001-S04", None, "synthesis"), ("B001-S05", None, "cell"), ("B002-S01", 226.0, None),
    ]  # fmt: skip
    assert [p.half_95 for p in points] == pytest.approx([Z_95 * 2.0] * 6)


def test_parity_figure_shares_axes_and_marks_failures_below_every_measurement(engine):
    seed(engine)
    points = parity_points(experiments_frame(engine))
    figure = draw_parity(points)
    first, second = figure.axes[:2]
    assert first.get_shared_x_axes().joined(first, second)
    assert first.get_ylim() == second.get_ylim()
    bars = [c for c in first.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1 and len(bars[0].lines[0].get_xdata()) == 3  # three tested ok
    failed = [c for c in first.collections if isinstance(c, PathCollection)]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in failed])
    assert len(xs) == 2 and xs.max() < min(p.measured for p in points if p.measured)
    labels = first.get_legend_handles_labels()[1]
    assert {"failed: synthesis", "failed: cell"} <= set(labels)
    mape = np.mean([abs(221 - 219) / 219, abs(222 - 224) / 224, abs(223 - 221.5) / 221.5]) * 100
    assert first.get_title() == f"batch 1: MAPE {mape:.1f} %"


def test_the_parameter_figure_shows_what_the_batches_moved(engine):
    seed(engine)
    frame = experiments_frame(engine)
    moved = moved_parameters(frame, SPACE)
    assert {"ni_fraction", "calcination_temp_c", "li_source"} <= set(moved)
    assert "atmosphere" not in moved  # every batch kept the history's habit
    assert category_shares(frame, "li_source") == {
        "history": {"LiOH": 6}, "B1": {"LiOH": 4, "Li2CO3": 1}, "B2": {"LiOH": 4, "Li2CO3": 1},
    }  # fmt: skip
    figure = batch_figures(engine, SPACE)["parameters"]
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == moved
    temperature = figure.axes[moved.index("calcination_temp_c")]
    assert temperature.get_ylabel() == SPACE.label("calcination_temp_c")
    assert [t.get_text() for t in temperature.get_xticklabels()] == ["history", "B1", "B2"]


def test_derived_values_are_strips_and_unused_panels_are_hidden():
    """mn_fraction is no parameter of the space but a number: dots on its own axis, not a
    bar per float; four panels on a 2 x 3 grid leave two hidden."""
    frame = pd.DataFrame({
        "batch": [None, None, 1.0, 1.0],
        "mn_fraction": [0.04, 0.05, 0.01, 0.0],
        "ni_fraction": [0.92, 0.92, 0.95, 0.96],
        "li_source": ["LiOH", "LiOH", "LiOH", "Li2CO3"],
        "coating_temp_c": [450.0, 455.0, None, 380.0],  # blank: uncoated
    })  # fmt: skip
    names = ["ni_fraction", "mn_fraction", "li_source", "coating_temp_c"]
    figure = draw_parameters(frame, SPACE, names)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == names
    manganese = visible[1]
    assert not manganese.patches  # no bars
    dots = [c for c in manganese.collections if isinstance(c, PathCollection)]
    assert sorted(float(y) for c in dots for _, y in c.get_offsets()) == [0.0, 0.01, 0.04, 0.05]
    assert manganese.get_ylabel() == SPACE.label("mn_fraction")
    coating = visible[3]
    plotted = [float(y) for c in coating.collections for _, y in c.get_offsets()]
    assert sorted(plotted) == [380.0, 450.0, 455.0]  # the blank is left out, not drawn as 0


@pytest.mark.parametrize("fate", ["rejected", "awaiting approval"])
def test_a_batch_at_no_bench_is_in_no_figure(engine, fate):
    """A rejected batch was never made; a draft awaiting approval is not made yet."""
    seed(engine)
    with Session(engine) as session:
        batch = session.exec(select(Batch).where(Batch.number == 2)).one()
        if fate == "rejected":
            batch.state = BatchState.REJECTED
        else:
            batch.state, batch.approval_required = BatchState.PROPOSED, True
        session.add(batch)
        session.commit()
    frame = experiments_frame(engine)
    assert not frame["sample_id"].str.startswith("B002").any()
    assert set(frame["batch"].dropna()) == {1}
    assert [s.number for s in batch_summaries(engine)] == [1]
    figure = batch_figures(engine, SPACE)["parameters"]
    temperature = next(ax for ax in figure.axes if ax.get_title() == "calcination_temp_c")
    assert [t.get_text() for t in temperature.get_xticklabels()] == ["history", "B1"]


def test_best_so_far_starts_from_the_history(engine):
    seed(engine)
    frame = experiments_frame(engine)
    assert history_best(frame) == 215.0
    series = [s.best_so_far for s in batch_summaries(engine)]
    assert series == [224.0, 226.0]
    figure = batch_figures(engine, SPACE)["best"]
    ax = figure.axes[0]
    line = [line for line in ax.get_lines() if line.get_label() == "best found so far"][0]
    assert list(line.get_ydata()) == series
    history = [line for line in ax.get_lines() if line.get_label().startswith("history")][0]
    assert set(history.get_ydata()) == {215.0}


def test_write_figures_writes_png_and_svg(engine, tmp_path):
    seed(engine)
    written = write_figures(engine, SPACE, tmp_path / "report")
    assert sorted(p.name for p in written) == [
        "best.png", "best.svg", "parameters.png", "parameters.svg", "parity.png", "parity.svg",
    ]  # fmt: skip
    assert (tmp_path / "report" / "parity.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "report" / "best.svg").read_bytes()[:500]
