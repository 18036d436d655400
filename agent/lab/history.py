"""A biased historical record, like the years of one-factor-at-a-time data in the paper.

The shape (per 700 rows): 634 experiments at Ni 0.92 and 18 at 0.94, the rest at 0.88-0.91;
calcination temperature roughly Gaussian around the lab's habit; every sample boron-coated
near 450 °C (the habit, not the truth's optimum); several parameters never varied (LiOH, O2,
12 h, no Ti / Mg / B doping); poor results under-reported (a share of the worse experiments
was never measured) and half of the failed syntheses recorded as failed with a reason, the
other half left as an unmeasured row. Capacities come from the same truth, noise and
synthesis-failure model as `VirtualLab`.

Columns: ``sample_id`` (H00001 ...), the design-space parameters (``mn_fraction`` included),
``initial_discharge_mah_g``, ``status`` (ok | failed), ``reason``: the format of
``agent.loop.history_import.import_history``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from agent.lab.failures import NOISE_MAH_G, draw_synthesis
from agent.lab.truth import (
    BASELINE,
    HABITUAL_COATING_TEMP_C,
    Lab,
    optimal_calcination_c,
    true_capacity,
)
from agent.space.design import DesignSpace
from agent.store.files import write_atomic

log = logging.getLogger(__name__)

# experiments per Ni fraction in 700 rows (paper: 634 at ~92 % Ni, 18 at 94 %)
NI_COUNTS_PER_700 = {0.88: 8, 0.89: 10, 0.90: 22, 0.91: 8, 0.92: 634, 0.94: 18}
# the habits: values never varied
ONE_VALUE = {
    "li_source": "LiOH",
    "calcination_time_h": 12.0,
    "atmosphere": "O2",
    "dopant_ti": 0.0,
    "dopant_mg": 0.0,
    "dopant_b": 0.0,
    "coating_material": "B",
}
UNMEASURED_POOR = 0.45  # chance that a result in the worst 30 % of its Ni group was never measured
UNMEASURED_OTHER = 0.03
FAILED_RECORDED = 0.5  # share of failed syntheses written down as failed


def _ni_column(n: int, rng: np.random.Generator) -> np.ndarray:
    counts = {ni: round(c * n / 700) for ni, c in NI_COUNTS_PER_700.items()}
    counts[0.92] += n - sum(counts.values())
    return rng.permutation(np.repeat(list(counts), list(counts.values())))


def _snap(space: DesignSpace, name: str, values: np.ndarray) -> np.ndarray:
    """Values rounded to the parameter's grid and clipped to its range."""
    p = space.parameters[name]
    steps = np.clip(np.rint((np.asarray(values, float) - p.low) / p.step), 0, p.n_steps)
    return np.array([p.at(int(k)) for k in steps])


def _recipes(space: DesignSpace, n: int, rng: np.random.Generator, lab: Lab) -> pd.DataFrame:
    ni = _ni_column(n, rng)
    # Co/Mn split habitually even, a few samples one step either way
    co = (1.0 - ni) / 2.0 + rng.choice([-0.01, 0.0, 0.01], n, p=[0.05, 0.9, 0.05])
    # the calcination habit: a little hot, from the Ni 0.90 days (baseline lab: 740 °C, and
    # 730 °C for the few Ni 0.94 samples)
    times = np.full(n, lab.history_times_h[0])
    if len(lab.history_times_h) > 1:  # drawn only when varied: the baseline stays as it was
        times = rng.choice(lab.history_times_h, n)
    optimum = optimal_calcination_c(np.where(ni >= 0.94, 0.94, 0.92), "LiOH", times, lab)
    calcination = optimum + np.where(ni >= 0.94, 20.0, 10.0) + rng.normal(0.0, 15.0, n)
    zr = np.clip(rng.normal(0.002, 0.0006, n), 5e-4, 0.0035)
    coating_amount = np.clip(rng.normal(0.002, 0.0004, n), 0.001, 0.003)
    coating_c = rng.normal(HABITUAL_COATING_TEMP_C, 6.0, n)
    columns = {
        "ni_fraction": ni,
        "co_fraction": _snap(space, "co_fraction", np.clip(co, 0.0, 1.0 - ni)),
        "li_ratio": _snap(space, "li_ratio", rng.normal(1.03, 0.012, n)),
        "calcination_temp_c": _snap(space, "calcination_temp_c", calcination),
        "dopant_zr": _snap(space, "dopant_zr", zr),
        "dopant_al": rng.choice([0.0, 0.0005, 0.001, 0.0015], n, p=[0.5, 0.2, 0.2, 0.1]),
        "dopant_nb": rng.choice([0.0, 0.001, 0.002], n, p=[0.92, 0.05, 0.03]),
        "coating_amount": _snap(space, "coating_amount", coating_amount),
        "coating_temp_c": _snap(space, "coating_temp_c", coating_c),
        "coating_time_h": rng.choice([3.0, 4.0, 5.0], n, p=[0.2, 0.6, 0.2]),
    }
    one_value = {k: v for k, v in ONE_VALUE.items() if k != "calcination_time_h"}
    frame = pd.DataFrame(
        columns | {"calcination_time_h": times} | {k: [v] * n for k, v in one_value.items()}
    )
    for d in space.derived:
        frame[d.name] = d.compute(frame)
    return frame[list(space.columns)]


def _poor(frame: pd.DataFrame, measured: np.ndarray) -> np.ndarray:
    """True for results in the worst 30 % of their Ni group."""
    rank = pd.Series(measured).groupby(frame["ni_fraction"].to_numpy()).rank(pct=True)
    return rank.to_numpy() <= 0.3


def generate_history(
    seed: int, n: int = 700, space: DesignSpace | None = None, lab: Lab = BASELINE
) -> pd.DataFrame:
    """``n`` past experiments of ``lab`` in the history-import format, seeded."""
    space = space or DesignSpace.load()
    rng = np.random.default_rng(seed)
    frame = _recipes(space, n, rng, lab)
    measured = np.round(true_capacity(frame, lab) + rng.normal(0.0, NOISE_MAH_G, n), 1)
    reasons = draw_synthesis(frame, rng, lab)
    failed = np.array([r is not None for r in reasons])
    unmeasured = rng.random(n) < np.where(_poor(frame, measured), UNMEASURED_POOR, UNMEASURED_OTHER)
    recorded_failed = failed & (rng.random(n) < FAILED_RECORDED)
    frame.insert(0, "sample_id", [f"H{i:05d}" for i in range(1, n + 1)])
    frame["initial_discharge_mah_g"] = np.where(failed | unmeasured, np.nan, measured)
    frame["status"] = np.where(recorded_failed, "failed", "ok")
    frame["reason"] = [r if f else "" for r, f in zip(reasons, recorded_failed, strict=True)]
    return frame


def write_history(path: Path, seed: int = 0, n: int = 700, lab: Lab = BASELINE) -> Path:
    """Generate the history and write it as CSV to ``path`` (atomically)."""
    frame = generate_history(seed, n, lab=lab)
    out = io.StringIO()
    frame.to_csv(out, index=False, lineterminator="\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, out.getvalue().encode("utf-8"))
    log.info("history: %d rows (seed %d) -> %s", n, seed, path)
    return path
