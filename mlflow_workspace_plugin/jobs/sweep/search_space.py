"""A sweep's ``search_space``: the ten hyperparameter distributions with Azure ML's (hyperopt's) semantics.

Every distribution maps points of the unit cube to parameter values (inverse CDF), so random sampling
(numpy) and Sobol sampling (scipy QMC) share one code path. Semantics (JOBS.md §2.2):

=============  ============================  ==============================================
type           fields                        value
=============  ============================  ==============================================
choice         values                        one of the values (dict items: nested spaces)
randint        upper                         int in ``[0, upper)``
uniform        min_value, max_value          float in ``[min, max)``
quniform       min_value, max_value, q       ``round(uniform(min, max) / q) * q``
loguniform     min_value, max_value          ``exp(uniform(min, max))``: bounds in log space
qloguniform    min_value, max_value, q       ``round(exp(uniform(min, max)) / q) * q``
normal         mu, sigma                     ``normal(mu, sigma)``
qnormal        mu, sigma, q                  ``round(normal(mu, sigma) / q) * q``
lognormal      mu, sigma                     ``exp(normal(mu, sigma))``
qlognormal     mu, sigma, q                  ``round(exp(normal(mu, sigma)) / q) * q``
=============  ============================  ==============================================

Value types: ``randint`` gives ints; the ``q*`` forms give ints when ``q`` is an int (the value is then
a whole number anyway, and ``--batch-size 32`` is what an ``argparse`` ``type=int`` expects), floats
otherwise (cleaned of binary noise, ``0.3`` not ``0.30000000000000004``). Like hyperopt, q-rounding
may step just outside ``[min, max]`` (``quniform(1, 10, 4)`` can give 12). Rounding is Python's
(half to even), as numpy's in hyperopt.

A ``choice`` item that is a mapping is a conditional branch: its values are constants or nested
distributions, and the sampled value is the mapping with its nested distributions sampled
(``{"name": "resnet", "lr": 0.01}``); :func:`flatten_params` turns it into ``model.name``/``model.lr``
params. ``logbase`` (random sampling's field) selects the base of the log forms; default ``e``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from scipy.special import ndtri

from mlflow_workspace_plugin.jobs.sweep.errors import SweepSpecError

Scalar = str | int | float | bool
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NORMAL_EPS = 1e-12  # keeps ndtri finite when a Sobol point is exactly 0


def _q_round(value: float, q: int | float) -> int | float:
    steps = round(value / q)
    if isinstance(q, int):
        return int(steps) * q
    decimals = max(12, 3 - math.floor(math.log10(abs(q))))
    return round(steps * q, decimals)


def _unit_normal(u: float) -> float:
    return float(ndtri(min(max(u, _NORMAL_EPS), 1.0 - _NORMAL_EPS)))


class Distribution(ABC):
    """One hyperparameter's distribution: maps ``dimensions()`` unit-cube coordinates to a value."""

    type_name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]

    def dimensions(self) -> int:
        """How many unit-cube coordinates :meth:`from_unit` consumes."""
        return 1

    @abstractmethod
    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> Any:
        """The value at unit-cube coordinates ``u`` (each in ``[0, 1)``)."""

    def size(self) -> int | None:
        """Number of distinct values, or None when continuous/unbounded."""
        return None

    def enumerate(self) -> Iterator[Any]:
        """Every value of a finite distribution, in a fixed order."""
        raise TypeError(f"{self.type_name} has no finite set of values")

    def to_rest(self) -> list:
        """The REST encoding the service shows, e.g. ``["uniform", [0.01, 0.9]]``."""
        return [self.type_name, [getattr(self, name) for name in self.fields]]

    def to_yaml(self) -> dict:
        """The YAML mapping this distribution was written as."""
        return {"type": self.type_name, **{name: getattr(self, name) for name in self.fields}}

    def nested(self) -> Iterator[tuple[str, Distribution]]:
        """Distributions nested inside this one, as (relative path, distribution)."""
        return iter(())


@dataclass(frozen=True)
class Choice(Distribution):
    """One of ``values``; mapping items are conditional branches holding constants and distributions."""

    values: tuple[Any, ...]
    type_name: ClassVar[str] = "choice"
    fields: ClassVar[tuple[str, ...]] = ("values",)

    def _branch_distributions(self) -> Iterator[tuple[int, str, Distribution]]:
        for index, item in enumerate(self.values):
            if isinstance(item, Mapping):
                for key, value in item.items():
                    if isinstance(value, Distribution):
                        yield index, key, value

    def dimensions(self) -> int:
        return 1 + sum(dist.dimensions() for _, _, dist in self._branch_distributions())

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> Any:
        chosen = min(int(u[0] * len(self.values)), len(self.values) - 1)
        item = self.values[chosen]
        if not isinstance(item, Mapping):
            return item
        offset = 1
        result: dict[str, Any] = {}
        for index, key, dist in self._branch_distributions():
            width = dist.dimensions()
            if index == chosen:
                result[key] = dist.from_unit(u[offset:offset + width], log_base)
            offset += width
        return {key: result.get(key, value) for key, value in item.items()}

    def size(self) -> int | None:
        total = 0
        for item in self.values:
            if not isinstance(item, Mapping):
                total += 1
                continue
            branch = 1
            for value in item.values():
                if isinstance(value, Distribution):
                    value_size = value.size()
                    if value_size is None:
                        return None
                    branch *= value_size
            total += branch
        return total

    def enumerate(self) -> Iterator[Any]:
        for item in self.values:
            if not isinstance(item, Mapping):
                yield item
                continue
            keys = list(item)
            options = [list(v.enumerate()) if isinstance(v, Distribution) else [v] for v in item.values()]
            for combo in itertools.product(*options):
                yield dict(zip(keys, combo, strict=True))

    def to_rest(self) -> list:
        items = [
            {k: (v.to_rest() if isinstance(v, Distribution) else v) for k, v in item.items()}
            if isinstance(item, Mapping) else item
            for item in self.values
        ]
        return [self.type_name, [items]]

    def to_yaml(self) -> dict:
        items = [
            {k: (v.to_yaml() if isinstance(v, Distribution) else v) for k, v in item.items()}
            if isinstance(item, Mapping) else item
            for item in self.values
        ]
        return {"type": self.type_name, "values": items}

    def nested(self) -> Iterator[tuple[str, Distribution]]:
        for index, key, dist in self._branch_distributions():
            yield f"values[{index}].{key}", dist
            for sub_path, sub in dist.nested():
                yield f"values[{index}].{key}.{sub_path}", sub

    def branch_keys(self) -> set[str]:
        """Keys of the mapping items (reachable as ``search_space.<name>.<key>``)."""
        return {key for item in self.values if isinstance(item, Mapping) for key in item}


@dataclass(frozen=True)
class Randint(Distribution):
    """An integer in ``[0, upper)``: ``upper`` is excluded."""

    upper: int
    type_name: ClassVar[str] = "randint"
    fields: ClassVar[tuple[str, ...]] = ("upper",)

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> int:
        return min(int(u[0] * self.upper), self.upper - 1)

    def size(self) -> int:
        return self.upper

    def enumerate(self) -> Iterator[int]:
        return iter(range(self.upper))


@dataclass(frozen=True)
class Uniform(Distribution):
    """A float uniformly in ``[min_value, max_value]``."""

    min_value: float
    max_value: float
    type_name: ClassVar[str] = "uniform"
    fields: ClassVar[tuple[str, ...]] = ("min_value", "max_value")

    def _raw(self, u: Sequence[float]) -> float:
        return self.min_value + float(u[0]) * (self.max_value - self.min_value)

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> float:
        return float(self._raw(u))


@dataclass(frozen=True)
class QUniform(Uniform):
    """``round(uniform(min_value, max_value) / q) * q``."""

    q: int | float = 1
    type_name: ClassVar[str] = "quniform"
    fields: ClassVar[tuple[str, ...]] = ("min_value", "max_value", "q")

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> int | float:
        return _q_round(self._raw(u), self.q)


@dataclass(frozen=True)
class LogUniform(Uniform):
    """``exp(uniform(min_value, max_value))``: the bounds are exponents."""

    type_name: ClassVar[str] = "loguniform"

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> float:
        return float(log_base ** self._raw(u))


@dataclass(frozen=True)
class QLogUniform(Uniform):
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""

    q: int | float = 1
    type_name: ClassVar[str] = "qloguniform"
    fields: ClassVar[tuple[str, ...]] = ("min_value", "max_value", "q")

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> int | float:
        return _q_round(log_base ** self._raw(u), self.q)


@dataclass(frozen=True)
class Normal(Distribution):
    """``normal(mu, sigma)``."""

    mu: float
    sigma: float
    type_name: ClassVar[str] = "normal"
    fields: ClassVar[tuple[str, ...]] = ("mu", "sigma")

    def _raw(self, u: Sequence[float]) -> float:
        return self.mu + self.sigma * _unit_normal(float(u[0]))

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> float:
        return float(self._raw(u))


@dataclass(frozen=True)
class QNormal(Normal):
    """``round(normal(mu, sigma) / q) * q``."""

    q: int | float = 1
    type_name: ClassVar[str] = "qnormal"
    fields: ClassVar[tuple[str, ...]] = ("mu", "sigma", "q")

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> int | float:
        return _q_round(self._raw(u), self.q)


@dataclass(frozen=True)
class LogNormal(Normal):
    """``exp(normal(mu, sigma))``."""

    type_name: ClassVar[str] = "lognormal"

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> float:
        return float(log_base ** self._raw(u))


@dataclass(frozen=True)
class QLogNormal(Normal):
    """``round(exp(normal(mu, sigma)) / q) * q``."""

    q: int | float = 1
    type_name: ClassVar[str] = "qlognormal"
    fields: ClassVar[tuple[str, ...]] = ("mu", "sigma", "q")

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> int | float:
        return _q_round(log_base ** self._raw(u), self.q)


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.type_name: cls
    for cls in (Choice, Randint, Uniform, QUniform, LogUniform, QLogUniform, Normal, QNormal, LogNormal, QLogNormal)
}


@dataclass(frozen=True)
class SearchSpace:
    """The parsed ``search_space``: hyperparameter name -> distribution, in YAML order."""

    params: Mapping[str, Distribution]

    def dimensions(self) -> int:
        """Unit-cube dimensions of the whole space (one per distribution, nested branches included)."""
        return sum(dist.dimensions() for dist in self.params.values())

    def from_unit(self, u: Sequence[float], log_base: float = math.e) -> dict[str, Any]:
        """The trial's values at unit-cube point ``u`` (length :meth:`dimensions`)."""
        values: dict[str, Any] = {}
        offset = 0
        for name, dist in self.params.items():
            width = dist.dimensions()
            values[name] = dist.from_unit(u[offset:offset + width], log_base)
            offset += width
        return values

    @property
    def space_size(self) -> int | None:
        """Number of distinct trials for a space of only ``choice``/``randint`` values, else None."""
        total = 1
        for dist in self.params.values():
            size = dist.size()
            if size is None:
                return None
            total *= size
        return total

    def enumerate(self) -> Iterator[dict[str, Any]]:
        """Every point of a finite space, first parameter varying slowest (the grid order)."""
        names = list(self.params)
        for combo in itertools.product(*(list(dist.enumerate()) for dist in self.params.values())):
            yield dict(zip(names, combo, strict=True))

    def walk(self) -> Iterator[tuple[str, Distribution]]:
        """Every distribution with its YAML path (``search_space.lr``, nested branches included)."""
        for name, dist in self.params.items():
            yield f"search_space.{name}", dist
            for sub_path, sub in dist.nested():
                yield f"search_space.{name}.{sub_path}", sub

    def to_rest(self) -> dict[str, list]:
        """REST encoding of every parameter (``{"lr": ["uniform", [0.01, 0.9]]}``)."""
        return {name: dist.to_rest() for name, dist in self.params.items()}

    def to_yaml(self) -> dict[str, dict]:
        """The space as YAML mappings (current spelling)."""
        return {name: dist.to_yaml() for name, dist in self.params.items()}


def flatten_params(values: Mapping[str, Any]) -> dict[str, Scalar]:
    """A trial's values as flat MLflow params: nested branch mappings become ``name.key`` entries."""
    flat: dict[str, Scalar] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            for key, sub in flatten_params(value).items():
                flat[f"{name}.{key}"] = sub
        else:
            flat[name] = value
    return flat


def format_value(value: Any) -> str:
    """How a sampled value is written into a command line and an MLflow param (``0.01``, ``32``, ``gbdt``)."""
    if isinstance(value, Mapping):
        return json.dumps(value)
    return str(value)


# ---------------------------------------------------------------- parsing


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(raw: Mapping, field: str, path: str, type_name: str) -> int | float:
    value = raw[field]
    if not _is_number(value):
        raise SweepSpecError(f"{path}.{field}: must be a finite number for type '{type_name}', got {value!r}")
    return value


def _positive(raw: Mapping, field: str, path: str, type_name: str) -> int | float:
    value = _number(raw, field, path, type_name)
    if value <= 0:
        raise SweepSpecError(f"{path}.{field}: must be greater than 0 for type '{type_name}', got {value!r}")
    return value


def _bounds(raw: Mapping, path: str, type_name: str) -> tuple[int | float, int | float]:
    low = _number(raw, "min_value", path, type_name)
    high = _number(raw, "max_value", path, type_name)
    if high <= low:
        raise SweepSpecError(
            f"{path}.max_value: must be greater than min_value ({low!r}) for type '{type_name}', got {high!r}"
        )
    if type_name in ("loguniform", "qloguniform") and high > 700:
        raise SweepSpecError(
            f"{path}.max_value: the log forms take exponents (the value is exp(x)); {high!r} overflows, "
            "write e.g. max_value: -2.3 for 0.1"
        )
    return low, high


def _choice_item(item: Any, path: str) -> Any:
    if isinstance(item, bool | str) or _is_number(item):
        return item
    if isinstance(item, Mapping):
        branch: dict[str, Any] = {}
        for key, value in item.items():
            key_path = f"{path}.{key}"
            if not isinstance(key, str) or not KEY_PATTERN.match(key):
                raise SweepSpecError(f"{key_path}: keys of a choice branch must be identifiers (letters, digits, _)")
            if isinstance(value, Mapping):
                branch[key] = parse_distribution(value, key_path)
            elif isinstance(value, bool | str) or _is_number(value):
                branch[key] = value
            else:
                raise SweepSpecError(
                    f"{key_path}: must be a number, string, boolean or a distribution mapping, got {value!r}"
                )
        if not branch:
            raise SweepSpecError(f"{path}: an empty mapping is not a choice value")
        return branch
    raise SweepSpecError(
        f"{path}: a choice value must be a number, string, boolean or a mapping (a conditional branch), got {item!r}"
    )


def parse_distribution(raw: Any, path: str) -> Distribution:
    """Parse one distribution mapping (``{type: uniform, min_value: 0, max_value: 1}``) found at ``path``."""
    allowed_types = ", ".join(DISTRIBUTIONS)
    if not isinstance(raw, Mapping):
        raise SweepSpecError(
            f"{path}: must be a distribution mapping with 'type' (one of {allowed_types}), got {raw!r}"
        )
    type_name = raw.get("type")
    if type_name is None:
        raise SweepSpecError(f"{path}.type: required; one of {allowed_types}")
    cls = DISTRIBUTIONS.get(str(type_name).lower()) if isinstance(type_name, str) else None
    if cls is None:
        raise SweepSpecError(f"{path}.type: {type_name!r} is not a distribution; allowed: {allowed_types}")
    type_name = cls.type_name
    for field in raw:
        if field != "type" and field not in cls.fields:
            raise SweepSpecError(
                f"{path}.{field}: unknown field for type '{type_name}'; allowed: {', '.join(cls.fields)}"
            )
    for field in cls.fields:
        if field not in raw:
            raise SweepSpecError(
                f"{path}.{field}: required for type '{type_name}' (fields: {', '.join(cls.fields)})"
            )
    if cls is Choice:
        values = raw["values"]
        if not isinstance(values, list) or not values:
            raise SweepSpecError(f"{path}.values: must be a non-empty list, got {values!r}")
        return Choice(tuple(_choice_item(item, f"{path}.values[{i}]") for i, item in enumerate(values)))
    if cls is Randint:
        upper = raw["upper"]
        if not isinstance(upper, int) or isinstance(upper, bool) or upper < 1:
            raise SweepSpecError(f"{path}.upper: must be an integer >= 1 (values are 0..upper-1), got {upper!r}")
        return Randint(upper)
    if issubclass(cls, Uniform):
        low, high = _bounds(raw, path, type_name)
        if "q" in cls.fields:
            return cls(low, high, _positive(raw, "q", path, type_name))
        return cls(low, high)
    mu = _number(raw, "mu", path, type_name)
    sigma = _positive(raw, "sigma", path, type_name)
    if "q" in cls.fields:
        return cls(mu, sigma, _positive(raw, "q", path, type_name))
    return cls(mu, sigma)


def parse_search_space(raw: Any, path: str = "search_space") -> SearchSpace:
    """Parse a ``search_space`` mapping; errors name the field path (``search_space.lr.max_value``)."""
    if not isinstance(raw, Mapping) or not raw:
        raise SweepSpecError(
            f"{path}: must be a non-empty mapping of hyperparameter name -> distribution, got {raw!r}"
        )
    params: dict[str, Distribution] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not KEY_PATTERN.match(name):
            raise SweepSpecError(
                f"{path}: key {name!r} is not allowed; names are identifiers (letters, digits, _; not starting "
                "with a digit)"
            )
        params[name] = parse_distribution(value, f"{path}.{name}")
    return SearchSpace(params)


__all__ = [
    "DISTRIBUTIONS",
    "Choice",
    "Distribution",
    "LogNormal",
    "LogUniform",
    "Normal",
    "QLogNormal",
    "QLogUniform",
    "QNormal",
    "QUniform",
    "Randint",
    "SearchSpace",
    "Uniform",
    "flatten_params",
    "format_value",
    "parse_distribution",
    "parse_search_space",
]
