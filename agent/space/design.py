"""The design space: the recipe parameters, their ranges, grids, units and constraints.

A recipe is a plain ``dict`` keyed by parameter name, plus the derived values
(``mn_fraction``). `DesignSpace` checks recipes, applies campaign overrides (pin, narrow)
and converts recipes to search vectors for the optimiser and to feature tables for the
models; the vectorised conversions live in `agent.space.encoding.GridCodec` (``space.grid``).

A parameter with a condition (``only_when`` in the TOML file: the coating's amount,
temperature and time apply only when there is a coating material) is blank, ``None``, in a
recipe where it does not apply; see `agent.space.encoding` for how blanks are searched and
fed to the models.

Overrides keep the *declared* space (the TOML file) beside the current one: pinned and
narrowed values are checked against it, and feature tables always have the declared
columns, so a model trained on history scores the proposals of a pinned campaign as is.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.space.encoding import GridCodec
from agent.space.params import (
    TOL,
    Constraint,
    Derived,
    Parameter,
    Recipe,
    fmt,
    is_blank,
    is_number,
    parse_space,
)

__all__ = ["DEFAULT_PATH", "Constraint", "Derived", "DesignSpace", "Parameter", "Recipe"]

# package data: found the same way in a checkout and in an installed wheel
DEFAULT_PATH = Path(str(files("agent") / "data" / "design_space.toml"))


class DesignSpace:
    """The parameters a campaign may vary. Immutable: overrides return a new space."""

    def __init__(
        self,
        parameters: Iterable[Parameter],
        constraints: Iterable[Constraint] = (),
        derived: Iterable[Derived] = (),
        *,
        declared: Mapping[str, Parameter] | None = None,
    ) -> None:
        self.parameters: dict[str, Parameter] = {p.name: p for p in parameters}
        self.constraints = tuple(constraints)
        self.derived = tuple(derived)
        self.declared: dict[str, Parameter] = dict(declared or self.parameters)
        self._check()
        self.columns = self._recipe_columns()  # key order of a recipe
        self.grid = GridCodec(
            self.parameters, self.constraints, self.derived, self.declared, self.columns
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Path | None = None) -> DesignSpace:
        """The space in a TOML file (default: the shipped agent/data/design_space.toml)."""
        with open(path or DEFAULT_PATH, "rb") as f:
            return cls.from_dict(tomllib.load(f))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DesignSpace:
        return cls(*parse_space(d))

    def _check(self) -> None:
        for p in self.parameters.values():
            if p.condition and self.parameters[p.condition.parent].condition:
                raise ValueError(f"{p.name}: only_when names a parameter that has one itself")
        for d in self.derived:
            if d.name in self.parameters:
                raise ValueError(f"derived {d.name} has the name of a parameter")
        for item in (*self.constraints, *self.derived):
            for name, _ in item.terms:
                if name not in self.parameters or not self.parameters[name].numeric:
                    raise ValueError(f"{item.name}: term {name} is not a numeric parameter")
                if self.parameters[name].condition:
                    raise ValueError(f"{item.name}: term {name} does not always apply")
        for c in self.constraints:
            least, most = self._sum_range(c)
            if c.max is not None and least > c.max + TOL:
                raise ValueError(f"constraint {c.name} ({c.describe()}) cannot hold: {least:.6g}")
            if c.min is not None and most < c.min - TOL:
                raise ValueError(f"constraint {c.name} ({c.describe()}) cannot hold: {most:.6g}")

    def _sum_range(self, c: Constraint) -> tuple[float, float]:
        """Least and greatest value of a constraint's sum over the current ranges."""
        least = most = 0.0
        for name, coef in c.terms:
            p = self.parameters[name]
            ends = (coef * p.value,) * 2 if p.kind == "fixed" else (coef * p.low, coef * p.high)
            least, most = least + min(ends), most + max(ends)
        return least, most

    def _recipe_columns(self) -> tuple[str, ...]:
        """Parameter order, each derived value right after the last of its terms."""
        columns = list(self.parameters)
        for d in self.derived:
            columns.insert(max(columns.index(n) for n, _ in d.terms) + 1, d.name)
        return tuple(columns)

    # ------------------------------------------------------------------ campaign overrides
    def pin(self, name: str, value: Any) -> DesignSpace:
        """A new space with ``name`` fixed at ``value`` (on the grid, in the declared range)."""
        declared = self._declared(name)
        value = declared.coerce(value)
        pinned = Parameter(name, "fixed", declared.unit, value=value, condition=declared.condition)
        return self._replace(pinned, f"pin {name}")

    def narrow(self, name: str, low: Any, high: Any) -> DesignSpace:
        """A new space searching ``name`` in [low, high] only; low == high pins it."""
        declared = self._declared(name)
        if not declared.gridded:
            raise ValueError(f"{name} is {declared.kind}: only numeric parameters can be narrowed")
        low, high = declared.coerce(low), declared.coerce(high)
        if low > high:
            raise ValueError(f"narrow {name}: low {fmt(low)} is above high {fmt(high)}")
        if low == high:
            return self.pin(name, low)
        return self._replace(replace(declared, low=low, high=high), f"narrow {name}")

    def restrict(self, name: str, choices: Sequence[str]) -> DesignSpace:
        """A new space where the categorical ``name`` takes only ``choices`` (one pins it)."""
        declared = self._declared(name)
        if declared.kind != "categorical":
            raise ValueError(f"{name} is {declared.kind}: only categoricals can be restricted")
        if unknown := [c for c in choices if c not in declared.choices]:
            raise ValueError(f"restrict {name}: {', '.join(map(fmt, unknown))} not a choice")
        if not choices:
            raise ValueError(f"restrict {name}: no choice left")
        if len(choices) == 1:
            return self.pin(name, choices[0])
        kept = tuple(c for c in declared.choices if c in choices)
        return self._replace(replace(declared, choices=kept), f"restrict {name}")

    def with_overrides(self, overrides: Mapping[str, Any]) -> DesignSpace:
        """Apply ``{"atmosphere": "air", "ni_fraction": [0.94, 0.96]}``: a scalar pins, a pair
        narrows."""
        space = self
        for name, value in overrides.items():
            if not isinstance(value, list | tuple):
                space = space.pin(name, value)
            elif len(value) == 2:
                space = space.narrow(name, *value)
            else:
                raise ValueError(f"{name}: a range override is [low, high], got {value!r}")
        return space

    def _declared(self, name: str) -> Parameter:
        if name not in self.declared:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(self.declared)}")
        return self.declared[name]

    def _replace(self, parameter: Parameter, action: str) -> DesignSpace:
        params = [parameter if p.name == parameter.name else p for p in self.parameters.values()]
        try:
            return DesignSpace(params, self.constraints, self.derived, declared=self.declared)
        except ValueError as error:
            raise ValueError(f"{action}: {error}") from None

    # ------------------------------------------------------------------ recipes
    def label(self, name: str, *, note: bool = True) -> str:
        """Column header for recipe files: ``calcination_temp_c [°C]``, and for a parameter
        that does not always apply ``coating_time_h [h] (blank when coating_material is none)``.
        A header's first word is always the name; ``note=False`` leaves the note out."""
        units = {p.name: p.unit for p in self.declared.values()} | {
            d.name: d.unit for d in self.derived
        }
        if name not in units:
            raise ValueError(f"unknown parameter {name!r}")
        label = f"{name} [{units[name]}]" if units[name] else name
        condition = name in self.declared and self.declared[name].condition
        if not (condition and note):
            return label
        others = tuple(
            c for c in self.declared[condition.parent].choices if c not in condition.choices
        )
        if len(others) <= len(condition.choices):
            return f"{label} (blank when {condition.describe(others)})"
        return f"{label} (blank unless {condition.describe()})"

    def applies(self, name: str, recipe: Mapping[str, Any]) -> bool:
        """Whether parameter ``name`` has a value in ``recipe`` (its condition holds)."""
        return self.declared[name].applies(recipe)

    def blank_inactive(self, recipe: Mapping[str, Any]) -> Recipe:
        """``recipe`` with every parameter that does not apply set to None (an old record's
        "no coating, amount 0, 400 °C" becomes "no coating")."""
        return {k: None if k in self.declared and not self.applies(k, recipe) else v
                for k, v in recipe.items()}  # fmt: skip

    def stray_values(self, recipe: Mapping[str, Any]) -> list[str]:
        """Why each value given for a step that does not apply is wrong ("coating_temp_c =
        450 but it applies only when coating_material is B, W, Co or Al: leave it blank")."""
        return [
            f"{name} = {fmt(recipe[name])} but it applies only when "
            f"{p.condition.describe()}: leave it blank"
            for name, p in self.declared.items()
            if not p.applies(recipe) and not is_blank(recipe.get(name))
        ]

    def complete(self, recipe: Mapping[str, Any]) -> bool:
        """Every parameter that applies has a value."""
        return all(not is_blank(recipe.get(n)) for n in self.declared if self.applies(n, recipe))

    def validate(self, recipe: Mapping[str, Any]) -> None:
        """Raise ValueError naming every offending parameter or constraint of ``recipe``."""
        known = set(self.columns)
        problems = [f"unknown parameter {k!r}" for k in recipe if k not in known]
        problems += self.stray_values(recipe)
        for name, p in self.parameters.items():
            value = recipe.get(name)
            if not p.applies(recipe):
                continue
            if name not in recipe or is_blank(value):
                problems.append(f"missing parameter {name!r}")
            elif (message := p.problem(value)) is not None:
                problems.append(message)
        if not problems:  # the sums below need every value present and valid
            for d in self.derived:
                expected = d.compute(recipe)
                given = recipe.get(d.name, expected)
                if not (is_number(given) and abs(given - expected) <= TOL):
                    problems.append(
                        f"{d.name} = {fmt(recipe[d.name])} but its terms give {expected:g}"
                    )
            problems += [m for c in self.constraints if (m := c.problem(recipe)) is not None]
        if problems:
            raise ValueError("; ".join(problems))

    def random(self, n: int, rng: np.random.Generator | int | None = None) -> list[Recipe]:
        """``n`` recipes drawn uniformly from the grid points that meet every constraint."""
        return self.grid.recipes(self.grid.sample(n, np.random.default_rng(rng)))

    def grid_distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Euclidean distance in grid steps over the declared parameters.

        A numeric parameter adds (|a - b| / step)², a categorical or fixed one adds 1 when the
        values differ (one step: "another choice"), and so does a parameter that applies in
        one recipe only. Derived values follow from the others and are left out.
        ``space.grid.distances`` is the same measure on grid indices.
        """
        total = 0.0
        for p in self.declared.values():
            if not (p.applies(a) and p.applies(b)):
                total += float(p.applies(a) != p.applies(b))
                continue
            x, y = a[p.name], b[p.name]
            total += ((x - y) / p.step) ** 2 if p.gridded else float(x != y)
        return math.sqrt(total)

    # ------------------------------------------------------------------ encodings
    @property
    def dim(self) -> int:
        """Length of the search vector."""
        return self.grid.dim

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the search vector: every dimension is scaled to [0, 1] (see GridCodec)."""
        return np.zeros(self.dim), np.ones(self.dim)

    def encode(self, recipe: Mapping[str, Any]) -> np.ndarray:
        """The search vector of ``recipe``; fixed parameters have no dimension."""
        return self.grid.encode(recipe)

    def decode(self, vector: Sequence[float] | np.ndarray) -> Recipe:
        """The valid recipe at ``vector``: snapped to the grid, clipped, constraints repaired."""
        return self.grid.recipes(self.grid.index(np.asarray(vector, dtype=float)[None, :]))[0]

    def snap(self, matrix: np.ndarray) -> np.ndarray:
        """Each row (a search vector) moved to its valid grid point, still as a search vector."""
        return self.grid.vectors(self.grid.index(matrix))

    def features(self, recipes: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
        """The model feature table of ``recipes``; other columns (results, ids) are ignored.

        Numeric parameters and derived values in their own units, categoricals one-hot as
        ``name=choice`` over the declared choices: the columns do not depend on overrides. A
        parameter that does not apply enters as `space_encoding.NOT_APPLIED` (whatever an old
        record holds there).
        """
        frame = recipes if isinstance(recipes, pd.DataFrame) else pd.DataFrame(list(recipes))
        values = {}
        for name, p in self.declared.items():
            if name not in frame:
                raise ValueError(f"features: missing parameter {name!r}")
            column = frame[name]
            if p.condition is not None:
                column = column.mask(column.eq(""))  # a blank cell read as text
            try:
                values[name] = column.to_numpy(dtype=float if p.numeric else object)
            except (TypeError, ValueError):
                raise ValueError(f"features: {name} has values that are not numbers") from None
        return self.grid.feature_frame(values, len(frame))
