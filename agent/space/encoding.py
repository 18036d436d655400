"""Vectorised views of a design space on its grid, for the optimiser and the models.

A point of the space has three forms, each handled many rows at a time:

- **search vector** (what PSO moves, bounds [0, 1] in every dimension). A continuous or
  integer parameter is one dimension, grid point k of K at k / K: scaling every dimension
  to one range matters for PSO, whose initial velocities and clamps are the same in every
  dimension (650-800 °C and 0-0.005 mol frac would otherwise move at wildly different
  relative speeds). A categorical parameter has one dimension per choice and the largest
  wins (argmax, ties to the first choice). Unlike a single index dimension, this puts no
  false order on the choices (W is not "between" B and Co) and lets the swarm drift towards
  any one of them. Fixed parameters have no dimension.
- **grid index**: one integer per searched parameter (the step k, or the choice's index).
  It is exact, so points are compared, deduplicated and measured on it.
- **values / features**: recipe values, and the model feature table: numeric parameters in
  their own units (tree models do not need scaling, and the columns stay readable),
  categoricals one-hot over the declared choices as ``name=choice``.

Snapping clips to the bounds, rounds to the nearest grid point, then repairs constraints
deterministically: a broken sum moves the constraint's ``repair`` terms (else all its terms)
towards the bounds that lower it, all by one common fraction, rounded on the grid, and hands
single steps back while the limit allows. So Co gives way for ni + co <= 1, and the six
dopants shrink together, keeping their ratios, to meet the total-dopant limit.

A parameter with a condition keeps its dimension (the swarm may switch the coating on
again), but where it does not apply its grid index is 0 and its recipe value None, so two
uncoated recipes are one point, and a distance counts "applies in one of them" as one
step. A model sees such a number as `NOT_APPLIED` (no coating: amount 0, 0 h, 0 °C) and
such a categorical as all-zero one-hot columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.space.params import (
    GRID_TOL,
    TOL,
    Constraint,
    Derived,
    Parameter,
    Recipe,
    fmt,
    is_number,
)

_MAX_DRAWS = 1000  # rounds of rejection sampling before giving up on a too tight space
_MAX_PASSES = 10  # repair passes: constraints sharing parameters may need more than one
NOT_APPLIED = 0.0  # the feature value of a number that does not apply


@dataclass(frozen=True)
class _Applies:
    """Where a parameter with a condition applies, on grid indices."""

    name: str
    column: int | None  # its grid column; None when it is pinned
    parent_column: int | None  # the parent's grid column; None when the parent is pinned
    allowed: np.ndarray  # the parent's grid indices (or, pinned, its value) that allow it

    def mask(self, grid: np.ndarray) -> np.ndarray:
        if self.parent_column is None:
            return np.full(len(grid), bool(self.allowed.size))
        return np.isin(grid[:, self.parent_column], self.allowed)


@dataclass(frozen=True)
class _Bound:
    """One side of a constraint on grid indices: ``offset + index @ weights <= limit``."""

    columns: np.ndarray  # grid columns of the searched terms
    weights: np.ndarray  # change of the sum per grid step of each term
    offset: float  # the sum with every searched term at index 0 (fixed terms included)
    limit: float
    first: np.ndarray  # bool per column: terms to repair first

    def excess(self, grid: np.ndarray) -> np.ndarray:
        return self.offset + grid[:, self.columns] @ self.weights - self.limit


class GridCodec:
    """Conversions between search vectors, grid indices, recipes and features of a space."""

    def __init__(
        self,
        parameters: Mapping[str, Parameter],
        constraints: tuple[Constraint, ...],
        derived: tuple[Derived, ...],
        declared: Mapping[str, Parameter],
        columns: tuple[str, ...],
    ) -> None:
        """The pieces of a `DesignSpace` (its attributes of the same names) it converts for."""
        self.parameters = parameters
        self.derived = derived
        self.declared = declared
        self.columns = columns  # key order of a recipe
        self.searched = [p for p in parameters.values() if p.kind != "fixed"]
        self.fixed = [p for p in parameters.values() if p.kind == "fixed"]
        widths = [len(p.choices) if p.kind == "categorical" else 1 for p in self.searched]
        self.offsets = np.concatenate([[0], np.cumsum(widths, dtype=int)]).astype(int)
        self.dim = int(self.offsets[-1])
        # highest index of each grid column
        self.top = np.array(
            [len(p.choices) - 1 if p.kind == "categorical" else p.n_steps for p in self.searched],
            dtype=np.int64,
        )
        self.numeric = np.array([p.gridded for p in self.searched], dtype=bool)
        self._numeric_dims = self.offsets[:-1][self.numeric]
        self._bounds = [b for c in constraints for b in self._bounds_of(c) if b.columns.size]
        self._applies = [self._applies_of(p) for p in parameters.values() if p.condition]

    def _applies_of(self, p: Parameter) -> _Applies:
        column = {q.name: j for j, q in enumerate(self.searched)}
        parent = self.parameters[p.condition.parent]
        if parent.kind == "fixed":
            allowed = np.arange(1 if parent.value in p.condition.choices else 0)
        else:
            allowed = np.flatnonzero(np.isin(parent.choices, p.condition.choices))
        return _Applies(p.name, column.get(p.name), column.get(parent.name), allowed)

    def _blank_unapplied(self, grid: np.ndarray) -> np.ndarray:
        """Index 0 wherever a parameter does not apply, in place: one point per recipe."""
        for a in self._applies:
            if a.column is not None:
                grid[~a.mask(grid), a.column] = 0
        return grid

    def _bounds_of(self, c: Constraint) -> list[_Bound]:
        column = {p.name: j for j, p in enumerate(self.searched)}
        # a min side is the max side of the negated sum
        sides = [(s, limit) for s, limit in ((1.0, c.max), (-1.0, c.min)) if limit is not None]
        bounds = []
        for sign, limit in sides:
            columns, weights, offset, first = [], [], 0.0, []
            for name, coef in c.terms:
                p = self.parameters[name]
                if p.kind == "fixed":
                    offset += sign * coef * p.value
                    continue
                columns.append(column[name])
                weights.append(sign * coef * p.step)
                offset += sign * coef * p.low
                first.append(name in c.repair)
            first_mask = np.array(first, dtype=bool)
            if not first_mask.any():
                first_mask[:] = True
            bounds.append(
                _Bound(np.array(columns, int), np.array(weights), offset, sign * limit, first_mask)
            )
        return bounds

    # ------------------------------------------------------------------ vectors <-> grid
    def index(self, vectors: np.ndarray) -> np.ndarray:
        """Grid indices of search vectors (one per row): clipped, rounded, repaired."""
        x = np.atleast_2d(np.asarray(vectors, dtype=float))
        if x.shape[1] != self.dim:
            raise ValueError(f"search vectors have {x.shape[1]} dimensions, the space {self.dim}")
        grid = np.empty((len(x), len(self.searched)), dtype=np.int64)
        grid[:, self.numeric] = np.rint(
            np.clip(x[:, self._numeric_dims], 0.0, 1.0) * self.top[self.numeric]
        )
        for j in np.flatnonzero(~self.numeric):
            grid[:, j] = x[:, self.offsets[j] : self.offsets[j + 1]].argmax(axis=1)
        self._repair(grid)
        return self._blank_unapplied(grid)

    def vectors(self, grid: np.ndarray) -> np.ndarray:
        """Search vectors of grid indices."""
        x = np.zeros((len(grid), self.dim))
        x[:, self._numeric_dims] = grid[:, self.numeric] / self.top[self.numeric]
        rows = np.arange(len(grid))
        for j in np.flatnonzero(~self.numeric):
            x[rows, self.offsets[j] + grid[:, j]] = 1.0
        return x

    def encode(self, recipe: Mapping[str, Any]) -> np.ndarray:
        """The search vector of one recipe (not snapped: an off-grid value stays off grid)."""
        x = np.zeros(self.dim)
        for j, p in enumerate(self.searched):
            if p.name not in recipe:
                raise ValueError(f"encode: missing parameter {p.name!r}")
            value, start = recipe[p.name], self.offsets[j]
            if not p.applies(recipe):  # as index 0, like every recipe where it does not apply
                x[start] = 1.0 if p.kind == "categorical" else 0.0
            elif p.kind == "categorical":
                if value not in p.choices:
                    raise ValueError(p.problem(value))
                x[start + p.choices.index(value)] = 1.0
            elif is_number(value):
                steps = (value - p.low) / p.step
                if abs(steps - round(steps)) <= GRID_TOL:  # on the grid: exactly as vectors()
                    steps = round(steps)
                x[start] = steps / p.n_steps
            else:
                raise ValueError(f"{p.name} = {fmt(value)} is not a number")
        return x

    # ------------------------------------------------------------------ constraints
    def feasible(self, grid: np.ndarray) -> np.ndarray:
        ok = np.ones(len(grid), dtype=bool)
        for b in self._bounds:
            ok &= b.excess(grid) <= TOL
        return ok

    def _repair(self, grid: np.ndarray) -> None:
        """Bring every row inside the constraints, in place and deterministically."""
        for _ in range(_MAX_PASSES):
            broken = False
            for b in self._bounds:
                for subset in (b.first, np.ones_like(b.first)):
                    rows = np.flatnonzero(b.excess(grid) > TOL)
                    if rows.size:
                        broken = True
                        self._shrink(grid, b, rows, subset)
            if not broken:
                return
        raise RuntimeError("constraint repair did not settle: constraints fight over parameters")

    def _shrink(self, grid: np.ndarray, b: _Bound, rows: np.ndarray, subset: np.ndarray) -> None:
        """Move the subset's terms towards the ends that lower the sum, all by the same
        fraction (dopant ratios are kept), rounding on the grid towards those ends; then give
        back single steps, largest rounding loss first, while the bound still holds."""
        cols, w = b.columns[subset], b.weights[subset]
        ends = np.where(w > 0, 0, self.top[cols])
        k = grid[np.ix_(rows, cols)]
        span = np.abs(k - ends)  # steps away from the end
        gain = np.abs(w)  # the sum drops by this per step towards the end
        need = b.excess(grid[rows])
        room = span @ gain
        keep = np.clip(1.0 - need / np.where(room > 0, room, np.inf), 0.0, 1.0)
        exact = span * keep[:, None]
        kept = np.floor(exact + GRID_TOL)
        slack = (span - kept) @ gain - need
        # rounded: equal losses must tie exactly (then the first column wins), whatever float
        # noise the matrix products of this many rows left; else a row's repair would
        # depend on which other rows were snapped with it
        loss = np.round(exact - kept, 9)
        r = np.arange(len(rows))
        for j in np.argsort(-loss, axis=1, kind="stable").T:
            back = (loss[r, j] > GRID_TOL) & (gain[j] <= slack + TOL)
            kept[r, j] += back
            slack -= back * gain[j]
        grid[np.ix_(rows, cols)] = np.where(w > 0, kept, self.top[cols] - kept)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` grid points uniform over the feasible ones (rejection sampling)."""
        found, count = [], 0
        for _ in range(_MAX_DRAWS):
            draw = rng.integers(0, self.top + 1, size=(max(4 * n, 256), len(self.searched)))
            self._blank_unapplied(draw)
            found.append(draw[self.feasible(draw)])
            count += len(found[-1])
            if count >= n:
                return np.concatenate(found)[:n]
        raise RuntimeError("the constraints leave too few grid points to sample from")

    # ------------------------------------------------------------------ grid -> recipes
    def values(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        """Column per parameter (fixed ones repeated), in recipe units, free of float noise."""
        n, out = len(grid), {}
        for j, p in enumerate(self.searched):
            if p.kind == "categorical":
                out[p.name] = np.asarray(p.choices, dtype=object)[grid[:, j]]
            else:
                column = np.round(p.low + grid[:, j] * p.step, p.decimals)
                out[p.name] = np.rint(column).astype(np.int64) if p.kind == "integer" else column
        for p in self.fixed:
            out[p.name] = np.full(n, p.value, dtype=object if isinstance(p.value, str) else None)
        for a in self._applies:
            out[a.name] = np.where(a.mask(grid), out[a.name], None)
        for d in self.derived:
            out[d.name] = d.compute(out)
        return {name: out[name] for name in self.columns}

    def recipes(self, grid: np.ndarray) -> list[Recipe]:
        values = self.values(grid)
        columns = [values[name].tolist() for name in self.columns]
        return [dict(zip(self.columns, row, strict=True)) for row in zip(*columns, strict=True)]

    def features(self, grid: np.ndarray) -> pd.DataFrame:
        """The model feature table of grid points: what the proposer hands to ``score``."""
        return self.feature_frame(self.values(grid), len(grid))

    def feature_frame(self, values: Mapping[str, np.ndarray], n: int) -> pd.DataFrame:
        """Feature table from parameter columns (derived ones are recomputed)."""
        values = dict(values)
        for d in self.derived:
            values[d.name] = d.compute(values)
        data = {}
        for name in self.columns:
            p = self.declared.get(name)
            applies = np.ones(n, dtype=bool)
            if p is not None and p.condition is not None:
                parent = np.asarray(values[p.condition.parent], dtype=object)
                applies = np.isin(parent, p.condition.choices)
            if p is None or not p.choices:
                column = np.asarray(values[name], dtype=float)
                if np.isnan(column[applies]).any():
                    raise ValueError(f"features: {name} is blank where it applies")
                data[name] = np.where(applies, column, NOT_APPLIED)
                continue
            column = np.where(applies, np.asarray(values[name], dtype=object), None)
            if unknown := set(column[applies]) - set(p.choices):
                raise ValueError(
                    f"features: {name} = {', '.join(map(fmt, unknown))} is not one of "
                    f"{', '.join(p.choices)}"
                )
            for choice in p.choices:
                data[f"{name}={choice}"] = (column == choice).astype(float)
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    # ------------------------------------------------------------------ comparing points
    def locate(self, recipe: Mapping[str, Any]) -> np.ndarray | None:
        """Grid index of ``recipe`` rounded to the grid, or None when it is not a point of
        this space (another pinned value, outside a narrowed range, unknown choice, broken
        constraint): such a recipe can never equal a proposal."""
        if any(p.applies(recipe) and p.problem(recipe.get(p.name)) for p in self.fixed):
            return None
        row = []
        for p in self.searched:
            value = recipe.get(p.name)
            if not p.applies(recipe):
                row.append(0)
            elif p.kind == "categorical":
                if value not in p.choices:
                    return None
                row.append(p.choices.index(value))
            elif is_number(value) and p.low - TOL <= value <= p.high + TOL:
                row.append(round((value - p.low) / p.step))
            else:
                return None
        grid = np.array([row], dtype=np.int64).reshape(1, len(self.searched))
        return grid[0] if self.feasible(grid)[0] else None

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(len(a), len(b)) grid distances, the measure of `DesignSpace.grid_distance`."""
        diff = a[:, None, :] - b[None, :, :]
        squared = np.where(self.numeric, diff.astype(float) ** 2, (diff != 0).astype(float))
        for applies in self._applies:
            if applies.column is not None:
                one_side = applies.mask(a)[:, None] != applies.mask(b)[None, :]
                squared[..., applies.column] = np.where(one_side, 1.0, squared[..., applies.column])
        return np.sqrt(squared.sum(-1))
