"""Sweep YAML: both spellings give the same sweep; every bad input fails naming the file and the field."""

from __future__ import annotations

import copy
import re
import sys
import textwrap

import pytest

from mlflow_workspace_plugin.jobs.sweep.early_termination import BanditPolicy, MedianStoppingPolicy
from mlflow_workspace_plugin.jobs.sweep.errors import SweepExtraMissingError, SweepSpecError
from mlflow_workspace_plugin.jobs.sweep.spec import (
    DEFAULT_TIMEOUT_SECONDS,
    default_concurrent_trials,
    load_sweep,
    sweep_from_mapping,
)

PREVIEW = textwrap.dedent("""\
    $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
    type: sweep_job
    algorithm: random
    trial:
      code:
        local_path: src
      command: >
        python main.py
        --iris-csv {inputs.iris}
        --learning-rate {search_space.learning_rate}
        --boosting {search_space.boosting}
      inputs:
        iris:
          data:
            local_path: iris.csv
          mode: mount
      environment:
        docker:
          image: mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04
      compute:
        target: local
    search_space:
      learning_rate:
        type: uniform
        min_value: 0.01
        max_value: 0.9
      boosting:
        type: choice
        values: ["gbdt", "dart"]
    objective:
      primary_metric: test-multi_logloss
      goal: minimize
    max_total_trials: 20
    max_concurrent_trials: 10
    timeout_minutes: 120
    experiment_name: lightgbm-iris-sweep-example
""")

CURRENT = textwrap.dedent("""\
    $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
    type: sweep
    sampling_algorithm: random
    trial:
      code: src
      command: >-
        python main.py
        --iris-csv ${{inputs.iris}}
        --learning-rate ${{search_space.learning_rate}}
        --boosting ${{search_space.boosting}}
      inputs:
        iris:
          type: uri_file
          path: iris.csv
          mode: ro_mount
      environment:
        image: mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04
    compute: local
    search_space:
      learning_rate:
        type: uniform
        min_value: 0.01
        max_value: 0.9
      boosting:
        type: choice
        values: ["gbdt", "dart"]
    objective:
      primary_metric: test-multi_logloss
      goal: minimize
    limits:
      max_total_trials: 20
      max_concurrent_trials: 10
      timeout: 7200
    experiment_name: lightgbm-iris-sweep-example
""")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hi')\n")
    (tmp_path / "iris.csv").write_text("a,b\n1,2\n")
    (tmp_path / "job-sweep.yml").write_text(PREVIEW)
    (tmp_path / "sweep.yml").write_text(CURRENT)
    return tmp_path


def test_both_spellings_give_the_same_sweep(project):
    preview = load_sweep(project / "job-sweep.yml")
    current = load_sweep(project / "sweep.yml")
    assert preview.preview_spelling and not current.preview_spelling
    for attribute in ("search_space", "objective", "limits", "compute", "experiment_name", "early_termination"):
        assert getattr(preview, attribute) == getattr(current, attribute), attribute
    assert preview.sampling.type == current.sampling.type == "random"
    assert preview.limits.timeout == 7200 and preview.limits.max_concurrent_trials == 10
    assert preview.compute == "local" and preview.warnings == () and current.warnings == ()
    # the trials are the same command job once parsed by the jobs layer
    preview_trial, current_trial = preview.trial_job(), current.trial_job()
    assert preview_trial.command == current_trial.command
    assert preview_trial.command.endswith("--boosting ${{search_space.boosting}}")
    assert preview_trial.inputs == current_trial.inputs and preview_trial.code == current_trial.code


def test_same_seed_same_trials_through_the_spec(project):
    raw = {**_current(), "sampling_algorithm": {"type": "random", "seed": 7, "rule": "sobol"}}
    first = sweep_from_mapping(raw, project / "sweep.yml")
    again = sweep_from_mapping(copy.deepcopy(raw), project / "sweep.yml")
    a, b = first.sampler(), again.sampler()
    assert [a.next_trial() for _ in range(5)] == [b.next_trial() for _ in range(5)]
    assert first.sampling.rule == "sobol" and first.sampling.seed == 7


def test_trial_inherits_compute_inputs_and_trial_timeout(project):
    raw = _current()
    raw["compute"] = "azureml:cpu-cluster"
    raw["inputs"] = {"iris": {"type": "uri_file", "path": "iris.csv"}, "epochs": 3}
    del raw["trial"]["inputs"]
    raw["limits"]["trial_timeout"] = 600
    spec = sweep_from_mapping(raw, project / "sweep.yml")
    assert spec.compute == "azureml:cpu-cluster"
    assert spec.trial["compute"] == "azureml:cpu-cluster"
    assert spec.trial["inputs"] == raw["inputs"]
    assert spec.trial["limits"] == {"timeout": 600}
    assert spec.limits.trial_timeout == 600


def test_defaults_and_limits(project):
    raw = _current()
    del raw["limits"]
    del raw["compute"]
    spec = sweep_from_mapping(raw, project / "sweep.yml")
    assert (spec.limits.max_total_trials, spec.limits.max_concurrent_trials) == (1000, default_concurrent_trials())
    assert spec.limits.timeout == DEFAULT_TIMEOUT_SECONDS and spec.compute == "local"
    raw["limits"] = {"max_total_trials": 4, "max_concurrent_trials": 8}
    assert sweep_from_mapping(raw, project / "sweep.yml").limits.max_concurrent_trials == 4


def test_early_termination_spellings(project):
    raw = _current()
    raw["early_termination"] = {"type": "bandit", "slack_amount": 0.2, "evaluation_interval": 0, "delay_evaluation": 5}
    policy = sweep_from_mapping(raw, project / "sweep.yml").early_termination
    assert policy == BanditPolicy(evaluation_interval=1, delay_evaluation=5, slack_amount=0.2)
    raw["early_termination"] = {"type": "MedianStopping"}
    spec = sweep_from_mapping(raw, project / "sweep.yml")
    assert spec.early_termination == MedianStoppingPolicy()
    terminator = spec.early_terminator()
    assert terminator.goal == "minimize" and terminator.metric == "test-multi_logloss"


def test_unused_search_space_key_is_a_warning(project):
    raw = _current()
    raw["search_space"]["depth"] = {"type": "randint", "upper": 8}
    spec = sweep_from_mapping(raw, project / "sweep.yml", shown_file="sweep.yml")
    assert len(spec.warnings) == 1
    assert spec.warnings[0].startswith("sweep.yml: search_space.depth: defined but never used in trial.command")


def test_grid_advice_when_the_space_is_smaller_than_the_trials(project):
    raw = {**_current(), "sampling_algorithm": "grid"}
    raw["search_space"]["learning_rate"] = {"type": "choice", "values": [0.1, 0.2, 0.3]}
    spec = sweep_from_mapping(raw, project / "sweep.yml")
    assert spec.search_space.space_size == 6
    assert spec.sampler().space_size == 6
    assert any("6 distinct points" in note for note in spec.warnings)


def _current() -> dict:
    import yaml

    return yaml.safe_load(CURRENT)


def _set(raw: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


class _Delete:
    """Marks a field the case removes (a stable test id: parallel workers must collect the same ids)."""

    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()

BAD = [
    ("max_trials", 5, "max_trials: unknown key 'max_trials' (did you mean 'max_total_trials'?)"),
    ("type", "command", "type: 'command' is not a sweep job; allowed: sweep (or the preview's sweep_job)"),
    ("search_space.learning_rate.max_value", _DELETE,
     "search_space.learning_rate.max_value: required for type 'uniform'"),
    ("search_space.learning_rate.mx_value", 2, "search_space.learning_rate.mx_value: unknown field for type "
                                              "'uniform'; allowed: min_value, max_value"),
    ("sampling_algorithm", "grid", "search_space.learning_rate.type: 'uniform' cannot be used with "
                                   "sampling_algorithm grid; grid supports only: choice"),
    ("sampling_algorithm", "hyperband", "sampling_algorithm: 'hyperband' is not allowed; allowed: random, grid, "
                                        "bayesian"),
    ("sampling_algorithm", {"type": "random", "rule": "halton"},
     "sampling_algorithm.rule: 'halton' is not allowed; allowed: random, sobol"),
    ("sampling_algorithm", {"type": "grid", "seed": 3},
     "sampling_algorithm.seed: not a field of grid sampling; allowed: type"),
    ("sampling_algorithm", {"type": "random", "seed": "abc"}, "sampling_algorithm.seed: expected an integer"),
    ("sampling_algorithm", {"type": "random", "logbase": 1}, "sampling_algorithm.logbase: must be e or a number"),
    ("sampling_algorithm", _DELETE, "sampling_algorithm: required; allowed: random, grid, bayesian"),
    ("algorithm", "random", "algorithm: give either algorithm (preview) or sampling_algorithm, not both"),
    ("objective.goal", "maximise", "objective.goal: 'maximise' is not allowed (did you mean 'maximize'?)"),
    ("objective.primary_metric", _DELETE, "objective.primary_metric: required field is missing"),
    ("objective", _DELETE, "objective: required field is missing"),
    ("limits.max_total_trials", 5000, "limits.max_total_trials: must be <= 1000, got 5000 (a number)"),
    ("limits.max_concurrent_trials", 0, "limits.max_concurrent_trials: must be >= 1, got 0 (a number)"),
    ("limits.timeout", -1, "limits.timeout: must be > 0"),
    ("limits.max_total_trials", "ten", "limits.max_total_trials: expected an integer, got 'ten' (a string)"),
    ("max_total_trials", 10, "max_total_trials: given twice: top-level max_total_trials (preview) and "
                             "limits.max_total_trials; keep one"),
    ("timeout_minutes", 5, "timeout_minutes: given twice"),
    ("early_termination", {"type": "bandit"}, "early_termination.slack_factor: bandit needs exactly one of "
                                              "slack_factor (e.g. 0.1) or slack_amount"),
    ("early_termination", {"type": "bandit", "slack_factor": 0.1, "slack_amount": 0.2},
     "early_termination.slack_factor: bandit needs exactly one of"),
    ("early_termination", {"type": "bandit", "slack_factor": -0.1}, "early_termination.slack_factor: must be > 0"),
    ("early_termination", {"type": "median_stopping", "slack_factor": 0.1},
     "early_termination.slack_factor: not a field of the median_stopping policy; allowed: type, "
     "evaluation_interval, delay_evaluation"),
    ("early_termination", {"type": "truncation_selection"},
     "early_termination.truncation_percentage: required for truncation_selection"),
    ("early_termination", {"type": "truncation_selection", "truncation_percentage": 100},
     "early_termination.truncation_percentage: must be <= 99"),
    ("early_termination", {"type": "median", "delay_evaluation": 5},
     "early_termination.type: 'median' is not allowed"),
    ("early_termination", {"type": "median_stopping", "evaluation_interval": -1},
     "early_termination.evaluation_interval: must be >= 0"),
    ("trial.command", "python main.py --lr ${{search_space.learning_rat}}",
     "trial.command: ${{search_space.learning_rat}} names no search_space key (did you mean 'learning_rate'?); "
     "defined: learning_rate, boosting"),
    ("trial.command", "python main.py --lr {search_space.lr}", "trial.command: {search_space.lr} names no "
                                                                "search_space key"),
    ("trial.command", _DELETE, "trial.command: required"),
    ("trial", _DELETE, "trial: required field is missing"),
    ("trial.compute", "azureml:gpu-cluster", "trial.compute: target 'azureml:gpu-cluster' differs from the sweep's "
                                             "compute 'local'"),
    ("search_space", {}, "search_space: must be a non-empty mapping"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_input_names_file_and_field(project, path, value, message):
    raw = _set(_current(), path, value)
    with pytest.raises(SweepSpecError) as info:
        sweep_from_mapping(raw, project / "sweep.yml", shown_file="sweep.yml")
    text = info.value.message
    assert text.startswith("sweep.yml: " + message), text
    assert "pydantic" not in text and "validation error" not in text and "\n" not in text
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_bayesian_support_and_no_early_termination(project):
    raw = {**_current(), "sampling_algorithm": {"type": "bayesian", "seed": 1}}
    spec = sweep_from_mapping(raw, project / "sweep.yml", shown_file="sweep.yml")
    assert spec.sampling.type == "bayesian" and spec.sampling.seed == 1
    assert any("max_total_trials >= 20 x parameters (40)" in note for note in spec.warnings)
    raw["early_termination"] = {"type": "median_stopping"}
    with pytest.raises(SweepSpecError, match=r"^sweep\.yml: early_termination: bayesian sampling does not support "
                                             r"early termination"):
        sweep_from_mapping(raw, project / "sweep.yml", shown_file="sweep.yml")
    del raw["early_termination"]
    raw["search_space"]["learning_rate"] = {"type": "loguniform", "min_value": -5, "max_value": -1}
    with pytest.raises(SweepSpecError, match=re.escape(
            "sweep.yml: search_space.learning_rate.type: 'loguniform' cannot be used with sampling_algorithm "
            "bayesian; bayesian supports only: choice, uniform, quniform")):
        sweep_from_mapping(raw, project / "sweep.yml", shown_file="sweep.yml")


def test_bayesian_without_optuna_names_the_extra(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    raw = {**_current(), "sampling_algorithm": "bayesian"}
    with pytest.raises(SweepExtraMissingError, match=re.escape("pip install 'mlflow-workspace-plugin[sweep]'")):
        sweep_from_mapping(raw, project / "sweep.yml")


def test_several_problems_are_reported_together(project):
    raw = _current()
    raw["limits"]["max_total_trials"] = 0
    raw["objective"]["goal"] = "up"
    with pytest.raises(SweepSpecError) as info:
        sweep_from_mapping(raw, project / "sweep.yml", shown_file="sweep.yml")
    lines = info.value.message.splitlines()
    assert any(line.startswith("sweep.yml: objective.goal: 'up' is not allowed") for line in lines)
    assert any(line.startswith("sweep.yml: limits.max_total_trials: must be >= 1") for line in lines)


def test_invalid_yaml_file_names_line(project):
    (project / "broken.yml").write_text("type: sweep\nsearch_space: [\n")
    with pytest.raises(Exception, match=r"invalid YAML at line \d+, column \d+"):
        load_sweep(project / "broken.yml")


def test_parent_properties_record_the_configuration(project):
    import json

    raw = {**_current(), "sampling_algorithm": {"type": "random", "seed": 3, "rule": "sobol"},
           "early_termination": {"type": "truncation_selection", "truncation_percentage": 20}}
    props = sweep_from_mapping(raw, project / "sweep.yml").parent_properties()
    assert props["runTemplate"] == "HyperDrive" and props["space_size"] == "infinite_space_size"
    assert json.loads(props["primary_metric_config"]) == {"name": "test-multi_logloss", "goal": "minimize"}
    assert json.loads(props["azureml.sweep.sampling_algorithm"]) == {
        "name": "random", "seed": 3, "rule": "sobol", "logbase": "e"}
    assert json.loads(props["azureml.sweep.search_space"])["boosting"] == ["choice", [["gbdt", "dart"]]]
    assert json.loads(props["azureml.sweep.early_termination"])["truncation_percentage"] == 20
    assert json.loads(props["azureml.sweep.limits"])["max_total_trials"] == 20
    assert all(isinstance(value, str) for value in props.values())


def test_grid_smaller_than_max_total_trials_or_larger_is_said(project):
    raw = {**_current(), "sampling_algorithm": "grid"}
    raw["search_space"]["learning_rate"] = {"type": "choice", "values": list(range(15))}
    spec = sweep_from_mapping(raw, project / "sweep.yml")
    assert spec.parent_properties()["space_size"] == "30"
    assert any("only the first 20 grid points run" in note for note in spec.warnings)
