"""Sweep jobs (seed 004): the pure logic the sweep controller is built on; nothing here starts a run.

- :func:`load_sweep` / :func:`sweep_from_mapping`: the sweep YAML (preview and CLI v2 spellings) -> :class:`SweepSpec`;
- :mod:`.search_space`: the ten distributions with the service's semantics;
- :mod:`.sampling`: ``random`` (numpy / Sobol), ``grid``, ``bayesian`` (Optuna TPE) behind one :class:`Sampler`;
- :mod:`.early_termination`: ``bandit``, ``median_stopping``, ``truncation_selection`` over metric histories;
- :mod:`.best_trial`: the best trial for the objective's goal.
"""

from mlflow_workspace_plugin.jobs.sweep.best_trial import BestTrial, TrialOutcome, choose_best_trial, trial_score
from mlflow_workspace_plugin.jobs.sweep.early_termination import (
    BanditPolicy,
    Cancellation,
    EarlyTerminationPolicy,
    EarlyTerminator,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
)
from mlflow_workspace_plugin.jobs.sweep.errors import SweepExtraMissingError, SweepSpecError
from mlflow_workspace_plugin.jobs.sweep.sampling import Sampler, SamplingSettings, make_sampler
from mlflow_workspace_plugin.jobs.sweep.search_space import (
    SearchSpace,
    flatten_params,
    format_value,
    parse_search_space,
)
from mlflow_workspace_plugin.jobs.sweep.spec import Objective, SweepLimits, SweepSpec, load_sweep, sweep_from_mapping

__all__ = [
    "BanditPolicy",
    "BestTrial",
    "Cancellation",
    "EarlyTerminationPolicy",
    "EarlyTerminator",
    "MedianStoppingPolicy",
    "Objective",
    "Sampler",
    "SamplingSettings",
    "SearchSpace",
    "SweepExtraMissingError",
    "SweepLimits",
    "SweepSpec",
    "SweepSpecError",
    "TrialOutcome",
    "TruncationSelectionPolicy",
    "choose_best_trial",
    "flatten_params",
    "format_value",
    "load_sweep",
    "make_sampler",
    "parse_search_space",
    "sweep_from_mapping",
    "trial_score",
]


def __getattr__(name: str):
    """``run_sweep`` / ``SweepHandle`` (the controller) are imported on first use: loading a sweep
    file does not load the execution path."""
    if name in ("run_sweep", "SweepHandle"):
        from mlflow_workspace_plugin.jobs.sweep import controller

        return getattr(controller, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
