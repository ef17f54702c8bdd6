"""The sweep-job YAML, both spellings, into one validated :class:`SweepSpec` (the ``trial`` stays a raw mapping).

==============================================  ==============================================
2021 preview (seed 004)                         today (CLI v2), also accepted
==============================================  ==============================================
``type: sweep_job``                             ``type: sweep``
``algorithm: random``                           ``sampling_algorithm: random`` or
                                                ``{type: random, seed, rule: random|sobol, logbase}``
top-level ``max_total_trials``,                 ``limits: {max_total_trials, max_concurrent_trials,
``max_concurrent_trials``, ``timeout_minutes``  timeout (s), trial_timeout (s)}``
``trial.compute.target``                        top-level ``compute`` (the trial inherits it)
==============================================  ==============================================

Checks made here, before anything runs: keys and types (pydantic, unknown keys rejected), the search
space (:mod:`.search_space`), grid = choice only, bayesian = choice/uniform/quniform only and without
``early_termination``, bayesian needs Optuna (the ``sweep`` extra), limits 1..1000, ``objective.goal``,
and every ``{search_space.x}`` / ``${{search_space.x}}`` in ``trial.command`` naming a defined key
(a key never used is a warning in :attr:`SweepSpec.warnings`). The trial itself is a command job:
:meth:`SweepSpec.trial_job` parses it with :func:`~mlflow_workspace_plugin.jobs.loader.command_job_from_mapping`.

Local choices: ``seed`` is also accepted for ``bayesian`` (Optuna's TPE seed, for replayable sweeps);
a missing ``compute`` means ``local``; ``max_concurrent_trials`` above ``max_total_trials`` is lowered to it;
a missing ``max_concurrent_trials`` means :func:`default_concurrent_trials` (this machine's CPUs).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

from mlflow_workspace_plugin.jobs.errors import JobSpecError, allowed_list, did_you_mean, located
from mlflow_workspace_plugin.jobs.loader import command_job_from_mapping, read_yaml_mapping
from mlflow_workspace_plugin.jobs.overrides import apply_overrides
from mlflow_workspace_plugin.jobs.placeholders import find_placeholders
from mlflow_workspace_plugin.jobs.schema import (
    ComputeField,
    Section,
    TimeoutSeconds,
    problem,
    text_or,
    validate_raw,
)
from mlflow_workspace_plugin.jobs.spec import CommandJob
from mlflow_workspace_plugin.jobs.sweep.early_termination import (
    BanditPolicy,
    EarlyTerminationPolicy,
    EarlyTerminator,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
)
from mlflow_workspace_plugin.jobs.sweep.errors import SweepSpecError
from mlflow_workspace_plugin.jobs.sweep.sampling import (
    Sampler,
    SamplingSettings,
    check_algorithm_support,
    import_optuna,
    make_sampler,
)
from mlflow_workspace_plugin.jobs.sweep.search_space import SearchSpace, parse_search_space

SWEEP_TYPES = ("sweep", "sweep_job")
ALGORITHMS = ("random", "grid", "bayesian")
RULES = ("random", "sobol")
GOALS = ("maximize", "minimize")
POLICIES = ("bandit", "median_stopping", "truncation_selection")
MAX_TRIALS = 1000
DEFAULT_TIMEOUT_SECONDS = 5_184_000  # the service's default limits.timeout (60 days)

Number = StrictInt | StrictFloat
_POLICY_FIELDS = {
    "bandit": ("slack_factor", "slack_amount"),
    "median_stopping": (),
    "truncation_selection": ("truncation_percentage", "exclude_finished_jobs"),
}


def _snake(value: str) -> str:
    """``MedianStopping`` / ``median_stopping`` / ``MEDIAN_STOPPING`` -> ``median_stopping``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", value).lower()


class SamplingAlgorithmSection(Section):
    type: StrictStr
    seed: StrictInt | None = None
    rule: StrictStr | None = None
    logbase: Number | StrictStr | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> SamplingAlgorithmSection:
        kind = self.type.lower()
        if kind not in ALGORITHMS:
            raise problem(f"{self.type!r} is not allowed{did_you_mean(kind, ALGORITHMS)}; "
                          f"allowed: {allowed_list(ALGORITHMS)}", at="type")
        allowed = {"random": ("seed", "rule", "logbase"), "bayesian": ("seed",), "grid": ()}[kind]
        for name in ("seed", "rule", "logbase"):
            if getattr(self, name) is not None and name not in allowed:
                raise problem(f"not a field of {kind} sampling; allowed: {allowed_list(('type', *allowed))}", at=name)
        if self.rule is not None and self.rule.lower() not in RULES:
            raise problem(f"{self.rule!r} is not allowed; allowed: {allowed_list(RULES)}", at="rule")
        if isinstance(self.logbase, str) and self.logbase != "e":
            raise problem(f"{self.logbase!r} is not allowed; allowed: e or a number > 0 other than 1", at="logbase")
        if not isinstance(self.logbase, str | None) and (self.logbase <= 0 or self.logbase == 1):
            raise problem(f"must be e or a number > 0 other than 1, got {self.logbase!r}", at="logbase")
        return self


class ObjectiveSection(Section):
    primary_metric: StrictStr
    goal: StrictStr

    @field_validator("primary_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not value.strip():
            raise problem("must name the metric the training code logs (e.g. test-multi_logloss), got ''")
        return value

    @field_validator("goal")
    @classmethod
    def _goal(cls, value: str) -> str:
        if value.lower() not in GOALS:
            raise problem(
                f"{value!r} is not allowed{did_you_mean(value.lower(), GOALS)}; allowed: {allowed_list(GOALS)}"
            )
        return value.lower()


class LimitsSection(Section):
    max_total_trials: int | None = Field(None, ge=1, le=MAX_TRIALS)
    max_concurrent_trials: int | None = Field(None, ge=1, le=MAX_TRIALS)
    timeout: TimeoutSeconds | None = None
    trial_timeout: TimeoutSeconds | None = None


class EarlyTerminationSection(Section):
    type: StrictStr
    evaluation_interval: int | None = Field(None, ge=0)
    delay_evaluation: int | None = Field(None, ge=0)
    slack_factor: Number | None = Field(None, gt=0)
    slack_amount: Number | None = Field(None, gt=0)
    truncation_percentage: int | None = Field(None, ge=1, le=99)
    exclude_finished_jobs: StrictBool | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> EarlyTerminationSection:
        kind = _snake(self.type)
        if kind not in POLICIES:
            raise problem(f"{self.type!r} is not allowed{did_you_mean(kind, POLICIES)}; "
                          f"allowed: {allowed_list(POLICIES)}", at="type")
        own = _POLICY_FIELDS[kind]
        for name in ("slack_factor", "slack_amount", "truncation_percentage", "exclude_finished_jobs"):
            if getattr(self, name) is not None and name not in own:
                allowed = allowed_list(("type", "evaluation_interval", "delay_evaluation", *own))
                raise problem(f"not a field of the {kind} policy; allowed: {allowed}", at=name)
        if kind == "bandit" and (self.slack_factor is None) == (self.slack_amount is None):
            raise problem("bandit needs exactly one of slack_factor (e.g. 0.1) or slack_amount (e.g. 0.2)",
                          at="slack_factor")
        if kind == "truncation_selection" and self.truncation_percentage is None:
            raise problem("required for truncation_selection; an integer 1..99", at="truncation_percentage")
        return self


SamplingAlgorithmField = text_or(
    SamplingAlgorithmSection, "expected random, grid, bayesian or a mapping {type: random, seed: 42, rule: sobol}"
)


class SweepJobSection(Section):
    """The top level of a sweep YAML, both spellings at once."""

    schema_: StrictStr | None = Field(None, alias="$schema")
    type: StrictStr
    name: StrictStr | None = None
    display_name: StrictStr | None = None
    experiment_name: StrictStr | None = None
    description: StrictStr | None = None
    tags: dict[StrictStr, StrictStr | Number | StrictBool] | None = None
    properties: dict[StrictStr, Any] | None = None
    sampling_algorithm: SamplingAlgorithmField | None = None
    algorithm: StrictStr | None = None  # preview
    search_space: dict[str, Any]
    objective: ObjectiveSection
    early_termination: EarlyTerminationSection | None = None
    limits: LimitsSection | None = None
    max_total_trials: int | None = Field(None, ge=1, le=MAX_TRIALS)  # preview
    max_concurrent_trials: int | None = Field(None, ge=1, le=MAX_TRIALS)  # preview
    timeout_minutes: Number | None = Field(None, gt=0)  # preview
    compute: ComputeField | None = None
    trial: dict[str, Any]
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    identity: Any = None
    queue_settings: Any = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in SWEEP_TYPES:
            raise problem(f"{value!r} is not a sweep job; allowed: sweep (or the preview's sweep_job)")
        return value

    @field_validator("sampling_algorithm", "algorithm", mode="before")
    @classmethod
    def _algorithm_text(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() not in ALGORITHMS:
            raise problem(f"{value!r} is not allowed{did_you_mean(value.lower(), ALGORITHMS)}; "
                          f"allowed: {allowed_list(ALGORITHMS)} (or a mapping {{type: random, seed, rule}})")
        return value


@dataclass(frozen=True)
class Objective:
    """``objective``: the metric name the trials log and whether higher or lower is better."""

    primary_metric: str
    goal: Literal["minimize", "maximize"]


@dataclass(frozen=True)
class SweepLimits:
    """``limits`` (seconds); ``max_concurrent_trials`` is at most ``max_total_trials``."""

    max_total_trials: int = MAX_TRIALS
    max_concurrent_trials: int = MAX_TRIALS
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    trial_timeout: int | None = None


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep job. ``trial`` is the raw command-job mapping with the sweep's ``compute``,
    ``inputs``, ``outputs`` and ``limits.trial_timeout`` filled in where the trial has none."""

    source_file: Path
    shown_file: str
    type: str
    name: str | None
    display_name: str | None
    experiment_name: str
    description: str | None
    tags: dict[str, str]
    sampling: SamplingSettings
    search_space: SearchSpace
    objective: Objective
    early_termination: EarlyTerminationPolicy | None
    limits: SweepLimits
    compute: str
    trial: dict[str, Any]
    warnings: tuple[str, ...] = field(default=())

    @property
    def preview_spelling(self) -> bool:
        """True for the 2021 preview spelling (``type: sweep_job``)."""
        return self.type == "sweep_job"

    def sampler(self) -> Sampler:
        """A fresh sampler for this sweep (same seed => same trials)."""
        return make_sampler(self.sampling, self.search_space, self.objective.goal)

    def early_terminator(self) -> EarlyTerminator | None:
        """The early-termination evaluator, or None when the sweep has no policy."""
        if self.early_termination is None:
            return None
        return EarlyTerminator(self.early_termination, self.objective.goal, self.objective.primary_metric)

    def parent_properties(self, seed: int | None = None) -> dict[str, str]:
        """Tags for the parent run: the service's ``runTemplate``, ``primary_metric_config``, ``space_size``
        (JOBS.md §2.3) and the sweep's configuration as JSON. ``seed``: the sampler's actual seed."""
        policy = self.early_termination
        policy_config = {"name": "none"} if policy is None else {"name": policy.name, **dataclasses.asdict(policy)}
        generator = {"name": self.sampling.type, "seed": self.sampling.seed if seed is None else seed}
        if self.sampling.type == "random":
            generator.update(rule=self.sampling.rule, logbase="e" if self.sampling.logbase == math.e
                             else self.sampling.logbase)
        size = self.search_space.space_size
        return {
            "runTemplate": "HyperDrive",
            "primary_metric_config": json.dumps({"name": self.objective.primary_metric, "goal": self.objective.goal}),
            "space_size": "infinite_space_size" if size is None else str(size),
            "azureml.sweep": "true",
            "azureml.sweep.sampling_algorithm": json.dumps(generator),
            "azureml.sweep.search_space": json.dumps(self.search_space.to_rest()),
            "azureml.sweep.early_termination": json.dumps(policy_config),
            "azureml.sweep.limits": json.dumps(dataclasses.asdict(self.limits)),
        }

    def trial_job(self, name: str | None = None) -> CommandJob:
        """The trial parsed as a command job (errors name ``trial.<field>``); placeholders stay unresolved."""
        return command_job_from_mapping(
            copy.deepcopy(self.trial),
            self.source_file,
            shown_file=self.shown_file,
            field_prefix="trial",
            name=name,
            search_space=list(self.search_space.params),
        )


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """The sweep job in the YAML file ``path`` with ``--set`` ``overrides`` applied (see :func:`sweep_from_mapping`)."""
    shown = str(path)
    source_file = Path(path).expanduser().resolve()
    raw = read_yaml_mapping(source_file, shown_file=shown)
    raw, _ = apply_overrides(raw, overrides, source_file=shown)
    return sweep_from_mapping(raw, source_file, shown_file=shown)


def sweep_from_mapping(raw: Any, source_file: Path, *, shown_file: str | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from an already-read YAML mapping; every mistake raises before anything runs."""
    shown = shown_file or str(source_file)
    try:
        section: SweepJobSection = validate_raw(SweepJobSection, raw, source_file=shown)
    except JobSpecError as error:
        raise SweepSpecError(error.message, source_file=shown, field=error.field) from None

    def fail(field_path: str | None, text: str) -> SweepSpecError:
        return SweepSpecError(located(shown, field_path, text), source_file=shown, field=field_path)

    try:
        space = parse_search_space(section.search_space)
    except SweepSpecError as error:
        raise SweepSpecError(located(shown, None, error.message), source_file=shown) from None
    sampling = _sampling(section, fail)
    try:
        check_algorithm_support(space, sampling.type)
    except SweepSpecError as error:
        raise SweepSpecError(located(shown, None, error.message), source_file=shown) from None
    if sampling.type == "bayesian":
        if section.early_termination is not None:
            raise fail("early_termination", "bayesian sampling does not support early termination (as on the "
                       "service); remove early_termination or use random or grid sampling")
        import_optuna("sampling_algorithm bayesian")  # the sweep extra; raises naming the pip command
    limits = _limits(section, fail)
    compute = _compute(section, fail)
    warnings = _check_trial_command(section.trial, space, shown, fail)
    warnings += _advice(space, sampling, limits)
    experiment = section.experiment_name if section.experiment_name is not None else source_file.parent.name
    return SweepSpec(
        source_file=source_file,
        shown_file=shown,
        type=section.type,
        name=section.name,
        display_name=section.display_name,
        experiment_name=experiment,
        description=section.description,
        tags={key: str(value) for key, value in (section.tags or {}).items()},
        sampling=sampling,
        search_space=space,
        objective=Objective(section.objective.primary_metric, section.objective.goal),
        early_termination=_policy(section.early_termination),
        limits=limits,
        compute=compute,
        trial=_inherited_trial(section, compute, limits),
        warnings=tuple(warnings),
    )


def _sampling(section: SweepJobSection, fail) -> SamplingSettings:
    if section.sampling_algorithm is not None and section.algorithm is not None:
        raise fail("algorithm", "give either algorithm (preview) or sampling_algorithm, not both")
    chosen = section.sampling_algorithm if section.sampling_algorithm is not None else section.algorithm
    if chosen is None:
        raise fail("sampling_algorithm", f"required; allowed: {allowed_list(ALGORITHMS)} "
                   "or a mapping {type: random, seed: 42, rule: sobol}")
    if isinstance(chosen, str):
        return SamplingSettings(type=chosen.lower())
    logbase = math.e if chosen.logbase in (None, "e") else float(chosen.logbase)
    return SamplingSettings(
        type=chosen.type.lower(), seed=chosen.seed, rule=(chosen.rule or "random").lower(), logbase=logbase
    )


def default_concurrent_trials() -> int:
    """Trials at once when ``max_concurrent_trials`` is not given: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _limits(section: SweepJobSection, fail) -> SweepLimits:
    limits = section.limits or LimitsSection()
    pairs = (("max_total_trials", "max_total_trials"), ("max_concurrent_trials", "max_concurrent_trials"),
             ("timeout_minutes", "timeout"))
    for preview, current in pairs:
        if getattr(section, preview) is not None and getattr(limits, current) is not None:
            raise fail(preview, f"given twice: top-level {preview} (preview) and limits.{current}; keep one")
    total = limits.max_total_trials or section.max_total_trials or MAX_TRIALS
    concurrent = limits.max_concurrent_trials or section.max_concurrent_trials or default_concurrent_trials()
    if section.timeout_minutes is not None:
        timeout = math.ceil(section.timeout_minutes * 60)
    else:
        timeout = limits.timeout or DEFAULT_TIMEOUT_SECONDS
    return SweepLimits(total, min(concurrent, total), timeout, limits.trial_timeout)


def _target(compute: Any) -> str | None:
    if isinstance(compute, str):
        return compute
    if isinstance(compute, Mapping):
        return compute.get("target")
    target = getattr(compute, "target", None)
    return target


def _compute(section: SweepJobSection, fail) -> str:
    top = _target(section.compute)
    in_trial = _target(section.trial.get("compute"))
    if top is not None and in_trial is not None and top != in_trial:
        raise fail("trial.compute", f"target {in_trial!r} differs from the sweep's compute {top!r}; "
                   "write it once (top-level compute, which every trial inherits)")
    return top or in_trial or "local"


def _policy(section: EarlyTerminationSection | None) -> EarlyTerminationPolicy | None:
    if section is None:
        return None
    timing = {
        "evaluation_interval": section.evaluation_interval or 1,  # 0 (the SDK's default) means every report
        "delay_evaluation": section.delay_evaluation or 0,
    }
    kind = _snake(section.type)
    if kind == "bandit":
        return BanditPolicy(
            **timing,
            slack_factor=None if section.slack_factor is None else float(section.slack_factor),
            slack_amount=None if section.slack_amount is None else float(section.slack_amount),
        )
    if kind == "median_stopping":
        return MedianStoppingPolicy(**timing)
    return TruncationSelectionPolicy(
        **timing,
        truncation_percentage=section.truncation_percentage,
        exclude_finished_jobs=bool(section.exclude_finished_jobs),
    )


def _check_trial_command(trial: dict, space: SearchSpace, shown: str, fail) -> list[str]:
    command = trial.get("command")
    if command is None:
        raise fail("trial.command", "required: the command each trial runs, using ${{search_space.<name>}}")
    if not isinstance(command, str):
        raise fail("trial.command", f"expected a string, got {type(command).__name__}")
    names = list(space.params)
    try:
        placeholders = find_placeholders(command, source_file=shown, field="trial.command")
    except JobSpecError as error:
        raise SweepSpecError(error.message, source_file=shown, field="trial.command") from None
    used = set()
    for placeholder in placeholders:
        if placeholder.kind != "search_space":
            continue
        if placeholder.name not in space.params:
            raise fail("trial.command", f"{placeholder.text} names no search_space key"
                       f"{did_you_mean(placeholder.name, names)}; defined: {allowed_list(names)}")
        used.add(placeholder.name)
    return [
        f"{shown}: search_space.{name}: defined but never used in trial.command (write ${{{{search_space.{name}}}}}); "
        "its values are still sampled and logged as params"
        for name in names if name not in used
    ]


def _advice(space: SearchSpace, sampling: SamplingSettings, limits: SweepLimits) -> list[str]:
    notes = []
    size = space.space_size
    if size is not None and size < limits.max_total_trials:
        notes.append(f"search_space has {size} distinct points: the sweep stops after {size} trials "
                     f"(max_total_trials {limits.max_total_trials})")
    if sampling.type == "grid" and size is not None and size > limits.max_total_trials:
        notes.append(f"the grid has {size} points but max_total_trials is {limits.max_total_trials}: only the "
                     f"first {limits.max_total_trials} grid points run")
    recommended = 20 * len(space.params)
    if sampling.type == "bayesian" and limits.max_total_trials < recommended:
        notes.append(f"bayesian sampling works best with max_total_trials >= 20 x parameters ({recommended}); "
                     f"this sweep has {limits.max_total_trials}")
    return notes


def _inherited_trial(section: SweepJobSection, compute: str, limits: SweepLimits) -> dict[str, Any]:
    trial = copy.deepcopy(section.trial)
    trial.setdefault("compute", compute)
    for kind in ("inputs", "outputs"):
        inherited = getattr(section, kind)
        if inherited:
            trial[kind] = {**copy.deepcopy(inherited), **(trial.get(kind) or {})}
    if limits.trial_timeout is not None:
        trial_limits = dict(trial.get("limits") or {})
        trial_limits.setdefault("timeout", limits.trial_timeout)
        trial["limits"] = trial_limits
    return trial


__all__ = ["Objective", "SweepJobSection", "SweepLimits", "SweepSpec", "load_sweep", "sweep_from_mapping"]
