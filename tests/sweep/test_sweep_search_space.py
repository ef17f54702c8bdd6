"""Search space: each distribution's semantics (bounds, log space, q rounding, exclusive upper) and parse errors."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter

import numpy as np
import pytest

from mlflow_workspace_plugin.jobs.sweep.errors import SweepSpecError
from mlflow_workspace_plugin.jobs.sweep.sampling import RandomSampler
from mlflow_workspace_plugin.jobs.sweep.search_space import flatten_params, format_value, parse_search_space

N = 4000


def draw(distribution: dict, n: int = N, seed: int = 7, logbase: float = math.e) -> list:
    """n independent draws (with replacement, unlike a sweep's sampler on a finite space)."""
    space = parse_search_space({"p": distribution})
    rng = np.random.default_rng(seed)
    return [space.from_unit(rng.random(space.dimensions()), logbase)["p"] for _ in range(n)]


def test_uniform_covers_its_bounds_evenly():
    values = draw({"type": "uniform", "min_value": 0.01, "max_value": 0.9})
    assert all(type(v) is float and 0.01 <= v <= 0.9 for v in values)
    assert statistics.fmean(values) == pytest.approx(0.455, abs=0.02)
    assert min(values) < 0.02 and max(values) > 0.88


def test_quniform_rounds_to_multiples_of_q_with_half_weight_ends():
    values = draw({"type": "quniform", "min_value": 0, "max_value": 10, "q": 1})
    assert all(type(v) is int for v in values)
    counts = Counter(values)
    assert set(counts) == set(range(11))
    # round(uniform(0, 10)): the end values 0 and 10 each get half a bucket (p=0.05), inner ones p=0.1
    assert counts[0] / N == pytest.approx(0.05, abs=0.015)
    assert counts[10] / N == pytest.approx(0.05, abs=0.015)
    assert counts[5] / N == pytest.approx(0.10, abs=0.02)


def test_quniform_float_q_gives_clean_floats():
    values = draw({"type": "quniform", "min_value": 0.0, "max_value": 1.0, "q": 0.1}, n=500)
    assert all(type(v) is float for v in values)
    assert set(values) <= {round(0.1 * k, 1) for k in range(11)}
    assert 0.3 in values  # not 0.30000000000000004


def test_loguniform_bounds_are_exponents():
    values = draw({"type": "loguniform", "min_value": -5, "max_value": -1})
    assert all(math.exp(-5) <= v <= math.exp(-1) for v in values)
    logs = [math.log(v) for v in values]
    assert statistics.fmean(logs) == pytest.approx(-3, abs=0.1)
    assert sum(v < math.exp(-3) for v in values) / N == pytest.approx(0.5, abs=0.03)


def test_loguniform_with_logbase_10():
    values = draw({"type": "loguniform", "min_value": -3, "max_value": -1}, n=500, logbase=10)
    assert all(1e-3 <= v <= 1e-1 for v in values)
    assert min(values) < 2e-3 and max(values) > 0.05


def test_qloguniform_is_exp_then_q_rounded():
    values = draw({"type": "qloguniform", "min_value": 0, "max_value": math.log(100), "q": 1})
    assert all(type(v) is int and 1 <= v <= 100 for v in values)
    assert statistics.median(values) == pytest.approx(10, abs=1.5)  # median of exp(U(0, ln 100)) is 10


def test_normal_mean_and_spread():
    values = draw({"type": "normal", "mu": 10, "sigma": 3})
    assert statistics.fmean(values) == pytest.approx(10, abs=0.2)
    assert statistics.stdev(values) == pytest.approx(3, abs=0.15)
    assert all(type(v) is float and math.isfinite(v) for v in values)


def test_qnormal_gives_multiples_of_q():
    values = draw({"type": "qnormal", "mu": 10, "sigma": 3, "q": 2})
    assert all(type(v) is int and v % 2 == 0 for v in values)
    assert statistics.fmean(values) == pytest.approx(10, abs=0.25)


def test_lognormal_is_exp_of_normal():
    values = draw({"type": "lognormal", "mu": 0, "sigma": 1})
    assert all(v > 0 for v in values)
    logs = [math.log(v) for v in values]
    assert statistics.fmean(logs) == pytest.approx(0, abs=0.07)
    assert statistics.stdev(logs) == pytest.approx(1, abs=0.05)


def test_qlognormal_rounds_exp_of_normal():
    values = draw({"type": "qlognormal", "mu": 2, "sigma": 0.5, "q": 1})
    assert all(type(v) is int and v >= 0 for v in values)
    assert statistics.median(values) == pytest.approx(round(math.exp(2)), abs=1)


def test_randint_excludes_upper():
    values = draw({"type": "randint", "upper": 5}, n=2000)
    counts = Counter(values)
    assert set(counts) == {0, 1, 2, 3, 4}
    assert all(type(v) is int for v in values)
    assert all(c / 2000 == pytest.approx(0.2, abs=0.04) for c in counts.values())


def test_choice_is_uniform_over_values():
    values = draw({"type": "choice", "values": ["gbdt", "dart", 3, 0.5, True]}, n=2500)
    counts = Counter(json.dumps(v) for v in values)
    assert len(counts) == 5
    assert all(c / 2500 == pytest.approx(0.2, abs=0.04) for c in counts.values())


def test_nested_choice_samples_the_chosen_branch():
    space = {
        "model": {
            "type": "choice",
            "values": [
                {"name": "resnet", "lr": {"type": "uniform", "min_value": 0.1, "max_value": 0.2}},
                {"name": "vgg", "depth": {"type": "choice", "values": [11, 16]}},
            ],
        }
    }
    sampler = RandomSampler(parse_search_space(space), seed=3)
    values = [sampler.next_trial()["model"] for _ in range(300)]
    resnet = [v for v in values if v["name"] == "resnet"]
    vgg = [v for v in values if v["name"] == "vgg"]
    assert len(resnet) > 100 and len(vgg) > 100
    assert all(set(v) == {"name", "lr"} and 0.1 <= v["lr"] <= 0.2 for v in resnet)
    assert all(set(v) == {"name", "depth"} and v["depth"] in (11, 16) for v in vgg)
    assert flatten_params({"model": resnet[0], "x": 1}) == {"model.name": "resnet", "model.lr": resnet[0]["lr"], "x": 1}


def test_space_size_and_rest_encoding():
    space = parse_search_space({
        "a": {"type": "choice", "values": [1, 2, 3]},
        "b": {"type": "choice", "values": ["x", {"k": {"type": "choice", "values": [1, 2]}, "c": 0}]},
        "n": {"type": "randint", "upper": 4},
    })
    assert space.space_size == 3 * (1 + 2) * 4
    assert space.to_rest()["a"] == ["choice", [[1, 2, 3]]]
    assert space.to_rest()["b"] == ["choice", [["x", {"k": ["choice", [[1, 2]]], "c": 0}]]]
    assert parse_search_space({"u": {"type": "uniform", "min_value": 0, "max_value": 1}}).space_size is None
    assert parse_search_space({"q": {"type": "quniform", "min_value": 0, "max_value": 9, "q": 3}}).to_rest() == {
        "q": ["quniform", [0, 9, 3]]
    }


def test_values_are_json_and_param_friendly():
    space = parse_search_space({
        "a": {"type": "qnormal", "mu": 100, "sigma": 10, "q": 8},
        "b": {"type": "uniform", "min_value": 0, "max_value": 1},
        "c": {"type": "choice", "values": ["x", 2]},
    })
    trial = RandomSampler(space, seed=1).next_trial()
    json.dumps(trial)
    assert format_value(trial["a"]) == str(trial["a"]) and "." not in format_value(trial["a"])
    assert format_value(0.01) == "0.01" and format_value({"k": 1}) == '{"k": 1}'


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lr": {"type": "uniform", "min_value": 0.1}}, "search_space.lr.max_value: required for type 'uniform'"),
        ({"lr": {"type": "uniform", "min_value": 0.5, "max_value": 0.1}},
         "search_space.lr.max_value: must be greater than min_value (0.5)"),
        ({"lr": {"type": "uniform", "min_value": "a", "max_value": 1}}, "search_space.lr.min_value: must be a finite"),
        ({"lr": {"type": "uniform", "min_value": 0, "max_value": 1, "q": 1}},
         "search_space.lr.q: unknown field for type 'uniform'; allowed: min_value, max_value"),
        ({"lr": {"type": "unifrom", "min_value": 0, "max_value": 1}},
         "search_space.lr.type: 'unifrom' is not a distribution; allowed: choice, randint, uniform"),
        ({"lr": {"min_value": 0, "max_value": 1}}, "search_space.lr.type: required"),
        ({"lr": 0.1}, "search_space.lr: must be a distribution mapping"),
        ({"n": {"type": "randint", "upper": 0}}, "search_space.n.upper: must be an integer >= 1"),
        ({"n": {"type": "randint", "upper": 2.5}}, "search_space.n.upper: must be an integer >= 1"),
        ({"x": {"type": "normal", "mu": 0, "sigma": 0}}, "search_space.x.sigma: must be greater than 0"),
        ({"x": {"type": "qnormal", "mu": 0, "sigma": 1, "q": -1}}, "search_space.x.q: must be greater than 0"),
        ({"x": {"type": "qlognormal", "mu": 0, "sigma": 1}}, "search_space.x.q: required for type 'qlognormal'"),
        ({"x": {"type": "loguniform", "min_value": 0.001, "max_value": 1000}},
         "search_space.x.max_value: the log forms take exponents"),
        ({"c": {"type": "choice", "values": []}}, "search_space.c.values: must be a non-empty list"),
        ({"c": {"type": "choice", "values": [[1, 2]]}}, "search_space.c.values[0]: a choice value must be"),
        ({"c": {"type": "choice", "values": [{"lr": {"type": "uniform", "min_value": 1, "max_value": 0}}]}},
         "search_space.c.values[0].lr.max_value: must be greater than min_value"),
        ({"learning-rate": {"type": "choice", "values": [1]}}, "search_space: key 'learning-rate' is not allowed"),
        ({}, "search_space: must be a non-empty mapping"),
    ],
)
def test_bad_distributions_name_the_field(raw, message):
    with pytest.raises(SweepSpecError, match="^" + __import__("re").escape(message)) as info:
        parse_search_space(raw)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
