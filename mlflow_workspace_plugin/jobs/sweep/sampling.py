"""Sampling algorithms of a sweep: ``random`` (numpy or Sobol), ``grid`` and ``bayesian`` (Optuna TPE).

One interface for the controller (:class:`Sampler`): ``next_trial()`` returns the next trial's
hyperparameter values (a dict, JSON-friendly) or None when the space is exhausted, and
``report(trial_index, value)`` tells the sampler a finished trial's objective (only ``bayesian``
uses it). ``trial_index`` is the 0-based position of the trial among those ``next_trial`` returned.

Finite spaces (only ``choice``/``randint``) are never sampled twice, whatever the algorithm: the
sampler stops after ``space_size`` distinct trials (JOBS.md §2.3, inferred from the service reporting
``space_size`` for random sweeps too). The caller stops earlier at ``max_total_trials``.
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import qmc

from mlflow_workspace_plugin.jobs.sweep.errors import SweepExtraMissingError, SweepSpecError
from mlflow_workspace_plugin.jobs.sweep.search_space import Choice, QUniform, SearchSpace, Uniform

AlgorithmType = Literal["random", "grid", "bayesian"]
Goal = Literal["minimize", "maximize"]

GRID_TYPES = ("choice",)
BAYESIAN_TYPES = ("choice", "uniform", "quniform")
_DUPLICATE_RETRIES = 64  # fresh draws tried before picking an unseen point of a finite space directly
_ENUMERATE_LIMIT = 1_000_000  # largest finite space enumerated for the direct pick


@dataclass(frozen=True)
class SamplingSettings:
    """The parsed ``sampling_algorithm``: ``type`` plus random's ``seed``/``rule``/``logbase``.

    ``seed`` also seeds ``bayesian`` (Optuna's TPE), so a bayesian sweep replays too when its trials
    report the same values in the same order.
    """

    type: AlgorithmType = "random"
    seed: int | None = None
    rule: Literal["random", "sobol"] = "random"
    logbase: float = math.e


def check_algorithm_support(space: SearchSpace, algorithm: AlgorithmType) -> None:
    """Raise naming the first parameter ``algorithm`` cannot sample (grid: choice only; bayesian: choice,
    uniform, quniform, and choices of plain values)."""
    allowed = {"grid": GRID_TYPES, "bayesian": BAYESIAN_TYPES}.get(algorithm)
    if allowed is None:
        return
    for path, dist in space.walk():
        if dist.type_name not in allowed:
            raise SweepSpecError(
                f"{path}.type: '{dist.type_name}' cannot be used with sampling_algorithm {algorithm}; "
                f"{algorithm} supports only: {', '.join(allowed)}"
            )
        if algorithm == "bayesian" and isinstance(dist, Choice) and dist.branch_keys():
            raise SweepSpecError(
                f"{path}.values: bayesian sampling supports only plain values (numbers, strings, booleans) in a "
                "choice, not nested mappings; use random or grid sampling for conditional spaces"
            )


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True)


class Sampler(ABC):
    """Produces trials' hyperparameters one at a time; ``None`` once the space is exhausted."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.space_size: int | None = space.space_size
        self.trials: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    @property
    def exhausted(self) -> bool:
        """True when a finite space has produced every distinct point."""
        return self.space_size is not None and len(self._seen) >= self.space_size

    def next_trial(self) -> dict[str, Any] | None:
        """The next trial's values (YAML order), or None when the space is exhausted."""
        if self.exhausted:
            return None
        values = self._next()
        if values is None:
            return None
        self._seen.add(_key(values))
        self.trials.append(values)
        return values

    def report(self, trial_index: int, objective_value: float | None) -> None:
        """Record trial ``trial_index``'s objective (its score; None when it has none, e.g. failed)."""
        if not 0 <= trial_index < len(self.trials):
            raise IndexError(f"trial_index {trial_index} was never sampled (0..{len(self.trials) - 1})")

    @abstractmethod
    def _next(self) -> dict[str, Any] | None:
        """A point not yet in ``self._seen`` when the space is finite."""

    def _unseen_points(self) -> Iterator[dict[str, Any]]:
        return (point for point in self.space.enumerate() if _key(point) not in self._seen)


class RandomSampler(Sampler):
    """Independent draws (numpy ``Generator``) or a scrambled Sobol sequence (``rule="sobol"``).

    Without a seed one is drawn from the OS and kept in ``self.seed`` so the sweep can record it.
    """

    def __init__(
        self, space: SearchSpace, seed: int | None = None, rule: str = "random", logbase: float = math.e
    ) -> None:
        super().__init__(space)
        if rule not in ("random", "sobol"):
            raise SweepSpecError(f"sampling_algorithm.rule: {rule!r} is not allowed; allowed: random, sobol")
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
        self.rule = rule
        self.logbase = logbase
        self._rng = np.random.default_rng(self.seed)
        self._sobol = qmc.Sobol(d=space.dimensions(), scramble=True, seed=self.seed) if rule == "sobol" else None

    def _unit_point(self) -> np.ndarray:
        if self._sobol is not None:
            return self._sobol.random(1)[0]
        return self._rng.random(self.space.dimensions())

    def _next(self) -> dict[str, Any] | None:
        for _ in range(_DUPLICATE_RETRIES):
            values = self.space.from_unit(self._unit_point(), self.logbase)
            if self.space_size is None or _key(values) not in self._seen:
                return values
        if self.space_size > _ENUMERATE_LIMIT:
            return self.space.from_unit(self._unit_point(), self.logbase)
        unseen = list(self._unseen_points())
        return unseen[int(self._rng.integers(len(unseen)))] if unseen else None


class GridSampler(Sampler):
    """Every combination of the ``choice`` values once, first parameter varying slowest, then exhausted."""

    def __init__(self, space: SearchSpace) -> None:
        check_algorithm_support(space, "grid")
        super().__init__(space)
        self._points = space.enumerate()

    def _next(self) -> dict[str, Any] | None:
        return next(self._points, None)


def import_optuna(feature: str = "sampling_algorithm bayesian") -> Any:
    """Optuna, or an error naming ``pip install 'mlflow-workspace-plugin[sweep]'`` when it is missing."""
    try:
        return importlib.import_module("optuna")
    except ImportError as exc:
        raise SweepExtraMissingError(feature) from exc


class BayesianSampler(Sampler):
    """Optuna's TPE through ask/tell (constant liar: running trials count as pending, not as unknown).

    ``quniform`` is searched as the underlying ``uniform`` and then q-rounded, which keeps the
    service's ``round(uniform/q)*q`` semantics exactly; TPE learns from the raw draw.
    """

    def __init__(self, space: SearchSpace, goal: Goal, seed: int | None = None) -> None:
        check_algorithm_support(space, "bayesian")
        super().__init__(space)
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
        self._optuna = optuna
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=self.seed, constant_liar=True)
        self._study = optuna.create_study(direction=goal, sampler=sampler)
        dists = optuna.distributions
        self._distributions = {
            name: dists.CategoricalDistribution(list(dist.values)) if isinstance(dist, Choice)
            else dists.FloatDistribution(float(dist.min_value), float(dist.max_value))
            for name, dist in space.params.items()
        }
        self._asked: list[Any] = []  # optuna Trial per trial_index

    def _values(self, params: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, dist in self.space.params.items():
            raw = params[name]
            if isinstance(dist, QUniform):
                values[name] = dist.from_unit([(raw - dist.min_value) / (dist.max_value - dist.min_value)])
            elif isinstance(dist, Uniform):
                values[name] = float(raw)
            else:
                values[name] = raw
        return values

    def _ask(self) -> tuple[Any, dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            trial = self._study.ask(self._distributions)
        return trial, self._values(trial.params)

    def _next(self) -> dict[str, Any] | None:
        fail = self._optuna.trial.TrialState.FAIL
        for _ in range(_DUPLICATE_RETRIES if self.space_size is not None else 1):
            trial, values = self._ask()
            if self.space_size is None or _key(values) not in self._seen:
                self._asked.append(trial)
                return values
            self._study.tell(trial, state=fail)  # a duplicate of a finite space: not a trial
        unseen = next(self._unseen_points(), None)
        if unseen is None:
            return None
        self._study.enqueue_trial(unseen)
        trial, values = self._ask()
        self._asked.append(trial)
        return values

    def report(self, trial_index: int, objective_value: float | None) -> None:
        super().report(trial_index, objective_value)
        trial = self._asked[trial_index]
        if objective_value is None or not math.isfinite(objective_value):
            self._study.tell(trial, state=self._optuna.trial.TrialState.FAIL, skip_if_finished=True)
        else:
            self._study.tell(trial, float(objective_value), skip_if_finished=True)


def make_sampler(settings: SamplingSettings, space: SearchSpace, goal: Goal = "minimize") -> Sampler:
    """The sampler for a parsed ``sampling_algorithm``; ``goal`` matters only to bayesian."""
    if settings.type == "grid":
        return GridSampler(space)
    if settings.type == "bayesian":
        return BayesianSampler(space, goal, settings.seed)
    if settings.type == "random":
        return RandomSampler(space, settings.seed, settings.rule, settings.logbase)
    raise SweepSpecError(
        f"sampling_algorithm: {settings.type!r} is not allowed; allowed: random, grid, bayesian"
    )


__all__ = [
    "BAYESIAN_TYPES",
    "GRID_TYPES",
    "BayesianSampler",
    "GridSampler",
    "RandomSampler",
    "Sampler",
    "SamplingSettings",
    "check_algorithm_support",
    "import_optuna",
    "make_sampler",
]
