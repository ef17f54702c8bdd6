"""backend_config parsing: allowed keys, types, strings, conflicts; MLflow's own keys honoured."""

from __future__ import annotations

import pytest
from helpers import write_json

from mlflow_workspace_plugin.errors import BackendConfigError
from mlflow_workspace_plugin.projects.backend_config import parse_backend_config

MLFLOW_ADDED = {"ENV_MANAGER": None, "SYNCHRONOUS": True, "DOCKER_ARGS": {}, "STORAGE_DIR": None,
                "build_image": False, "docker_auth": None}


@pytest.mark.parametrize("value", [False, "false", "FALSE", " False "])
def test_use_conda_false_spellings(value):
    assert parse_backend_config({"USE_CONDA": value, **MLFLOW_ADDED}).use_conda is False


@pytest.mark.parametrize("value", [True, "true", "True", "TRUE"])
def test_use_conda_true_spellings(value):
    assert parse_backend_config({"USE_CONDA": value}).use_conda is True


def test_mlflow_keys_are_honoured():
    config = parse_backend_config({**MLFLOW_ADDED, "ENV_MANAGER": "virtualenv", "SYNCHRONOUS": False,
                                   "STORAGE_DIR": "/tmp/x"})
    assert (config.env_manager, config.synchronous, config.storage_dir) == ("virtualenv", False, "/tmp/x")
    assert config.compute is None and not config.is_remote


def test_compute_makes_run_remote_and_ignores_use_conda_conflict():
    config = parse_backend_config({"COMPUTE": "cpu-cluster", "USE_CONDA": True, "ENV_MANAGER": "local"})
    assert config.is_remote and config.compute == "cpu-cluster"
    assert not parse_backend_config({"COMPUTE": "local"}).is_remote


def test_json_file_and_string(tmp_path):
    path = write_json(tmp_path / "backend_config.json", {"USE_CONDA": "false"})
    assert parse_backend_config(str(path)).use_conda is False
    assert parse_backend_config('{"COMPUTE": "c1"}').compute == "c1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"USE_CONDAA": False}, "key 'USE_CONDAA' is not recognised; allowed keys: COMPUTE"),
        ({"USE_CONDA": "yes"}, "USE_CONDA='yes' is not allowed: use true or false"),
        ({"USE_CONDA": 1}, "USE_CONDA=1 is not allowed"),
        ({"STREAM_OUTPUT": "maybe"}, "STREAM_OUTPUT='maybe' is not allowed"),
        ({"COMPUTE": 5}, "COMPUTE=5 is not allowed: it must be a non-empty string"),
        ({"COMPUTE": "  "}, "COMPUTE='  ' is not allowed"),
        ({"USE_CONDA": True, "ENV_MANAGER": "local"}, "USE_CONDA=true conflicts with env_manager='local'"),
        ({"ENV_MANAGER": "pipenv"}, "env manager 'pipenv' is not supported; allowed: local, virtualenv, uv, conda"),
        ("[1]", "must hold a JSON object"),
        ("{bad", "is not valid JSON"),
        ("missing.json", "backend_config file 'missing.json' does not exist"),
        (42, "backend_config must be a dict or the path of a JSON file, got int 42"),
    ],
)
def test_bad_backend_config(raw, expected):
    with pytest.raises(BackendConfigError) as err:
        parse_backend_config(raw)
    assert expected in str(err.value)


def test_instance_type_and_resources_are_parsed_into_a_shape():
    from mlflow_workspace_plugin.compute.resources import ResourceShape

    config = parse_backend_config({"COMPUTE": "gpu", "INSTANCE_TYPE": " Standard_NC6 ",
                                   "RESOURCES": {"gpus": 1, "memory_gb": 8, "resources": {"a100": 1}}})
    assert config.instance_type == "Standard_NC6"
    assert config.resources == ResourceShape(gpus=1.0, memory_gb=8.0, custom=(("a100", 1.0),))
    assert config.resources.ray_entrypoint_options() == {"entrypoint_num_gpus": 1.0, "entrypoint_memory": 8 * 1024 ** 3,
                                                         "entrypoint_resources": {"a100": 1.0}}


@pytest.mark.parametrize(("raw", "expected"), [
    ({"INSTANCE_TYPE": ""}, "backend_config INSTANCE_TYPE='' is not allowed"),
    ({"INSTANCE_TYPE": 6}, "backend_config INSTANCE_TYPE=6 is not allowed"),
    ({"RESOURCES": "cpus=4"}, "backend_config RESOURCES must be an object like"),
    ({"RESOURCES": {"cpu": 4}}, "backend_config RESOURCES.cpu is not recognised; allowed: cpus (number of CPUs)"),
    ({"RESOURCES": {"gpus": True}}, "backend_config RESOURCES.gpus = True must be a number >= 0"),
    ({"RESOURCES": {"gpus": float("nan")}}, "backend_config RESOURCES.gpus = nan must be a number >= 0"),
    ({"RESOURCES": {"memory_gb": "16"}}, "backend_config RESOURCES.memory_gb = '16' must be a number >= 0"),
    ({"RESOURCES": {"resources": {"CPU": 2}}}, "'CPU' is not a custom resource name (use cpus, gpus, memory_gb"),
    ({"RESOURCES": {"resources": ["node_b"]}}, "RESOURCES.resources must be an object of resource name -> amount"),
    ({"RESOURCES": {"resources": {"node_b": -1}}}, "RESOURCES.resources.node_b = -1 must be a number >= 0"),
])
def test_bad_instance_type_or_resources_is_one_error_naming_the_value(raw, expected):
    with pytest.raises(BackendConfigError) as caught:
        parse_backend_config({"COMPUTE": "gpu", **raw})
    assert expected in str(caught.value)
