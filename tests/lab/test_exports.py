"""Every file the lab writes reads back through labloop's own readers as the lab intended."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.cycler import FailureClass, FirstCycle, Outcome, read_export
from agent.inbox.classify import CellTest, Protocol, classify_cycle, from_sheet_row
from agent.inbox.masses import MassBook, read_masses
from agent.lab import FORMATS, CellRun, Kind, VirtualLab, update_masses, write_export
from agent.lab.exports import build_trace, write_result_sheet
from agent.space.design import DesignSpace

SPACE = DesignSpace.load()
EXPECTED_CLASS = {
    Kind.SHORT: (FailureClass.CELL, "short circuit"),
    Kind.NO_DISCHARGE: (FailureClass.CELL, "no discharge"),
    Kind.DEAD: (FailureClass.CELL, "dead cell"),
    Kind.ABORTED: (FailureClass.MEASUREMENT, "test aborted"),
}
RUNS = {
    Kind.OK: CellRun(Kind.OK, 14.53, 262.4, 228.71, second_cycle=True),
    Kind.SHORT: CellRun(Kind.SHORT, 14.87, 402.3, None),
    Kind.NO_DISCHARGE: CellRun(Kind.NO_DISCHARGE, 14.21, 251.0, None),
    Kind.DEAD: CellRun(Kind.DEAD, 15.02, 0.31, 0.12),
    Kind.ABORTED: CellRun(Kind.ABORTED, 14.40, 249.9, 121.3, discharge_fraction=0.55),
}


def judge(path: Path, sample_id: str) -> CellTest:
    """What labloop makes of the file: read, mass from the file or the inbox's masses.csv."""
    export = read_export(path)
    if not isinstance(export, FirstCycle):
        (row,) = export
        return from_sheet_row(row, "result-sheet")
    mass, source = MassBook(read_masses(path.parent / "masses.csv")).resolve(export, sample_id)
    return classify_cycle(export, sample_id, mass, source, Protocol())


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", list(RUNS))
def test_each_signature_reads_back_and_is_classified(tmp_path, fmt, kind):
    run = RUNS[kind]
    update_masses(tmp_path / "masses.csv", {"B007-S03": run.active_mass_mg})
    path = write_export(run, "B007-S03", fmt, tmp_path, channel=41)
    test = judge(path, "B007-S03")
    assert test.charge_mah_g == pytest.approx(run.charge_mah_g, abs=0.1)
    if run.discharge_mah_g is None:
        assert test.discharge_mah_g is None
    else:
        assert test.discharge_mah_g == pytest.approx(run.discharge_mah_g, abs=0.1)
    if kind is Kind.OK:
        assert (test.outcome, test.reason) == (Outcome.OK, None)
    else:
        failure_class, reason = EXPECTED_CLASS[kind]
        assert test.outcome is Outcome.FAILED and test.failure_class is failure_class
        assert reason in test.reason
    assert test.mass_source.value == ("file" if FORMATS[fmt].mass_in_file else "sidecar")


def test_synthesis_failure_is_a_result_sheet_row(tmp_path):
    reason = "sintered during calcination, no powder to test"
    test = judge(write_result_sheet("B007-S04", reason, tmp_path), "B007-S04")
    assert (test.sample_id, test.outcome, test.reason) == ("B007-S04", Outcome.FAILED, reason)
    assert test.failure_class is FailureClass.SYNTHESIS


@pytest.mark.parametrize("seed", range(6))
def test_lab_batches_read_back_to_the_intended_numbers(tmp_path, seed):
    recipes = SPACE.random(12, seed)
    ids = [f"B{seed + 1:03d}-S{i:02d}" for i in range(1, 13)]
    lab = VirtualLab(seed)
    fmt = list(FORMATS)[seed % 4]  # each format in full, then mixed batches
    paths = lab.run_batch(ids, recipes, tmp_path, rng_format=None if seed >= 4 else fmt)
    outcomes = lab.test(recipes, ids)  # keyed by sample id: the same outcomes again
    for sample_id, path, outcome in zip(ids, paths, outcomes, strict=True):
        assert path.name.startswith(sample_id)
        test = judge(path, sample_id)
        if outcome.kind is Kind.SYNTHESIS_FAILED:
            assert test.failure_class is FailureClass.SYNTHESIS and test.reason == outcome.reason
            continue
        assert test.charge_mah_g == pytest.approx(outcome.charge_mah_g, abs=0.1)
        if outcome.kind is Kind.OK:
            assert test.outcome is Outcome.OK
            assert test.discharge_mah_g == pytest.approx(outcome.measured_mah_g, abs=0.1)
        else:
            assert test.failure_class is EXPECTED_CLASS[outcome.kind][0]


def test_curves_have_the_protocols_shape():
    trace = build_trace(RUNS[Kind.OK])
    first = trace.cycle == 1
    charge = trace.voltage_v[first & (trace.state == "C")]
    discharge = trace.voltage_v[first & (trace.state == "D")]
    assert np.all(np.diff(charge) > 0) and charge[-1] == pytest.approx(4.25)
    assert np.all(np.diff(discharge) < 0) and discharge[-1] == pytest.approx(2.75)
    assert 3.5 < charge[0] < 3.7 and 4.1 < discharge[0] < 4.2
    assert 150 < len(charge) < 600 and 150 < len(discharge) < 600
    # Ni-rich shape: half the discharge capacity is delivered above 3.75 V, the last 5 % below 3.5
    assert discharge[len(discharge) // 2] > 3.75 and discharge[int(0.95 * len(discharge))] < 3.5
    current = trace.current_ma[first & (trace.state == "C")][0]
    assert current == pytest.approx(21.0 * 14.53 / 1000)  # 0.1C, 1C = 210 mAh/g


def test_masses_are_merged_atomically_keeping_other_rows(tmp_path):
    path = tmp_path / "masses.csv"
    path.write_text("sample_id,active_mass_mg,note\nB001-S01,14.10,by hand\nB001-S02,14.20,\n")
    update_masses(path, {"B001-S02": 15.0, "B002-S01": 13.876})
    assert path.read_text().splitlines() == [
        "sample_id,active_mass_mg,note",
        "B001-S01,14.10,by hand",
        "B001-S02,15.00,",
        "B002-S01,13.88,",
    ]
    assert read_masses(path) == {"B001-S01": 14.1, "B001-S02": 15.0, "B002-S01": 13.88}
    assert [p.name for p in tmp_path.iterdir()] == ["masses.csv"]  # no temp file left
