"""Parse and validate ``backend_config`` for the ``azureml`` projects backend.

User keys: ``COMPUTE`` (str), ``USE_CONDA`` (bool or "true"/"false"), ``STREAM_OUTPUT`` (same,
kept for azureml-mlflow compatibility), ``INSTANCE_TYPE`` (a name of the compute target's
``instance_types``) and ``RESOURCES`` (``{"cpus": 2, "gpus": 1, "memory_gb": 8, "resources": {...}}``:
what the run reserves, over its instance type's shape). MLflow itself adds ``ENV_MANAGER``, ``SYNCHRONOUS``,
``DOCKER_ARGS``, ``STORAGE_DIR``, ``build_image`` and ``docker_auth`` before the backend sees the
dict; those are honoured, never rejected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.projects.utils import (
    MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG,
    PROJECT_BUILD_IMAGE,
    PROJECT_DOCKER_ARGS,
    PROJECT_DOCKER_AUTH,
    PROJECT_ENV_MANAGER,
    PROJECT_STORAGE_DIR,
    PROJECT_SYNCHRONOUS,
)

from mlflow_workspace_plugin.compute.resources import ResourceShape
from mlflow_workspace_plugin.errors import BackendConfigError

COMPUTE = "COMPUTE"
USE_CONDA = "USE_CONDA"
STREAM_OUTPUT = "STREAM_OUTPUT"
INSTANCE_TYPE = "INSTANCE_TYPE"
RESOURCES = "RESOURCES"
USER_KEYS = (COMPUTE, USE_CONDA, STREAM_OUTPUT, INSTANCE_TYPE, RESOURCES)
MLFLOW_KEYS = (
    PROJECT_ENV_MANAGER,
    PROJECT_SYNCHRONOUS,
    PROJECT_DOCKER_ARGS,
    PROJECT_STORAGE_DIR,
    PROJECT_BUILD_IMAGE,
    PROJECT_DOCKER_AUTH,
    MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG,
)
ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")
_ALLOWED_TEXT = (
    f"allowed keys: {COMPUTE} (compute target name, str), {USE_CONDA} (true/false), "
    f"{STREAM_OUTPUT} (true/false), {INSTANCE_TYPE} (a name of the compute target's instance_types), "
    f"{RESOURCES} ({{\"cpus\": 2, \"gpus\": 1, \"memory_gb\": 8}})"
)


@dataclass(frozen=True)
class BackendConfig:
    """The validated settings one ``azureml`` project run uses."""

    compute: str | None = None
    use_conda: bool | None = None
    stream_output: bool = True
    env_manager: str | None = None
    synchronous: bool = True
    storage_dir: str | None = None
    docker_args: dict[str, Any] = field(default_factory=dict)
    build_image: bool = False
    docker_auth: dict[str, Any] | None = None
    run_id: str | None = None
    instance_type: str | None = None
    resources: ResourceShape | None = None

    @property
    def is_remote(self) -> bool:
        return self.compute is not None and self.compute != "local"


def load_backend_config(raw: Any) -> dict[str, Any]:
    """Accept a dict, a path to a JSON file or a JSON string; return the dict."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, (str, os.PathLike)):
        text = os.fspath(raw)
        if text.lstrip()[:1] in ("{", "["):
            return _parse_json(text, "backend_config JSON string")
        if not os.path.isfile(text):
            raise BackendConfigError(
                f"backend_config file {text!r} does not exist; pass a dict, a JSON string or the "
                "path of a JSON file such as backend_config.json"
            )
        with open(text, encoding="utf-8") as handle:
            return _parse_json(handle.read(), f"backend_config file {text!r}")
    raise BackendConfigError(
        f"backend_config must be a dict or the path of a JSON file, got {type(raw).__name__} {raw!r}"
    )


def _parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BackendConfigError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BackendConfigError(f"{what} must hold a JSON object, got {type(data).__name__}")
    return data


def parse_bool(key: str, value: Any) -> bool:
    """A bool, or the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BackendConfigError(
        f"backend_config {key}={value!r} is not allowed: use true or false "
        "(a JSON boolean, or the string \"true\"/\"false\" in any case)"
    )


def parse_backend_config(raw: Any) -> BackendConfig:
    """Validate everything before anything starts; errors name the key and what is allowed."""
    data = load_backend_config(raw)
    unknown = [key for key in data if key not in USER_KEYS and key not in MLFLOW_KEYS]
    if unknown:
        raise BackendConfigError(f"backend_config key {unknown[0]!r} is not recognised; {_ALLOWED_TEXT}")

    compute = data.get(COMPUTE)
    if compute is not None and (not isinstance(compute, str) or not compute.strip()):
        raise BackendConfigError(
            f"backend_config {COMPUTE}={compute!r} is not allowed: it must be a non-empty string "
            "naming a compute target of the workspace (or \"local\")"
        )
    instance_type = data.get(INSTANCE_TYPE)
    if instance_type is not None and (not isinstance(instance_type, str) or not instance_type.strip()):
        raise BackendConfigError(f"backend_config {INSTANCE_TYPE}={instance_type!r} is not allowed: it must be a "
                                 "non-empty string naming one of the compute target's instance_types")
    resources = (ResourceShape.parse(data[RESOURCES], f"backend_config {RESOURCES}", BackendConfigError)
                 if data.get(RESOURCES) is not None else None)
    use_conda = parse_bool(USE_CONDA, data[USE_CONDA]) if data.get(USE_CONDA) is not None else None
    stream_output = parse_bool(STREAM_OUTPUT, data[STREAM_OUTPUT]) if data.get(STREAM_OUTPUT) is not None else True

    env_manager = data.get(PROJECT_ENV_MANAGER)
    if env_manager is not None and env_manager not in ENV_MANAGERS:
        raise BackendConfigError(
            f"env manager {env_manager!r} is not supported; allowed: {', '.join(ENV_MANAGERS)}"
        )
    if compute is not None:
        use_conda = None  # the seeds: with COMPUTE, the environment comes from the compute target
    if use_conda is True and env_manager not in (None, "conda"):
        raise BackendConfigError(
            f"backend_config {USE_CONDA}=true conflicts with env_manager={env_manager!r}: "
            f"drop {USE_CONDA} or use env_manager='conda'"
        )
    return BackendConfig(
        compute=compute.strip() if compute is not None else None,
        use_conda=use_conda,
        stream_output=stream_output,
        env_manager=env_manager,
        synchronous=bool(data.get(PROJECT_SYNCHRONOUS, True)),
        storage_dir=data.get(PROJECT_STORAGE_DIR),
        docker_args=dict(data.get(PROJECT_DOCKER_ARGS) or {}),
        build_image=bool(data.get(PROJECT_BUILD_IMAGE, False)),
        docker_auth=data.get(PROJECT_DOCKER_AUTH),
        run_id=data.get(MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG),
        instance_type=instance_type.strip() if instance_type is not None else None,
        resources=resources,
    )
