"""Building blocks of a design space (parameters, constraints, derived values) and its schema.

`parse_space` reads the structure of ``agent/data/design_space.toml`` (documented at its top)
into these dataclasses; `agent.space.design.DesignSpace` puts them together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np

TOL = 1e-9  # float slack for range and constraint checks
GRID_TOL = 1e-6  # within a millionth of a step of a grid point is on the grid

Kind = Literal["continuous", "integer", "categorical", "fixed"]
KINDS: tuple[str, ...] = ("continuous", "integer", "categorical", "fixed")
Value = float | int | str
Recipe = dict[str, Value | None]  # None: the parameter does not apply (see Condition)


def decimals(x: float) -> int:
    """Decimal places needed to write x as typed (0.0005 -> 4, 650.0 -> 0)."""
    exponent = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def is_blank(x: Any) -> bool:
    """No value: None, an empty cell or NaN (how pandas reads an empty cell)."""
    return x is None or x == "" or (isinstance(x, float) and math.isnan(x))


def fmt(x: Any) -> str:
    """A value as written in messages: numbers short (0.0725, 650), text quoted."""
    return f"{x:g}" if is_number(x) else repr(x)


@dataclass(frozen=True)
class Condition:
    """``only_when = { coating_material = ["B", "W"] }``: the parameter applies only when the
    categorical ``parent`` takes one of ``choices``; elsewhere its value is blank (None)."""

    parent: str
    choices: tuple[str, ...]

    def holds(self, recipe: Mapping[str, Any]) -> bool:
        return recipe.get(self.parent) in self.choices

    def describe(self, choices: tuple[str, ...] | None = None) -> str:
        """'coating_material is B, W, Co or Al' (or the ``choices`` given), for messages."""
        *rest, last = choices or self.choices
        return f"{self.parent} is {', '.join(rest) + ' or ' if rest else ''}{last}"


@dataclass(frozen=True)
class Parameter:
    """One recipe parameter. Continuous and integer ones live on the grid ``low + k * step``."""

    name: str
    kind: Kind
    unit: str = ""
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    choices: tuple[str, ...] = ()  # categorical; a declared text `fixed` has (value,)
    value: Value | None = None  # fixed (declared or pinned)
    condition: Condition | None = None  # applies only when another parameter allows it

    def applies(self, recipe: Mapping[str, Any]) -> bool:
        return self.condition is None or self.condition.holds(recipe)

    @property
    def gridded(self) -> bool:
        return self.kind in ("continuous", "integer")

    @property
    def numeric(self) -> bool:
        """Its values are numbers (a gridded parameter or a fixed number)."""
        return self.gridded or (self.kind == "fixed" and not isinstance(self.value, str))

    @property
    def n_steps(self) -> int:
        return round((self.high - self.low) / self.step)

    @property
    def decimals(self) -> int:
        return max(decimals(self.low), decimals(self.step))

    def at(self, k: int) -> float | int:
        """The value of grid point k, free of float noise (0.0035, not 0.0034999999)."""
        x = round(self.low + k * self.step, self.decimals)
        return int(round(x)) if self.kind == "integer" else x

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid value of this parameter, or None."""
        if self.kind == "fixed":
            if self.numeric:
                same = is_number(value) and abs(value - self.value) <= TOL
            else:
                same = value == self.value
            return (
                None if same else f"{self.name} = {fmt(value)} but it is fixed at {fmt(self.value)}"
            )
        if self.kind == "categorical":
            if value in self.choices:
                return None
            return f"{self.name} = {fmt(value)} is not one of {', '.join(self.choices)}"
        if not is_number(value) or not math.isfinite(value):
            return f"{self.name} = {fmt(value)} is not a number"
        if not self.low - TOL <= value <= self.high + TOL:
            return f"{self.name} = {fmt(value)} is outside [{fmt(self.low)}, {fmt(self.high)}]"
        k = (value - self.low) / self.step
        if abs(k - round(k)) > GRID_TOL:
            return f"{self.name} = {fmt(value)} is not on the {fmt(self.step)} grid"
        return None

    def coerce(self, value: Any) -> Value:
        """``value`` (or its text from a config file or command line), checked, as on the grid."""
        if self.numeric and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{self.name} = {value!r} is not a number") from None
        if problem := self.problem(value):
            raise ValueError(problem)
        return self.at(round((value - self.low) / self.step)) if self.gridded else value


@dataclass(frozen=True)
class Constraint:
    """``min <= sum(coefficient * parameter) <= max`` over numeric parameters."""

    name: str
    terms: tuple[tuple[str, float], ...]
    min: float | None = None
    max: float | None = None
    repair: tuple[str, ...] = ()  # terms a repair reduces first (default: all of them)

    def describe(self) -> str:
        lhs = " + ".join(n if c == 1 else f"{fmt(c)}*{n}" for n, c in self.terms)
        low = "" if self.min is None else f"{fmt(self.min)} <= "
        high = "" if self.max is None else f" <= {fmt(self.max)}"
        return f"{low}{lhs}{high}"

    def problem(self, values: Mapping[str, Any]) -> str | None:
        total = sum(c * values[n] for n, c in self.terms)
        broken = (self.max is not None and total > self.max + TOL) or (
            self.min is not None and total < self.min - TOL
        )
        return (
            f"constraint {self.name} ({self.describe()}) violated: {total:.6g}" if broken else None
        )


@dataclass(frozen=True)
class Derived:
    """A value computed from parameters (``mn_fraction = 1 - ni - co``): shown, never searched."""

    name: str
    constant: float
    terms: tuple[tuple[str, float], ...]
    decimals: int
    unit: str = ""

    def compute(self, values: Mapping[str, Any]) -> Any:
        """Works on scalars and on numpy columns alike."""
        total = self.constant + sum(c * values[n] for n, c in self.terms)
        return np.round(total, self.decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


_FIELDS = {
    "continuous": {"kind", "unit", "low", "high", "step", "only_when"},
    "integer": {"kind", "unit", "low", "high", "step", "only_when"},
    "categorical": {"kind", "unit", "choices", "only_when"},
    "fixed": {"kind", "unit", "value", "only_when"},
}


def parse_space(
    d: Mapping[str, Any],
) -> tuple[list[Parameter], list[Constraint], list[Derived]]:
    """The parameters, constraints and derived values of a design-space table."""
    _no_extra("design space", d, {"parameters", "constraints", "derived"})
    specs = d.get("parameters", {})
    params = [parse_parameter(name, spec) for name, spec in specs.items()]
    if not params:
        raise ValueError("a design space needs at least one parameter")
    by_name = {p.name: p for p in params}
    params = [
        replace(p, condition=parse_condition(p.name, specs[p.name]["only_when"], by_name))
        if "only_when" in specs[p.name]
        else p
        for p in params
    ]
    derived = [parse_derived(name, spec, by_name) for name, spec in d.get("derived", {}).items()]
    constraints = [parse_constraint(i, spec) for i, spec in enumerate(d.get("constraints", []))]
    return params, constraints, derived


def parse_parameter(name: str, spec: Mapping[str, Any]) -> Parameter:
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{name}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    _no_extra(name, spec, _FIELDS[kind])
    unit = str(spec.get("unit", ""))
    if kind == "categorical":
        choices = tuple(str(c) for c in spec.get("choices", ()))
        if len(choices) < 2 or len(set(choices)) < len(choices):
            raise ValueError(f"{name}: a categorical parameter needs two or more distinct choices")
        return Parameter(name, kind, unit, choices=choices)
    if kind == "fixed":
        if "value" not in spec:
            raise ValueError(f"{name}: a fixed parameter needs a value")
        value = spec["value"]
        choices = (value,) if isinstance(value, str) else ()
        return Parameter(name, kind, unit, value=value, choices=choices)
    try:
        low, high = float(spec["low"]), float(spec["high"])
        step = float(spec["step"] if kind == "continuous" else spec.get("step", 1))
    except KeyError as missing:
        raise ValueError(f"{name}: a {kind} parameter needs {missing}") from None
    if not (low < high and step > 0):
        raise ValueError(f"{name}: needs low < high and step > 0")
    if kind == "integer" and not all(x.is_integer() for x in (low, high, step)):
        raise ValueError(f"{name}: an integer parameter needs whole low, high and step")
    p = Parameter(name, kind, unit, low, high, step)
    if abs((high - low) / step - p.n_steps) > GRID_TOL:
        raise ValueError(f"{name}: high {fmt(high)} is not on the {fmt(step)} grid from {fmt(low)}")
    return p


def parse_condition(name: str, spec: Any, params: Mapping[str, Parameter]) -> Condition:
    """``only_when = { parent = [choice, ...] }`` of parameter ``name``."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValueError(f"{name}: only_when must name one parameter: {{ parent = [choices] }}")
    ((parent, choices),) = spec.items()
    owner = params.get(parent)
    if owner is None or owner.kind != "categorical" or parent == name:
        raise ValueError(f"{name}: only_when needs another categorical parameter, got {parent!r}")
    choices = (choices,) if isinstance(choices, str) else tuple(str(c) for c in choices)
    if not choices or not set(choices) < set(owner.choices):
        raise ValueError(
            f"{name}: only_when {parent} needs some but not all of {', '.join(owner.choices)}"
        )
    return Condition(parent, tuple(c for c in owner.choices if c in choices))


def parse_constraint(i: int, spec: Mapping[str, Any]) -> Constraint:
    name = str(spec.get("name", f"constraint_{i + 1}"))
    _no_extra(name, spec, {"name", "terms", "min", "max", "repair"})
    terms = _terms(name, spec.get("terms"))
    if spec.get("min") is None and spec.get("max") is None:
        raise ValueError(f"constraint {name}: needs min, max or both")
    repair = tuple(spec.get("repair", ()))
    if not set(repair) <= {n for n, _ in terms}:
        raise ValueError(f"constraint {name}: repair must list some of its terms")
    bounds = {k: float(spec[k]) for k in ("min", "max") if spec.get(k) is not None}
    return Constraint(name, terms, repair=repair, **bounds)


def parse_derived(name: str, spec: Mapping[str, Any], params: Mapping[str, Parameter]) -> Derived:
    _no_extra(name, spec, {"constant", "terms", "unit"})
    terms = _terms(name, spec.get("terms"))
    constant = float(spec.get("constant", 0.0))
    # as many decimals as its terms can produce, so 1 - 0.94 - 0.035 prints as 0.025
    places = [decimals(constant)] + [
        decimals(c) + params[n].decimals for n, c in terms if n in params and params[n].gridded
    ]
    return Derived(name, constant, terms, max(places), str(spec.get("unit", "")))


def _terms(owner: str, terms: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(terms, Mapping) or not terms:
        raise ValueError(f"{owner}: terms must be a table {{parameter = coefficient}}")
    return tuple((str(n), float(c)) for n, c in terms.items())


def _no_extra(owner: str, spec: Mapping[str, Any], allowed: set[str]) -> None:
    if extra := sorted(set(spec) - allowed):
        raise ValueError(f"{owner}: unexpected keys {', '.join(extra)}")
