"""Real exports judged end to end: one verdict per file, whatever active mass it is given.

The masses run from 0.1 mg to 10 g: a verdict that changes with the mass is what these tests
guard against (each of the failing files below was stored as ok at some mass, or changed its
reason with it). Expected capacities are worked out from the file, not by the reader.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from galvani import BioLogic

from agent.cycler import FailureClass, FirstCycle, MassSource, Outcome, read_export
from agent.inbox.classify import CellTest, Protocol, classify_cycle

MASSES_MG = (0.1, 1.0, 10.0, 100.0, 1000.0, 2000.0, 10000.0)


def judge(path: Path, mass_mg: float, protocol: Protocol | None = None) -> CellTest:
    cycle = read_export(path)
    assert isinstance(cycle, FirstCycle)
    return classify_cycle(cycle, "B001-S01", mass_mg, MassSource.SIDECAR, protocol or Protocol())


@pytest.mark.parametrize("mass_mg", MASSES_MG)
@pytest.mark.parametrize(
    ("relative", "failure_class", "words"),
    [
        # charge to 4.7 V, discharge 4.34 -> 3.90 V, CE 14.66: ok from 1.1 to 6.6 g before
        ("neware/nw_regular_export_ife_example.csv", FailureClass.MEASUREMENT,
         "first discharge stopped at 3.900 V, more than 0.2 V above the 2.75 V cutoff"),
        # a 3.0 V discharge cutoff, CE 1.59: ok at 10 g before
        ("biologic/test_loopsnewoutput_MB_CE1_short10k.csv", FailureClass.MEASUREMENT,
         "first discharge stopped at 3.000 V"),
        # Si/C against Li, 0.13 -> 1.00 V: "short circuit" below ~17 mg, "no discharge" above
        ("biologic/biol.mpr", FailureClass.MEASUREMENT,
         "highest 1.000 V): an anode half cell, not a cathode first-cycle test"),
        # an anode half cell that discharges first: 4.68 mAh before a charge of 4.249 mAh
        ("neware/neware_uio.csv", FailureClass.MEASUREMENT,
         "discharges first, 4.68 mAh before a first charge of 4.249 mAh (110%"),
        ("arbin/FastCharge_000025_CH8.csv", FailureClass.UNTESTED,
         "no charge and no discharge in the file (rest): the cycling test has not run yet"),
        ("maccor/maccor_test_file_4267-66-6519.041", FailureClass.UNTESTED,
         "no charge and no discharge in the file (impedance, other, rest)"),
    ],
)  # fmt: skip
def test_real_export_gets_one_verdict_whatever_the_mass(
    cycler_files: Path, relative: str, failure_class: FailureClass, words: str, mass_mg: float
) -> None:
    test = judge(cycler_files / relative, mass_mg)
    assert (test.outcome, test.failure_class) == (Outcome.FAILED, failure_class)
    assert words in test.reason


def test_neware_export_with_coulombic_efficiency_14_66_is_not_ok(cycler_files: Path) -> None:
    # step layer (test_cycler_real_files): CC Chg 0.02256 Ah, CC DChg 0.33067 Ah
    test = judge(cycler_files / "neware" / "nw_regular_export_ife_example.csv", 2000.0)
    assert test.coulombic_efficiency == pytest.approx(0.33067 / 0.02256)
    assert test.outcome is Outcome.FAILED


def test_real_cells_that_were_ok_stay_ok(cycler_files: Path, local_data: Path) -> None:
    # maccor_002.txt on its own protocol (3.8-1.3 V): 2.44213 mAh in, 2.25098 mAh out
    own = Protocol(charge_cutoff_v=3.8, discharge_cutoff_v=1.3)
    maccor = judge(cycler_files / "maccor" / "maccor_002.txt", 10.0, own)
    assert (maccor.outcome, maccor.reason) == (Outcome.OK, None)
    assert maccor.discharge_mah_g == pytest.approx(225.098)
    # the hand-made NCM coin cell: 2.3601 mAh to 4.3 V, 2.0301 mAh down to 2.75 V
    arbin = judge(local_data / "arbin_mits_first_cycle.csv", 10.0)
    assert (arbin.outcome, arbin.reason) == (Outcome.OK, None)
    assert arbin.discharge_mah_g == pytest.approx(203.01)


def test_conditioning_discharge_of_a_real_cathode_test_is_skipped(gcpl_files: Path) -> None:
    path = gcpl_files / "gcpl.issue_175.mpr"
    data = BioLogic.MPRfile(str(path)).data
    frame = pd.DataFrame({name: data[name] for name in ("half cycle", "Ewe/V")})
    frame["q"] = data["Q charge/discharge/mA.h"]
    # half cycle 0: rest at open circuit, then the conditioning discharge; 1: the first charge
    # (to 4.2 V); 2: the first discharge (to 2.0 V). The counter restarts each half cycle.
    passed = frame.groupby("half cycle")["q"].last()
    conditioning, charge, discharge = -passed[0], passed[1], -passed[2]
    assert conditioning / charge == pytest.approx(0.0159, abs=1e-4)
    assert frame["Ewe/V"].iloc[0] == pytest.approx(2.774, abs=1e-3)  # a pristine cathode

    test = judge(path, 3.0, Protocol(charge_cutoff_v=4.2, discharge_cutoff_v=2.0))

    assert (test.outcome, test.reason) == (Outcome.OK, None)
    assert test.charge_mah_g == pytest.approx(charge / 0.003, rel=1e-6)
    assert test.discharge_mah_g == pytest.approx(discharge / 0.003, rel=1e-6)
