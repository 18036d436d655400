"""The acquisition: which ten recipes to make next (strategy ``trust-ei``, the default).

Each recipe x gets **feasible expected improvement**, EI(x) × P(success | x):

* EI scores the chance and size of beating the incumbent, the tried recipe the model
  believes best (its GBM mean), with the GBM mean and an uncertainty that grows away from
  tried recipes (`agent.learning.uncertainty`); the raw mean alone would climb the flat
  plateau trees extrapolate to and stay there.
* P(success) is unknown, not 1.00, where nothing was tried (`agent.learning.feasibility`).

The search (PSO, pyswarms, as in the paper) runs twice on that score:

* **locally**, in a trust region around the incumbent (TuRBO, Eriksson et al. 2019): a box
  of side ``L`` (a share of each parameter's range) that doubles after a batch that beat
  the best measured result and halves after one that did not, restarting at its initial
  size when it collapses. Most of the batch comes from here.
* **globally**, over the whole space, for a share of the batch (``global_share``; 0 by
  default: on the benchmark's labs a global pick bought little and cost calibration, since
  its far-off predictions were the most optimistic).

**Parameters the history never varied** (one value only, or categorical choices nobody
tried) are not searched: they stay at their known value, and at most ``max_probes``
recipes per batch are **probes**: the best recipe with one such parameter moved to an
untried value (a numeric one at most ``PROBE_STEPS`` grid steps away), marked in the
recipe file. A value counts as known once ``probe_until`` recipes used it, or when the
incumbent uses it.

The batch is built from the model's beliefs (**kriging believer**, Ginsbourger et al. 2010):
after each pick the model pretends the pick was measured at its predicted mean, which
shrinks the uncertainty of recipes correlated with it and raises the bar to beat, so the
next pick is a different bet rather than a neighbour of the same one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from agent.learning.model import TrainedModel
from agent.learning.swarm import Box, explore
from agent.space.design import DesignSpace, Recipe
from agent.space.params import is_blank

log = logging.getLogger(__name__)

LOCAL, GLOBAL, PROBE = "local", "global", "probe"
# the share of the swarm's iterations spent in the trust region
LOCAL_ITERATIONS = 2 / 3
# how many of the swarm's best points per region enter the batch building
POOL = 300
# a probe of a numeric parameter moves it at most this many grid steps from its known value:
# the uncertainty grows with distance, so the farthest value would always look best, and a
# dopant at its maximum says little about the small amounts that are worth making
PROBE_STEPS = 2


@dataclass(frozen=True)
class AcquisitionConfig:
    n: int = 10
    max_probes: int = 2
    probe_until: int = 3
    global_share: float = 0.0
    trust_region: bool = True
    trust_initial: float = 0.2  # side of the box, as a share of each parameter's range
    trust_min: float = 1 / 32
    trust_max: float = 0.4
    particles: int = 100
    iterations: int = 1000
    seed: int | None = None


@dataclass(frozen=True)
class Pick:
    """One recipe of the batch and what the model believed of it when it was picked."""

    recipe: Recipe
    mean_mah_g: float
    std_mah_g: float  # of a measurement (noise included)
    p_success: float
    acquisition: float  # EI x P at the time of the pick
    role: str  # local, global or probe
    probe: str | None = None  # "atmosphere=air": the untried value it probes


@dataclass(frozen=True)
class Evidence:
    """What the campaign knows: recipes tried (ok or failed synthesis), the measured ones
    (the model's mean over them picks the incumbent), every recipe already made or planned,
    and per finished batch whether it beat the best measured result before it."""

    tried: pd.DataFrame
    measured: pd.DataFrame
    made: Sequence[Mapping[str, Any]]  # complete recipes (`agent.loop.propose.known_recipes`)
    improved: Sequence[bool]


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """E[max(f - best, 0)] for f ~ N(mean, std²)."""
    std = np.maximum(std, 1e-9)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def trust_length(improved: Iterable[bool], config: AcquisitionConfig) -> float:
    """The trust region's side after the batches so far (TuRBO's rule, one batch a step)."""
    length = config.trust_initial
    for success in improved:
        length = min(2 * length, config.trust_max) if success else length / 2
        if length < config.trust_min:
            length = config.trust_initial  # collapsed: restart
    return length


def value_counts(space: DesignSpace, recipes: pd.DataFrame) -> dict[str, Counter]:
    """How many tried recipes used each value of each searched parameter (grid values)."""
    counts: dict[str, Counter] = {}
    for p in space.grid.searched:
        if p.name not in recipes:
            counts[p.name] = Counter()
            continue
        column = recipes[p.name].dropna()
        if p.gridded:
            steps = np.rint((column.to_numpy(dtype=float) - p.low) / p.step)
            column = pd.Series([p.at(int(k)) for k in steps if 0 <= k <= p.n_steps])
        counts[p.name] = Counter(column.tolist())
    return counts


@dataclass(frozen=True)
class Split:
    """The space searched with known values only, and the values left to probe."""

    known: DesignSpace
    to_probe: dict[str, list[Any]]


def split_space(
    space: DesignSpace, counts: Mapping[str, Counter], incumbent: Recipe, probe_until: int
) -> Split:
    """Pin or restrict each searched parameter to its known values (see the module doc)."""
    known_space, to_probe = space, {}
    for p in space.grid.searched:
        if not p.applies(incumbent):  # uncoated: its coating temperature is no known value
            continue
        known = {v for v, c in counts[p.name].items() if c >= probe_until}
        known.add(incumbent[p.name])
        if p.kind == "categorical":
            allowed = [c for c in p.choices if c in known]
            if len(allowed) < len(p.choices):
                to_probe[p.name] = [c for c in p.choices if c not in known]
                known_space = known_space.restrict(p.name, allowed)
        elif len(known) < 2:
            value = incumbent[p.name]
            k = round((value - p.low) / p.step)
            near = range(max(0, k - PROBE_STEPS), min(p.n_steps, k + PROBE_STEPS) + 1)
            to_probe[p.name] = [p.at(j) for j in near if j != k]
            known_space = known_space.pin(p.name, value)
    return Split(known_space, to_probe)


def snapped(space: DesignSpace, recipe: Mapping[str, Any]) -> Recipe:
    """The valid grid recipe nearest ``recipe`` (constraints repaired)."""
    return space.decode(space.encode(recipe))


def probe_recipe(
    space: DesignSpace, base: Recipe, name: str, value: Any, donor: Mapping[str, Any]
) -> Recipe:
    """``base`` with ``name`` set to the untried ``value``, on the grid. A step the change
    brings in (a coating for a recipe that had none) takes ``donor``'s value, else the middle
    of its range: a probe tests one untried value, and a blank is no value to snap."""
    recipe = {**base, name: value}
    for p in space.declared.values():
        if p.condition and p.applies(recipe) and is_blank(recipe.get(p.name)):
            recipe[p.name] = donor.get(p.name)
            if is_blank(recipe[p.name]):
                recipe[p.name] = p.at(p.n_steps // 2) if p.gridded else p.choices[0]
    return snapped(space, recipe)


def trust_box(space: DesignSpace, centre: Recipe, length: float) -> Box:
    """The trust region around ``centre`` in ``space``'s search vector: numeric dimensions
    within length/2 (at least one grid step), categoricals free, and so are the numbers that
    do not apply to ``centre`` (an uncoated centre has no coating temperature to stay near)."""
    x = space.encode(centre)
    low, high = np.zeros(space.dim), np.ones(space.dim)
    codec = space.grid
    dims = codec.offsets[:-1][codec.numeric]
    free = np.array([not p.applies(centre) for p in codec.searched])[codec.numeric]
    half = np.where(free, 1.0, np.maximum(length / 2, 1.0 / codec.top[codec.numeric]))
    low[dims] = np.clip(x[dims] - half, 0.0, 1.0)
    high[dims] = np.clip(x[dims] + half, 0.0, 1.0)
    return low, high


class _Scorer:
    """EI x P of feature rows, against a fixed incumbent value."""

    def __init__(self, model: TrainedModel, best: float) -> None:
        self.model, self.best = model, best

    def __call__(self, features: pd.DataFrame) -> np.ndarray:
        belief = self.model.belief(features)
        ei = expected_improvement(belief.mean_mah_g, belief.latent_std_mah_g, self.best)
        return ei * belief.p_success


def _key(space: DesignSpace, recipe: Mapping[str, Any]) -> tuple:
    return tuple(recipe[name] for name in space.declared)


def propose_batch(
    model: TrainedModel, space: DesignSpace, evidence: Evidence, config: AcquisitionConfig
) -> list[Pick]:
    """The next batch: ``config.n`` distinct untried recipes, best bet first."""
    mean = model.mean(space.features(evidence.measured))
    best_row = int(np.argmax(mean))
    incumbent = snapped(space, evidence.measured.iloc[best_row].to_dict())
    best = float(mean[best_row])
    split = split_space(space, value_counts(space, evidence.tried), incumbent, config.probe_until)
    score = _Scorer(model, best)
    length = trust_length(evidence.improved, config)
    made = [dict(r) for r in evidence.made]
    runs = []
    if config.trust_region:
        local_iterations = max(1, round(config.iterations * LOCAL_ITERATIONS))
        box = trust_box(split.known, incumbent, length)
        runs.append((LOCAL, box, local_iterations))
        if _global_picks(config):  # no pick to make there: no search either
            runs.append((GLOBAL, None, max(1, config.iterations - local_iterations)))
    else:  # one search over the whole space, counted as the main share
        runs.append((LOCAL, None, config.iterations))
    candidates: dict[tuple, tuple[Recipe, str, str | None]] = {}
    for role, box, iterations in runs:
        explored = explore(
            split.known, score, box=box, exclude=made, particles=config.particles,
            iterations=iterations, seed=config.seed,
        )  # fmt: skip
        for recipe in split.known.grid.recipes(explored.grid[:POOL]):
            candidates.setdefault(_key(space, recipe), (recipe, role, None))
    tested = {_key(space, snapped(space, r)) for r in made}
    # a probe is the incumbent, or the swarm's best new recipe, with one untried value
    best_new = next(iter(candidates.values()), None)
    for base in [incumbent] + ([best_new[0]] if best_new else []):
        for name, values in split.to_probe.items():
            for value in values:
                recipe = probe_recipe(space, base, name, value, donor=incumbent)
                key = _key(space, recipe)
                if recipe[name] == value and key not in tested:
                    candidates.setdefault(key, (recipe, PROBE, _probe_label(name, value)))
    for key in tested:
        candidates.pop(key, None)
    picks = _believer(model, space, list(candidates.values()), best, config)
    log.info(
        "acquisition: incumbent %.1f mAh/g, trust region %.3f, %d candidates, picks %s",
        best, length, len(candidates), Counter(p.role for p in picks),
    )  # fmt: skip
    return picks


def _global_picks(config: AcquisitionConfig) -> int:
    """How many recipes of the batch come from the search over the whole space."""
    return round(config.global_share * config.n) if config.trust_region else 0


def _probe_label(name: str, value: Any) -> str:
    """``atmosphere=air``, ``dopant_b=0.0005``: how the recipe file names a probe."""
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def _believer(
    model: TrainedModel,
    space: DesignSpace,
    candidates: list[tuple[Recipe, str, str | None]],
    best: float,
    config: AcquisitionConfig,
) -> list[Pick]:
    """Greedy batch by kriging believer, within the quotas of each role."""
    if not candidates:
        return []
    features = space.features([c[0] for c in candidates])
    belief = model.belief(features)
    cov = model.latent_cov(features)
    noise = max(model.noise_mah_g, 1e-6) ** 2
    roles = np.array([c[1] for c in candidates])
    n_global = _global_picks(config)
    free = np.ones(len(candidates), dtype=bool)
    picks: list[Pick] = []
    while len(picks) < config.n and free.any():
        count = Counter(p.role for p in picks)
        allowed = free & _room(roles, count, n_global, config)
        if not allowed.any():  # a region ran out of candidates: let the others fill in
            allowed = free & ((roles != PROBE) | (count[PROBE] < config.max_probes))
            if not allowed.any():
                break
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        value = expected_improvement(belief.mean_mah_g, std, best) * belief.p_success
        i = int(np.argmax(np.where(allowed, value, -np.inf)))
        recipe, role, probe = candidates[i]
        picks.append(
            Pick(
                recipe, float(belief.mean_mah_g[i]), float(belief.std_mah_g[i]),
                float(belief.p_success[i]), float(value[i]), role, probe,
            )
        )  # fmt: skip
        free[i] = False
        # believe the pick is measured at its mean: its neighbours' uncertainty shrinks ...
        column = cov[:, i].copy()
        cov -= np.outer(column, column) / (column[i] + noise)
        # ... and the batch now has to beat it
        best = max(best, float(belief.mean_mah_g[i]))
    return picks


def _room(
    roles: np.ndarray, count: Counter, n_global: int, config: AcquisitionConfig
) -> np.ndarray:
    local_room = count[LOCAL] + count[PROBE] < config.n - n_global
    return np.select(
        [roles == GLOBAL, roles == PROBE],
        [count[GLOBAL] < n_global, local_room and count[PROBE] < config.max_probes],
        default=local_room,
    )
