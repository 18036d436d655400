"""First-cycle capacity from a 1,000,000-row Arbin export: labloop's streaming reader vs
`pandas.read_csv` of the whole file (what a user would write), in one run, as a ratio.

    .venv/bin/python benchmarks/reader_first_cycle.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agent.cycler import read_export

HEADER = ("Data_Point,Test_Time(s),Step_Time(s),Cycle_Index,Step_Index,Current(A),Voltage(V),"
          "Charge_Capacity(Ah),Discharge_Capacity(Ah)")  # fmt: skip
STEP_ROWS = 500  # rows per charge or discharge step: ~10 s sampling of a 0.1C step


def write_export(path: Path, rows: int) -> None:
    """A coin cell cycled at 0.1C: 14.9 mg, 3.13 mAh charge, 2.80 mAh discharge per cycle."""
    index = np.arange(rows)
    step_in_cycle = (index // STEP_ROWS) % 2  # 0 charge, 1 discharge
    cycle = index // (2 * STEP_ROWS) + 1
    fraction = (index % STEP_ROWS + 1) / STEP_ROWS
    charging = step_in_cycle == 0
    current = np.where(charging, 0.000313, -0.000313)
    voltage = np.where(charging, 3.6 + 0.65 * fraction, 4.2 - 1.45 * fraction)
    charge_ah = np.where(charging, 0.00313 * fraction, 0.00313)
    discharge_ah = np.where(charging, 0.0, 0.00280 * fraction)
    frame = pd.DataFrame({
        "Data_Point": index + 1, "Test_Time(s)": index * 10.0,
        "Step_Time(s)": (index % STEP_ROWS) * 10.0, "Cycle_Index": cycle,
        "Step_Index": 2 * (cycle - 1) + step_in_cycle + 1, "Current(A)": current,
        "Voltage(V)": voltage.round(5), "Charge_Capacity(Ah)": charge_ah.round(8),
        "Discharge_Capacity(Ah)": discharge_ah.round(8),
    })  # fmt: skip
    frame.to_csv(path, index=False, header=HEADER.split(","))


def with_pandas(path: Path) -> float:
    """The obvious alternative: load everything, take cycle 1's discharging rows."""
    frame = pd.read_csv(path)
    first = frame[(frame["Cycle_Index"] == 1) & (frame["Current(A)"] < 0)]
    return float(first["Discharge_Capacity(Ah)"].max() * 1000)


def with_labloop(path: Path) -> float:
    return read_export(path).discharge.capacity_mah


def timed(function, path: Path, repeat: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        value = function(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "B001-S01.csv"
        write_export(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        ours, ours_value = timed(with_labloop, path, args.repeat)
        theirs, their_value = timed(with_pandas, path, args.repeat)
    assert abs(ours_value - their_value) < 1e-6, (ours_value, their_value)
    print(f"{args.rows} rows, {size_mb:.0f} MB; first discharge {ours_value:.4f} mAh (both)")
    print(f"{'reader':<28} {'median s':>9}")
    print(f"{'labloop read_export':<28} {ours:>9.4f}")
    print(f"{'pandas.read_csv + filter':<28} {theirs:>9.4f}")
    print(f"speed-up: {theirs / ours:.0f}x")


if __name__ == "__main__":
    main()
