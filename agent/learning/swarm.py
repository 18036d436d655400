"""The next batch of recipes: particle swarm optimisation over the encoded design space.

The swarm (pyswarms ``GlobalBestPSO``) moves search vectors in [0, 1]^d (`agent.space.design`).
Every particle is snapped to its valid grid point before it is scored, and every scored grid
point goes into a candidate pool. The batch is then picked greedily from the pool: best
score first, skipping recipes already tested (``exclude``) and recipes closer than
``min_distance`` grid steps to one already picked. Without that rule the top ten bunch
around one optimum, a few degrees apart, and teach the next model little. If the pool
cannot fill the batch, the swarm restarts with the picked neighbourhoods penalised.

``score`` is the objective to maximise, given the feature table of the snapped particles
(``space.features`` columns, one row per particle), so a model trained on
``space.features(history)`` plugs in directly: ``score=lambda X: model.predict(X)``.
"""

from __future__ import annotations

import logging
import logging.config
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.space.design import DesignSpace, Recipe
from agent.space.params import TOL

logger = logging.getLogger(__name__)

Score = Callable[[pd.DataFrame], Any]  # feature table -> one score per row (array-like)
Box = tuple[np.ndarray, np.ndarray]  # lower and upper corner in search-vector units

# Clerc and Kennedy's constriction values (IEEE Trans. Evol. Comput. 6, 2002), the standard
# convergent setting. On a synthetic optimum over this space they found the optimum exactly
# where pyswarms' doc example (c1=0.5, c2=0.3, w=0.9) stalled a few steps off or on the
# wrong lithium source.
DEFAULT_OPTIONS: dict[str, float] = {"c1": 1.49618, "c2": 1.49618, "w": 0.7298}
# no two recipes of a batch closer than 3 grid steps (Euclidean over steps): e.g. 15 °C of
# calcination, or 10 °C plus another coating material and one dopant step
MIN_DISTANCE = 3.0
# velocities limited to half the range per iteration; also makes pyswarms start them in
# [-0.5, 0.5] instead of its default [0, 1], which pushes every particle up at first
VELOCITY_CLAMP = (-0.5, 0.5)

# cost of a point that cannot join the batch: worse than any score, but finite, because
# pyswarms keeps no global best at all while every cost is infinite (and then fails)
_BLOCKED = 1e300

# pyswarms draws from numpy's global RNG: one swarm at a time, so seeded runs repeat
_SWARM_LOCK = threading.Lock()


@dataclass(frozen=True)
class Proposal:
    """A batch of distinct, valid recipes, best predicted first."""

    recipes: list[Recipe]
    scores: list[float]
    mean_pairwise_distance: float  # grid steps, see DesignSpace.grid_distance
    best_score: float  # best score of any point evaluated, tested ones included
    iterations: int  # swarm iterations over all runs
    evaluations: int  # points scored (particles x iterations x runs)
    restarts: int  # extra swarm runs needed to fill the batch


def propose(
    space: DesignSpace,
    score: Score,
    n: int = 10,
    *,
    exclude: Iterable[Mapping[str, Any]] | pd.DataFrame = (),
    particles: int = 100,
    iterations: int = 1000,
    min_distance: float = MIN_DISTANCE,
    seed: int | None = None,
    options: Mapping[str, float] | None = None,
    max_restarts: int = 3,
) -> Proposal:
    """The ``n`` best distinct recipes by ``score``, pairwise at least ``min_distance`` apart.

    ``exclude`` holds recipes already tested; they are compared on the grid, so a tested
    0.9400000001 excludes 0.94. A seed makes the run repeatable. If the space has fewer than
    ``n`` points that far apart, the batch is shorter and a warning is logged.
    """
    if space.dim == 0:
        raise ValueError("nothing to search: every parameter of the space is fixed")
    if n < 1 or particles < 1 or iterations < 1:
        raise ValueError("n, particles and iterations must be at least 1")
    pool = _Pool(space, score, exclude, min_distance)
    options = dict(options or DEFAULT_OPTIONS)
    rng = np.random.default_rng(seed)
    runs = 0
    with _SWARM_LOCK, _global_seed(seed):
        while True:
            _run_swarm(space, pool, rng, particles, iterations, options)
            runs += 1
            if len(pool.pick(n)) == n or runs > max_restarts:
                break
    picked = pool.picked
    if len(picked) < n:
        logger.warning(
            "only %d of %d recipes found at least %g grid steps apart after %d runs",
            len(picked),
            n,
            min_distance,
            runs,
        )
    proposal = Proposal(
        recipes=space.grid.recipes(picked),
        scores=pool.picked_scores.tolist(),
        mean_pairwise_distance=_mean_pairwise(space, picked),
        best_score=pool.best_score,
        iterations=runs * iterations,
        evaluations=pool.evaluations,
        restarts=runs - 1,
    )
    logger.info(
        "proposed %d recipes: best score %.4g, mean distance %.2f grid steps, %d evaluations",
        len(proposal.recipes),
        proposal.best_score,
        proposal.mean_pairwise_distance,
        proposal.evaluations,
    )
    return proposal


@dataclass(frozen=True)
class Explored:
    """Every distinct grid point a swarm scored, not tested before, best first."""

    grid: np.ndarray
    scores: np.ndarray
    evaluations: int


def explore(
    space: DesignSpace,
    score: Score,
    *,
    box: Box | None = None,
    exclude: Iterable[Mapping[str, Any]] | pd.DataFrame = (),
    particles: int = 100,
    iterations: int = 1000,
    seed: int | None = None,
    options: Mapping[str, float] | None = None,
) -> Explored:
    """One swarm run maximising ``score`` inside ``box`` (default: the whole space).

    The batch is not picked here: the caller builds it from the explored points with its
    own rule (see `agent.learning.acquisition`). Points may leave the box a little where a
    constraint repair moves them.
    """
    if space.dim == 0:
        raise ValueError("nothing to search: every parameter of the space is fixed")
    pool = _Pool(space, score, exclude, min_distance=0.0)
    with _SWARM_LOCK, _global_seed(seed):
        rng = np.random.default_rng(seed)
        _run_swarm(space, pool, rng, particles, iterations, dict(options or DEFAULT_OPTIONS), box)
    points, scores = pool.distinct()
    keep = ~pool._tested(points)
    return Explored(points[keep], scores[keep], pool.evaluations)


class _Pool:
    """Every grid point the swarm scores, and the batch picked from them."""

    def __init__(
        self,
        space: DesignSpace,
        score: Score,
        exclude: Iterable[Mapping[str, Any]] | pd.DataFrame,
        min_distance: float,
    ) -> None:
        self.space, self.score, self.min_distance = space, score, min_distance
        if isinstance(exclude, pd.DataFrame):
            exclude = exclude.to_dict("records")
        located = (space.grid.locate(recipe) for recipe in exclude)
        self.tested = {row.tobytes() for row in located if row is not None}
        self.points: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.known: dict[bytes, float] = {}  # grid point -> its score
        self.picked = np.empty((0, len(space.grid.searched)), dtype=np.int64)
        self.picked_scores = np.empty(0)

    @property
    def evaluations(self) -> int:
        return sum(len(s) for s in self.scores)

    @property
    def best_score(self) -> float:
        return float(max(s.max() for s in self.scores))

    def evaluate(self, positions: np.ndarray) -> np.ndarray:
        """The cost pyswarms minimises: minus the score of each snapped particle; points that
        cannot join the batch (tested, or too near a picked one) cost _BLOCKED."""
        grid = self.space.grid.index(positions)
        scores = self._scores(grid)
        self.points.append(grid)
        self.scores.append(scores)
        blocked = self._tested(grid)
        if len(self.picked):
            near = self.space.grid.distances(grid, self.picked) < self.min_distance - TOL
            blocked |= near.any(axis=1)
        return np.where(blocked, _BLOCKED, -scores)

    def _scores(self, grid: np.ndarray) -> np.ndarray:
        """Scores of grid points, each point scored once: a converging swarm revisits the
        same few points, and the score (a model) is the costly part of an iteration."""
        keys = [row.tobytes() for row in grid]
        unseen = np.unique(grid[[key not in self.known for key in keys]], axis=0)
        if len(unseen):
            scores = np.asarray(self.score(self.space.grid.features(unseen)), dtype=float)
            scores = scores.reshape(-1)
            if scores.shape != (len(unseen),):
                raise ValueError(f"score returned {scores.size} values for {len(unseen)} points")
            if np.isnan(scores).any():
                raise ValueError("score returned NaN")
            self.known.update(zip((row.tobytes() for row in unseen), scores.tolist(), strict=True))
        return np.array([self.known[key] for key in keys])

    def _tested(self, grid: np.ndarray) -> np.ndarray:
        return np.array([row.tobytes() in self.tested for row in grid], dtype=bool)

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Every distinct point scored so far and its score, best first."""
        points, first = np.unique(np.concatenate(self.points), axis=0, return_index=True)
        scores = np.concatenate(self.scores)[first]
        order = np.argsort(-scores, kind="stable")
        return points[order], scores[order]

    def pick(self, n: int) -> np.ndarray:
        """Greedy batch over the whole pool: best first, then the best of what is left at
        least ``min_distance`` from every pick."""
        points, scores = self.distinct()
        free = ~self._tested(points)
        chosen: list[int] = []
        while len(chosen) < n and free.any():
            i = int(np.argmax(free))  # first free point: the best left
            chosen.append(i)
            free &= self.space.grid.distances(points, points[i : i + 1])[:, 0] >= (
                self.min_distance - TOL
            )
            free[i] = False
        self.picked, self.picked_scores = points[chosen], scores[chosen]
        return self.picked


def _run_swarm(
    space: DesignSpace,
    pool: _Pool,
    rng: np.random.Generator,
    particles: int,
    iterations: int,
    options: dict[str, float],
    box: Box | None = None,
) -> None:
    # Start from valid grid points drawn uniformly (pyswarms would draw from the whole box,
    # where most points break the dopant limit: repaired onto the limit, they all score alike
    # and the swarm stalls on that plateau). In a smaller box, from points drawn in it.
    if box is None:
        start = space.grid.vectors(space.grid.sample(particles, rng))
    else:
        low, high = box
        start = space.snap(low + (high - low) * rng.random((particles, space.dim)))
        start = np.clip(start, low, high)
    with _no_logging_setup():
        # imported here, inside the guard: pyswarms configures logging on import too
        from pyswarms.single import GlobalBestPSO

        optimizer = GlobalBestPSO(
            n_particles=particles,
            dimensions=space.dim,
            options=options,
            bounds=box or space.bounds(),
            # stay at a bound rather than wrap around to the other end ("periodic", the
            # default): optima often sit on a bound, e.g. no dopant at all
            bh_strategy="nearest",
            velocity_clamp=VELOCITY_CLAMP,
            init_pos=start,
        )
    optimizer.optimize(pool.evaluate, iters=iterations, verbose=False)


@contextmanager
def _no_logging_setup() -> Iterator[None]:
    """pyswarms 1.3 calls logging.config.dictConfig on import and for every optimiser it
    builds: the root logger goes to INFO with its own handlers, and a report.log file appears
    in the working directory. Make that call a no-op meanwhile."""
    configure = logging.config.dictConfig
    logging.config.dictConfig = lambda config: None
    try:
        yield
    finally:
        logging.config.dictConfig = configure


@contextmanager
def _global_seed(seed: int | None) -> Iterator[None]:
    """Seed numpy's global RNG, where pyswarms draws its random numbers, for the run only."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _mean_pairwise(space: DesignSpace, grid: np.ndarray) -> float:
    if len(grid) < 2:
        return 0.0
    distances = space.grid.distances(grid, grid)
    return float(distances[np.triu_indices(len(grid), k=1)].mean())
