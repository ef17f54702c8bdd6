"""Samplers: reproducibility, Sobol, grid exhaustion, finite spaces, bayesian (Optuna TPE) support and convergence."""

from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import pytest
from scipy.stats import qmc

from mlflow_workspace_plugin.jobs.sweep.errors import SweepExtraMissingError, SweepSpecError
from mlflow_workspace_plugin.jobs.sweep.sampling import (
    BayesianSampler,
    GridSampler,
    RandomSampler,
    SamplingSettings,
    make_sampler,
)
from mlflow_workspace_plugin.jobs.sweep.search_space import parse_search_space

MIXED = parse_search_space({
    "lr": {"type": "loguniform", "min_value": -6, "max_value": -1},
    "boosting": {"type": "choice", "values": ["gbdt", "dart"]},
    "leaves": {"type": "qnormal", "mu": 32, "sigma": 8, "q": 1},
})
GRID = parse_search_space({
    "a": {"type": "choice", "values": [1, 2, 3]},
    "b": {"type": "choice", "values": ["x", "y"]},
    "c": {"type": "choice", "values": [True, False]},
})
QUADRATIC = parse_search_space({
    "x": {"type": "uniform", "min_value": -2, "max_value": 2},
    "y": {"type": "quniform", "min_value": -2, "max_value": 2, "q": 0.05},
    "shift": {"type": "choice", "values": [0.0, 0.5, 1.0]},
})


def take(sampler, n: int) -> list[dict]:
    return [sampler.next_trial() for _ in range(n)]


@pytest.mark.parametrize("rule", ["random", "sobol"])
def test_same_seed_same_trials(rule):
    first = take(make_sampler(SamplingSettings("random", seed=42, rule=rule), MIXED), 20)
    again = take(make_sampler(SamplingSettings("random", seed=42, rule=rule), MIXED), 20)
    other = take(make_sampler(SamplingSettings("random", seed=43, rule=rule), MIXED), 20)
    assert first == again
    assert first != other
    assert len({json.dumps(t, sort_keys=True) for t in first}) == 20


def test_unseeded_sampler_records_its_seed_for_replay():
    sampler = RandomSampler(MIXED)
    trials = take(sampler, 5)
    assert take(RandomSampler(MIXED, seed=sampler.seed), 5) == trials


def test_sobol_covers_the_cube_more_evenly_than_random():
    space = parse_search_space({
        "x": {"type": "uniform", "min_value": 0, "max_value": 1},
        "y": {"type": "uniform", "min_value": 0, "max_value": 1},
    })
    def points(rule: str) -> np.ndarray:
        sampler = RandomSampler(space, seed=5, rule=rule)
        return np.array([[t["x"], t["y"]] for t in take(sampler, 64)])
    sobol, rand = points("sobol"), points("random")
    assert qmc.discrepancy(sobol) < qmc.discrepancy(rand) / 3
    # 64 Sobol points put exactly 16 in each quarter of the square (base-2 balance)
    quarters = np.histogram2d(sobol[:, 0], sobol[:, 1], bins=2, range=[[0, 1], [0, 1]])[0]
    assert (quarters == 16).all()


def test_grid_runs_every_point_once_then_stops():
    sampler = make_sampler(SamplingSettings("grid"), GRID)
    assert sampler.space_size == 12
    trials = list(iter(sampler.next_trial, None))
    assert len(trials) == 12
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == 12
    assert trials[0] == {"a": 1, "b": "x", "c": True} and trials[-1] == {"a": 3, "b": "y", "c": False}
    assert sampler.next_trial() is None and sampler.exhausted


def test_grid_expands_nested_choices():
    space = parse_search_space({
        "model": {
            "type": "choice",
            "values": ["linear", {"name": "tree", "depth": {"type": "choice", "values": [2, 4]}}],
        }
    })
    sampler = GridSampler(space)
    assert sampler.space_size == 3
    assert list(iter(sampler.next_trial, None)) == [
        {"model": "linear"}, {"model": {"name": "tree", "depth": 2}}, {"model": {"name": "tree", "depth": 4}}
    ]


def test_grid_rejects_non_choice_naming_the_parameter():
    with pytest.raises(SweepSpecError, match=r"^search_space\.lr\.type: 'loguniform' cannot be used with "
                                             r"sampling_algorithm grid; grid supports only: choice"):
        GridSampler(MIXED)
    nested = parse_search_space({
        "m": {"type": "choice", "values": [{"lr": {"type": "uniform", "min_value": 0, "max_value": 1}}]}
    })
    with pytest.raises(SweepSpecError, match=r"^search_space\.m\.values\[0\]\.lr\.type: 'uniform'"):
        GridSampler(nested)


@pytest.mark.parametrize("rule", ["random", "sobol"])
def test_random_sampling_of_a_finite_space_never_repeats_and_stops(rule):
    space = parse_search_space({
        "a": {"type": "choice", "values": [1, 2, 3]}, "n": {"type": "randint", "upper": 3}
    })
    sampler = RandomSampler(space, seed=0, rule=rule)
    assert sampler.space_size == 9
    trials = list(iter(sampler.next_trial, None))
    assert sorted(json.dumps(t, sort_keys=True) for t in trials) == sorted(
        json.dumps({"a": a, "n": n}, sort_keys=True) for a in (1, 2, 3) for n in range(3)
    )
    assert trials != list(space.enumerate())  # random order, not the grid order


def test_bayesian_rejects_unsupported_distributions_and_branches():
    with pytest.raises(SweepSpecError, match=r"^search_space\.lr\.type: 'loguniform' cannot be used with "
                                             r"sampling_algorithm bayesian; bayesian supports only: choice, "
                                             r"uniform, quniform"):
        BayesianSampler(MIXED, "minimize", seed=1)
    nested = parse_search_space({"m": {"type": "choice", "values": [{"k": 1}, {"k": 2}]}})
    with pytest.raises(SweepSpecError, match=r"^search_space\.m\.values: bayesian sampling supports only plain"):
        BayesianSampler(nested, "minimize", seed=1)


def objective(trial: dict) -> float:
    return (trial["x"] - 0.3) ** 2 + (trial["y"] + 0.2) ** 2 + trial["shift"]


def run(sampler, n: int = 40) -> list[float]:
    values = []
    for index in range(n):
        trial = sampler.next_trial()
        values.append(objective(trial))
        sampler.report(index, values[-1])
    return values


def test_bayesian_beats_random_on_a_quadratic():
    bayes, rand = [], []
    for seed in (1, 2, 3):
        bayes.append(run(BayesianSampler(QUADRATIC, "minimize", seed=seed)))
        rand.append(run(RandomSampler(QUADRATIC, seed=seed)))
    # TPE concentrates near the optimum after its 10 random start-up trials: the last 20 trials are far
    # better on average, and the best found is better on average
    assert statistics.fmean(statistics.fmean(v[20:]) for v in bayes) < 0.5 * statistics.fmean(
        statistics.fmean(v[20:]) for v in rand)
    assert statistics.fmean(min(v) for v in bayes) < statistics.fmean(min(v) for v in rand)
    assert min(min(v) for v in bayes) < 0.05


def test_bayesian_same_seed_same_reports_same_trials():
    def trials(seed: int) -> list[dict]:
        sampler = BayesianSampler(QUADRATIC, "maximize", seed=seed)
        out = []
        for index in range(15):
            out.append(sampler.next_trial())
            sampler.report(index, -objective(out[-1]) if index % 4 else None)  # every 4th trial "failed"
        return out
    assert trials(11) == trials(11)
    assert trials(11) != trials(12)
    assert all(isinstance(t["y"], float) and abs(t["y"] / 0.05 - round(t["y"] / 0.05)) < 1e-9 for t in trials(11))


def test_bayesian_with_pending_trials_and_finite_space_never_repeats():
    sampler = BayesianSampler(GRID, "maximize", seed=4)
    trials = [sampler.next_trial() for _ in range(6)]  # six running at once, nothing reported yet
    for index, trial in enumerate(trials):
        sampler.report(index, float(trial["a"]))
    trials += list(iter(sampler.next_trial, None))
    assert len(trials) == 12
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == 12


def test_report_of_an_unknown_trial_is_refused():
    sampler = RandomSampler(MIXED, seed=1)
    sampler.next_trial()
    sampler.report(0, 1.0)
    with pytest.raises(IndexError, match="trial_index 3 was never sampled"):
        sampler.report(3, 1.0)


def test_missing_optuna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what Python does when the package is absent
    with pytest.raises(SweepExtraMissingError, match=r"pip install 'mlflow-workspace-plugin\[sweep\]'"):
        make_sampler(SamplingSettings("bayesian"), QUADRATIC, "minimize")
