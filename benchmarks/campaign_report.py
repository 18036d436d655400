"""Tables (Markdown) and the figure of the campaign benchmark, from its table of trials.

``frame`` has one row per experiment (`benchmarks.campaign.trials_frame`): method, seed,
batch, status (ok, synthesis, cell, measurement), true_mah_g, measured_mah_g,
predicted_mah_g. Definitions of every number are
in `benchmarks.campaign`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmarks.metrics import (
    Factor,
    acceleration_factor,
    batches_to_final_gain,
    batches_to_within,
    best_so_far,
    enhancement_factor,
    mape,
    median_batches_to_hit,
    median_improvement,
    quartiles,
    regret,
)

EF_AT = (1, 3, 6)
FAILURE_CLASSES = ("synthesis", "cell", "measurement")


def curves(
    frame: pd.DataFrame, baselines: Mapping[int, float], method: str, batches: int
) -> np.ndarray:
    """best(0..B) of ``method``, one row per seed (seeds in ``baselines`` order)."""
    ok = frame[(frame["method"] == method) & (frame["status"] == "ok")]
    best = ok.groupby(["seed", "batch"])["true_mah_g"].max()
    rows = []
    for seed, baseline in baselines.items():
        per_batch = [best.get((seed, b), -np.inf) for b in range(1, batches + 1)]
        rows.append(best_so_far(baseline, per_batch))
    return np.array(rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _spread(values: np.ndarray) -> str:
    median, low, high = quartiles(values)
    return f"{median:.1f} [{low:.1f}–{high:.1f}]"


def best_table(all_curves: Mapping[str, np.ndarray]) -> str:
    batches = next(iter(all_curves.values())).shape[1]
    rows = [[label, *(_spread(c[:, n]) for n in range(batches))] for label, c in all_curves.items()]
    return _table(["method", *(f"batch {n}" for n in range(batches))], rows)


def speed_table(
    all_curves: Mapping[str, np.ndarray],
    random: str,
    optimum: float,
    random_hit: Callable[[float], float],
    batch_size: int,
) -> str:
    reference = all_curves[random]
    last = reference.shape[1] - 1
    at = [n for n in EF_AT if n <= last]
    rows = []
    for label, c in all_curves.items():
        regrets = np.array([regret(row, optimum) for row in c])
        within = np.array([batches_to_within(row, optimum) for row in c])
        median_within = np.median(within)
        reached = f"{np.isfinite(within).sum()}/{len(within)} seeds"
        when = f"not within {last}" if np.isinf(median_within) else f"{median_within:g}"
        gain = median_improvement(c)[-1]
        # random's batches to the method's median final best, from its exact hit rate
        needed = median_batches_to_hit(random_hit(float(np.median(c[:, -1]))), batch_size)
        extrapolated = Factor(needed / batches_to_final_gain(c)) if gain > 0 else Factor(np.nan)
        rows.append([
            label, _spread(regrets), f"{when} ({reached})", f"{gain:.1f}",
            *(str(enhancement_factor(c, reference, n)) for n in at),
            str(acceleration_factor(c, reference)),
            f"{needed:g}" if gain > 0 else "n/a", str(extrapolated),
        ])  # fmt: skip
    header = [
        "method", f"regret after {last} (mAh/g)", "batches to within 1 mAh/g",
        f"median gain after {last} (mAh/g)", *(f"EF({n})" for n in at), "AF",
        "random needs (batches, extrapolated)", "AF (extrapolated)",
    ]  # fmt: skip
    return _table(header, rows)


def failure_table(frame: pd.DataFrame, labels: Mapping[str, str]) -> str:
    rows = []
    for method, label in labels.items():
        status = frame.loc[frame["method"] == method, "status"]
        shares = [(status == c).mean() * 100 for c in FAILURE_CLASSES]
        rows.append([label, str(len(status)), f"{(status != 'ok').mean() * 100:.1f}",
                     *(f"{v:.1f}" for v in shares)])  # fmt: skip
    return _table(["method", "experiments", "failed %", *(f"{c} %" for c in FAILURE_CLASSES)], rows)


def prediction_table(frame: pd.DataFrame, labels: Mapping[str, str], batches: int) -> str:
    """MAPE on own proposals that tested ok, all batches and per batch, and the mean bias."""
    rows = []
    for method, label in labels.items():
        own = frame[(frame["method"] == method) & (frame["status"] == "ok")]
        own = own[own["predicted_mah_g"].notna()]
        if own.empty:
            continue
        per_batch = [own[own["batch"] == b] for b in range(1, batches + 1)]
        bias = (own["predicted_mah_g"] - own["measured_mah_g"]).mean()
        rows.append([
            label, f"{mape(own['predicted_mah_g'], own['measured_mah_g']):.2f}",
            *(f"{mape(b['predicted_mah_g'], b['measured_mah_g']):.2f}" for b in per_batch),
            f"{bias:+.2f}",
        ])  # fmt: skip
    header = ["method", "MAPE %", *(f"batch {b}" for b in range(1, batches + 1))]
    return _table(header + ["predicted − measured (mAh/g)"], rows)


def calibration_table(frame: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """How often the measured capacity of an own proposal that tested ok fell inside its
    stated 68 % (± 1 sigma) and 95 % (± 1.96 sigma) interval, and how far predictions
    within one batch spread (a batch of ten equal predictions is ten copies of one bet)."""
    rows = []
    for method, label in labels.items():
        own = frame[frame["method"] == method]
        if "predicted_std_mah_g" not in own or own["predicted_std_mah_g"].isna().all():
            continue
        ok = own[(own["status"] == "ok") & own["predicted_std_mah_g"].notna()]
        z = ((ok["measured_mah_g"] - ok["predicted_mah_g"]) / ok["predicted_std_mah_g"]).abs()
        spread = own.groupby(["seed", "batch"])["predicted_mah_g"].agg(lambda v: v.max() - v.min())
        flat = int((spread < 0.05).sum())
        rows.append([
            label, f"{(z <= 1).mean() * 100:.0f}", f"{(z <= 1.96).mean() * 100:.0f}",
            f"{ok['predicted_std_mah_g'].median():.2f}", f"{spread.median():.2f}",
            f"{flat} of {len(spread)}",
        ])  # fmt: skip
    header = ["method", "inside 68 % interval (%)", "inside 95 % interval (%)",
              "median σ (mAh/g)", "median spread of a batch's predictions",
              "flat batches"]  # fmt: skip
    return _table(header, rows)


def figure(
    all_curves: Mapping[str, np.ndarray], optimum: float, path: Path, title: str = "Virtual lab"
) -> None:
    """Best true capacity vs batch: median line and 25-75 % band per method."""
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.subplots()
    for label, c in all_curves.items():
        median, low, high = quartiles(c)
        x = np.arange(len(median))
        (line,) = ax.plot(x, median, marker="o", markersize=4, label=label)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axhline(optimum, color="black", linestyle="--", linewidth=1,
               label=f"true optimum ({optimum:.1f})")  # fmt: skip
    ax.set_xticks(x)
    ax.set_xlabel("batch of 10 experiments (0 = the history)")
    ax.set_ylabel("best true capacity found (mAh/g)")
    seeds = len(next(iter(all_curves.values())))
    ax.set_title(f"{title}, {seeds} seeds: median and 25–75 % band", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.savefig(path, dpi=100)


def report(
    frame: pd.DataFrame,
    baselines: Mapping[int, float],
    optimum: float,
    labels: Mapping[str, str],
    batches: int,
    path: Path,
    random_hit: Callable[[float], float],
    batch_size: int,
    lab: str = "baseline",
) -> str:
    """Every table as Markdown; writes the figure to ``path``. ``random_hit(level)``: the
    chance that one uniform random experiment tests ok at or above ``level``."""
    all_curves = {labels[m]: curves(frame, baselines, m, batches) for m in labels}
    figure(all_curves, optimum, path, f"Virtual lab '{lab}'")
    seeds = len(baselines)
    return "\n\n".join([
        f"lab '{lab}': true optimum {optimum:.2f} mAh/g; history best (true) median "
        f"{np.median(list(baselines.values())):.2f} over {seeds} seeds",
        f"Best true capacity found (mAh/g), median [25–75 %] over {seeds} seeds:",
        best_table(all_curves),
        "Regret, speed, enhancement (EF) and acceleration (AF) factors over random:",
        speed_table(all_curves, labels["random"], optimum, random_hit, batch_size),
        "Experiments spent, by outcome (% of the method's experiments):",
        failure_table(frame, labels),
        "Prediction error on own proposals that tested ok:",
        prediction_table(frame, labels, batches),
        "Calibration on own proposals:",
        calibration_table(frame, labels),
        f"figure: {path}",
    ])  # fmt: skip
