"""Sample-efficiency metrics of a campaign benchmark (definitions in `benchmarks.campaign`).

Curves are arrays over batches 0..B (0 = the history), one row per seed; "improvement"
is a curve minus its own batch-0 value, so the history's level cancels seed by seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# a curve value this close to a target has reached it (float noise of sums of terms)
REACHED_TOL = 1e-9


@dataclass(frozen=True)
class Factor:
    """An enhancement or acceleration factor; ``lower_bound``: the true value is at least
    ``value`` (random did not get there within the budget)."""

    value: float
    lower_bound: bool = False

    def __str__(self) -> str:
        if np.isnan(self.value):
            return "n/a"
        if np.isinf(self.value):
            return "∞"
        return f"{'≥ ' if self.lower_bound else ''}{self.value:.2f}"


def best_so_far(baseline: float, batch_best: Sequence[float]) -> np.ndarray:
    """Running maximum over batches 0..B: ``baseline`` first, then each batch's best
    (-inf for a batch with no successful test)."""
    return np.maximum.accumulate(np.r_[baseline, np.asarray(batch_best, dtype=float)])


def regret(curve: np.ndarray, optimum: float) -> float:
    """Simple regret at the last batch: optimum - best found (>= 0 on a grid optimum)."""
    return float(optimum - curve[-1])


def batches_to_within(curve: np.ndarray, optimum: float, tolerance: float = 1.0) -> float:
    """First batch whose best is within ``tolerance`` of the optimum; inf if none is."""
    hits = np.flatnonzero(curve >= optimum - tolerance - REACHED_TOL)
    return float(hits[0]) if hits.size else np.inf


def quartiles(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25 % and 75 % quantiles over ``axis`` (seeds)."""
    return (
        np.median(values, axis=axis),
        np.quantile(values, 0.25, axis=axis),
        np.quantile(values, 0.75, axis=axis),
    )


def median_improvement(curves: np.ndarray) -> np.ndarray:
    """Median over seeds of each seed's gain over its own history best, per batch."""
    curves = np.atleast_2d(curves)
    return np.median(curves - curves[:, :1], axis=0)


def enhancement_factor(method: np.ndarray, random: np.ndarray, n: int) -> Factor:
    """EF(n) = median gain of the method after n batches / median gain of random.

    inf when random has gained nothing and the method has; n/a when neither has.
    """
    gained, baseline = median_improvement(method)[n], median_improvement(random)[n]
    if baseline > REACHED_TOL:
        return Factor(gained / baseline)
    return Factor(np.inf if gained > REACHED_TOL else np.nan)


def acceleration_factor(method: np.ndarray, random: np.ndarray) -> Factor:
    """AF = batches random needs to reach the method's final median gain / batches the
    method needs, on the median gain curves.

    If random never gets there within the budget B, its count is capped at B + 1 and the
    factor is a lower bound. n/a when the method gained nothing over the history.
    """
    own, baseline = median_improvement(method), median_improvement(random)
    target = own[-1]
    if target <= REACHED_TOL:
        return Factor(np.nan)
    needed = batches_to_final_gain(method)
    reached = np.flatnonzero(baseline >= target - REACHED_TOL)
    if reached.size:
        return Factor(reached[0] / needed)
    return Factor(len(baseline) / needed, lower_bound=True)


def median_batches_to_hit(p_hit: float, batch_size: int) -> float:
    """Median number of batches until at least one of ``batch_size`` independent experiments,
    each a hit with probability ``p_hit``, is a hit (geometric law); inf if ``p_hit`` is 0."""
    if p_hit <= 0.0:
        return np.inf
    per_batch = 1.0 - (1.0 - p_hit) ** batch_size
    if per_batch >= 1.0:
        return 1.0
    return float(max(1, np.ceil(np.log(0.5) / np.log1p(-per_batch))))


def batches_to_final_gain(curves: np.ndarray) -> int:
    """The first batch at which the median gain reaches its final value (0 if it never
    rises)."""
    gain = median_improvement(curves)
    return int(np.argmax(gain >= gain[-1] - REACHED_TOL))


def mape(predicted: Iterable[float], measured: Iterable[float]) -> float:
    """Mean absolute percentage error of predictions against measurements (%)."""
    p, m = np.asarray(list(predicted), dtype=float), np.asarray(list(measured), dtype=float)
    return float(np.mean(np.abs(p - m) / np.abs(m)) * 100.0) if m.size else np.nan
