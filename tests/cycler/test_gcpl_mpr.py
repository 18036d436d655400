"""BioLogic GCPL .mpr files: no current column, so the reader derives it from the charge passed.

The real files are yadg's GCPL test data (GPL-3.0): read from ../shared beside the repo and
skipped when it is absent. The synthetic tests below need nothing but this file.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from galvani import BioLogic

from agent.cycler import FirstCycle, ReadError, biologic, read_export
from agent.cycler.biologic import current_from_charge

# measured: the .mpr and the .mpt of each run give the same capacities to ~1e-15 (the .mpt
# prints 16 significant digits); 1e-9 leaves room for the order of summation, nothing more
REL = 1e-9
# Ewe/V is float32 in the .mpr and printed with 8 significant digits in the .mpt
VOLT = 1e-6


def _read(path: Path) -> FirstCycle:
    result = read_export(path)
    assert isinstance(result, FirstCycle)
    return result


def _mpt_table(path: Path) -> pd.DataFrame:
    """The data table of an EC-Lab .mpt, with its decimal mark (issue 149 writes commas)."""
    lines = path.read_text(encoding="latin-1").splitlines()
    header_lines = int(lines[1].split(":")[1])
    decimal = "," if "," in lines[header_lines] else "."
    return pd.read_csv(
        path, sep="\t", skiprows=header_lines - 1, encoding="latin-1", decimal=decimal
    )


@pytest.mark.parametrize("run", ["gcpl.issue_149", "gcpl.issue_211", "gcpl.issue_226.I"])
def test_gcpl_mpr_first_cycle_agrees_with_its_mpt(gcpl_files: Path, run: str) -> None:
    mpr_path, mpt_path = gcpl_files / f"{run}.mpr", gcpl_files / f"{run}.mpt"
    assert "I/mA" not in (BioLogic.MPRfile(str(mpr_path)).data.dtype.names or ())
    # the reference, from the .mpt's own counters: Q charge at the end of the first half cycle
    # that charges, Q discharge at the end of the half cycle after it
    table = _mpt_table(mpt_path)
    half = table["half cycle"]
    first = half[table["Q charge/mA.h"] > 0].iloc[0]
    charge_mah = table.loc[half == first, "Q charge/mA.h"].max()
    discharge_mah = table.loc[half == first + 1, "Q discharge/mA.h"].max()

    from_mpr, from_mpt = _read(mpr_path), _read(mpt_path)

    assert from_mpr.format_name == "biologic-mpr"
    for cycle in (from_mpr, from_mpt):
        assert cycle.charge is not None and cycle.discharge is not None
        assert cycle.charge.capacity_mah == pytest.approx(charge_mah, rel=REL)
        assert cycle.discharge.capacity_mah == pytest.approx(discharge_mah, rel=REL)
        assert not cycle.discharge_first
        assert cycle.discharge_after_charge is None
    assert from_mpr.charge is not None and from_mpt.charge is not None
    assert from_mpr.discharge is not None and from_mpt.discharge is not None
    pairs = ((from_mpr.charge, from_mpt.charge), (from_mpr.discharge, from_mpt.discharge))
    for mpr_step, mpt_step in pairs:
        assert mpr_step.capacity_mah == pytest.approx(mpt_step.capacity_mah, rel=REL)
        assert mpr_step.rows == mpt_step.rows
        assert mpr_step.completed == mpt_step.completed
        for volts in ("start_v", "end_v", "max_v", "min_v"):
            assert getattr(mpr_step, volts) == pytest.approx(getattr(mpt_step, volts), abs=VOLT)
    assert from_mpr.other_steps == from_mpt.other_steps
    assert from_mpr.rows_read == from_mpt.rows_read


def test_gcpl_mpr_that_discharges_from_open_circuit_first(gcpl_files: Path) -> None:
    # issue 175 has no .mpt: the reference is the instrument's own per-half-cycle counter
    mpr = BioLogic.MPRfile(str(gcpl_files / "gcpl.issue_175.mpr"))
    counter = pd.Series(mpr.data["Q charge/discharge/mA.h"])
    half = pd.Series(mpr.data["half cycle"])
    discharge_mah = -counter[half == 0].min()  # about 0.00866 mAh from OCV to 2.0 V
    charge_mah = counter[half == 1].max()  # about 0.545 mAh up to 4.2 V
    after_charge_mah = -counter[half == 2].min()  # about 0.482 mAh back down to 2.0 V

    cycle = _read(gcpl_files / "gcpl.issue_175.mpr")

    assert cycle.discharge_first
    assert cycle.discharge is not None and cycle.charge is not None
    assert cycle.discharge.capacity_mah == pytest.approx(discharge_mah, rel=REL)
    # the reader sums the steps of (Q-Qo)/mA.h, which this file accumulates a little apart from
    # its Q charge/discharge counter: 0.54496558 against 0.54496557 mAh (1.8e-8 relative)
    assert cycle.charge.capacity_mah == pytest.approx(charge_mah, rel=1e-7)
    assert cycle.discharge.end_v == pytest.approx(2.0, abs=1e-3)
    assert cycle.charge.max_v == pytest.approx(4.2, abs=1e-3)
    # the discharge after the charge is read too, to its end
    after = cycle.discharge_after_charge
    assert after is not None and after.completed
    assert after.capacity_mah == pytest.approx(after_charge_mah, rel=1e-7)
    assert after.end_v == pytest.approx(2.0, abs=1e-3)
    # half cycle 2 is the discharge (every row passing charge out), then a rest at open circuit
    passed = pd.Series(mpr.data["dq/mA.h"])[half == 2]
    discharging = int((passed < 0).sum())
    assert (passed.iloc[:discharging] < 0).all() and (passed.iloc[discharging:] == 0).all()
    assert after.rows == discharging


def test_current_from_charge_is_the_mean_current_of_each_interval() -> None:
    time_s = [0.0, 10.0, 20.0, 20.0, 30.0, 25.0]
    charge_mah = [0.0, 1e-3, -2e-3, 1e-6, 0.0, 0.0]

    current = current_from_charge(time_s, charge_mah)

    assert current[0] == 0.0  # the first row has no interval and passed nothing
    assert current[1] == pytest.approx(0.36)  # 1 µAh in 10 s is 0.36 mA
    assert current[2] == pytest.approx(-0.72)
    assert current[3] > 1e300  # no time passed: only the sign is left, and it is kept
    assert current[4] == 0.0
    assert current[5] == 0.0  # a clock going backwards with no charge: no current


def _gcpl_rows(columns: tuple[str, ...]) -> np.ndarray:
    """Rest, three rows charging at 0.5 mA, three discharging at 0.5 mA, rest (360 s a row)."""
    time_s = np.arange(9) * 360.0
    dq = np.array([0.0, 0.0, 0.05, 0.05, 0.05, -0.05, -0.05, -0.05, 0.0])
    values = {
        "time/s": time_s,
        "Ewe/V": np.array([3.0, 3.0, 3.6, 3.9, 4.2, 4.0, 3.4, 2.8, 3.1]),
        "control/V/mA": np.sign(dq) * 0.5,
        "dq/mA.h": dq,
        "(Q-Qo)/mA.h": np.cumsum(dq),
    }
    dtype = [(name, "<f8") for name in columns]
    return np.array(list(zip(*(values[name] for name in columns), strict=True)), dtype=dtype)


@pytest.mark.parametrize(
    "columns",
    [
        ("time/s", "control/V/mA", "Ewe/V", "dq/mA.h", "(Q-Qo)/mA.h"),
        ("time/s", "control/V/mA", "Ewe/V", "(Q-Qo)/mA.h"),  # current from the net counter
    ],
)
def test_mpr_without_a_current_column_reads_its_first_cycle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, columns: tuple[str, ...]
) -> None:
    rows = _gcpl_rows(columns)
    # galvani stood in for: what it gives for a GCPL .mpr (no flags column, so no mode asked)
    monkeypatch.setattr(biologic.BioLogic, "MPRfile", lambda _: SimpleNamespace(data=rows))

    cycle = biologic.read_mpr(tmp_path / "B001-S01.mpr")

    assert cycle.charge is not None and cycle.discharge is not None
    assert cycle.charge.capacity_mah == pytest.approx(0.15)
    assert cycle.discharge.capacity_mah == pytest.approx(0.15)
    assert (cycle.charge.rows, cycle.discharge.rows) == (3, 3)
    assert (cycle.charge.max_v, cycle.discharge.end_v) == (4.2, 2.8)
    assert cycle.other_steps == {"rest"}


def test_mpr_without_current_or_time_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = _gcpl_rows(("Ewe/V", "(Q-Qo)/mA.h"))
    monkeypatch.setattr(biologic.BioLogic, "MPRfile", lambda _: SimpleNamespace(data=rows))
    with pytest.raises(ReadError, match=r"biologic-mpr: missing column\(s\): i/ma or <i>/ma"):
        biologic.read_mpr(tmp_path / "B001-S01.mpr")
