"""Validated ``config`` dicts of deployments and endpoints (Python dicts or ``-C key=value`` strings).

Keys follow azureml-mlflow where it had one (``deploy-config-file``, ``endpoint-config-file``,
``async``, ``traffic``, ``auth_mode``, ``instance_count``) plus this plugin's own (``compute``,
``env_manager``, ``port``, …). A config file (JSON or YAML) is merged first, then the dict's keys.
Every bad key or value raises :class:`DeploymentError` naming it and what is allowed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlflow_workspace_plugin.deploy.errors import DeploymentError

_logger = logging.getLogger(__name__)
ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")
AUTH_MODES = ("key", "aml_token")
KEY_NAMES = ("primary", "secondary")
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_SERVE_PORT = 8000
# Keys of the managed service's deployment YAML that MLflow deployments decide themselves.
_MANAGED_ONLY = ("model", "code_configuration", "environment", "endpoint_name", "scoring_script")
_LEGACY_COMPUTE_TYPES = ("aci", "aks", "local")


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DeploymentError(f"config {key!r} = {value!r} must be a non-empty string")
    return value.strip()


def positive_int(key: str, value: Any, *, upper: int | None = None) -> int:
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (upper and value > upper):
        limit = f" and <= {upper}" if upper else ""
        raise DeploymentError(f"config {key!r} = {value!r} must be an integer >= 1{limit}")
    return value


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DeploymentError(f"config {key!r} = {value!r} must be a number > 0")
    return float(value)


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise DeploymentError(f"config {key!r} = {value!r} must be true or false")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or value.strip() not in options:
            raise DeploymentError(f"config {key!r} = {value!r} is not allowed: use one of {', '.join(options)}")
        return value.strip()

    return check


def parse_traffic(value: Any, key: str = "traffic") -> dict[str, int]:
    """``{"blue": 90, "green": 10}`` (or its JSON text): integer percentages summing to 100."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DeploymentError(f"config {key!r} = {value!r} is not JSON like "
                                  "{\"blue\": 90, \"green\": 10}") from None
    if not isinstance(value, Mapping) or not value:
        raise DeploymentError(f"config {key!r} = {value!r} must map deployment names to percentages, "
                              "e.g. {\"blue\": 90, \"green\": 10}")
    traffic: dict[str, int] = {}
    for name, share in value.items():
        if isinstance(share, str) and share.strip().isdigit():
            share = int(share)
        if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
            raise DeploymentError(f"config {key!r}: share of {name!r} = {share!r} must be an integer 0-100")
        traffic[str(name)] = share
    total = sum(traffic.values())
    if total != 100:
        raise DeploymentError(f"config {key!r} = {traffic} sums to {total}; the shares must sum to 100")
    return traffic


def check_traffic_names(traffic: Mapping[str, int], deployments: set[str], endpoint: str) -> None:
    unknown = sorted(set(traffic) - deployments)
    if unknown:
        known = ", ".join(sorted(deployments)) or "none yet"
        raise DeploymentError(f"traffic names deployment {unknown[0]!r}, which endpoint {endpoint!r} does not "
                              f"have; its deployments: {known}")


_DEPLOYMENT_KEYS: dict[str, tuple[Callable[[str, Any], Any], str]] = {
    "compute": (_text, "compute target of the workspace: 'local' (default) or a 'ray' target's name"),
    "env_manager": (_choice(ENV_MANAGERS), "local (this Python, default), virtualenv, uv or conda"),
    "instance_count": (lambda k, v: positive_int(k, v, upper=64), "scoring workers (local) / Serve replicas (ray)"),
    "cpus_per_instance": (_positive_number, "CPUs per Serve replica (ray; default 1)"),
    "traffic": (lambda k, v: parse_traffic(v, k),
                "endpoint traffic after this change, e.g. {\"blue\": 90, \"green\": 10}"),
    "timeout": (_positive_number, f"seconds to wait until the deployment answers (default {DEFAULT_TIMEOUT_S:.0f})"),
    "async": (_boolean, "true: return without waiting until the deployment answers"),
    "serve_http_port": (lambda k, v: positive_int(k, v, upper=65535),
                        f"Ray Serve HTTP port (default {DEFAULT_SERVE_PORT})"),
    "serve_http_host": (_text, "Ray Serve HTTP host (default: the cluster address's host)"),
}
_ENDPOINT_KEYS: dict[str, tuple[Callable[[str, Any], Any], str]] = {
    "auth_mode": (_choice(AUTH_MODES), "key (default: two generated keys) or aml_token (workspace tokens)"),
    "port": (lambda k, v: positive_int(k, v, upper=65535), "local port of the endpoint (default: a free one)"),
    "compute": _DEPLOYMENT_KEYS["compute"],
    "traffic": _DEPLOYMENT_KEYS["traffic"],
    "regenerate_key": (_choice(KEY_NAMES), "update only: replace the primary or secondary key"),
    "serve_http_port": _DEPLOYMENT_KEYS["serve_http_port"],
    "serve_http_host": _DEPLOYMENT_KEYS["serve_http_host"],
    "description": (_text, "free text"),
}


@dataclass
class DeploymentConfig:
    compute: str | None = None
    env_manager: str = "local"
    instance_count: int = 1
    cpus_per_instance: float = 1.0
    traffic: dict[str, int] | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    is_async: bool = False
    serve_http_port: int | None = None
    serve_http_host: str | None = None
    given: set[str] = field(default_factory=set)


@dataclass
class EndpointConfig:
    auth_mode: str = "key"
    port: int | None = None
    compute: str | None = None
    traffic: dict[str, int] | None = None
    regenerate_key: str | None = None
    serve_http_port: int | None = None
    serve_http_host: str | None = None
    description: str | None = None
    given: set[str] = field(default_factory=set)


def deployment_config(config: Mapping[str, Any] | None) -> DeploymentConfig:
    values = _merge(config, "deploy-config-file", _DEPLOYMENT_KEYS)
    result = DeploymentConfig(given=set(values))
    for key, value in values.items():
        setattr(result, "is_async" if key == "async" else key, value)
    return result


def endpoint_config(config: Mapping[str, Any] | None) -> EndpointConfig:
    values = _merge(config, "endpoint-config-file", _ENDPOINT_KEYS)
    result = EndpointConfig(given=set(values))
    for key, value in values.items():
        setattr(result, key, value)
    return result


def describe_keys() -> str:
    """The config keys as text for ``target_help``."""
    lines = ["Deployment config (create_deployment / update_deployment, -C key=value):",
             "  deploy-config-file: JSON or YAML file with any of the keys below"]
    lines += [f"  {key}: {text}" for key, (_, text) in _DEPLOYMENT_KEYS.items()]
    lines += ["Endpoint config (create_endpoint / update_endpoint):",
              "  endpoint-config-file: JSON or YAML file with any of the keys below"]
    lines += [f"  {key}: {text}" for key, (_, text) in _ENDPOINT_KEYS.items()]
    return "\n".join(lines)


def _merge(config: Mapping[str, Any] | None, file_key: str,
           allowed: dict[str, tuple[Callable[[str, Any], Any], str]]) -> dict[str, Any]:
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise DeploymentError(f"config must be a dict, got {type(config).__name__}")
    raw: dict[str, Any] = {}
    if file_key in config:
        raw.update(_read_config_file(file_key, config[file_key]))
    raw.update({key: value for key, value in config.items() if key != file_key})
    _translate_managed_keys(raw, file_key)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            names = ", ".join([file_key, *allowed])
            raise DeploymentError(f"config key {key!r} is not recognised; allowed keys: {names}")
        values[key] = allowed[key][0](key, value)
    return values


def _translate_managed_keys(raw: dict[str, Any], file_key: str) -> None:
    """Keys of the managed service's YAML: legacy ``computeType``, ``instance_type``; refuse the rest."""
    for key in _MANAGED_ONLY:
        if key in raw:
            raise DeploymentError(f"config key {key!r} (from the managed service's YAML) is not used with MLflow "
                                  "deployments: the model and its environment come from the model URI")
    if "computeType" in raw:
        kind = str(raw.pop("computeType")).lower()
        if kind not in _LEGACY_COMPUTE_TYPES:
            raise DeploymentError(f"config 'computeType' = {kind!r} is not allowed: use one of "
                                  f"{', '.join(_LEGACY_COMPUTE_TYPES)}, or 'compute': '<target name>'")
        _logger.warning("mlflow-workspace: computeType %r is served as compute 'local' (a scoring server on this "
                        "machine; no Docker)", kind)
        raw.setdefault("compute", "local")
    if "instance_type" in raw:
        _logger.warning("mlflow-workspace: instance_type %r is ignored (use cpus_per_instance on a ray target)",
                        raw.pop("instance_type"))


def _read_config_file(key: str, value: Any) -> dict[str, Any]:
    path = Path(_text(key, value)).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentError(f"config {key!r}: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DeploymentError(f"config {key!r}: {path} is not valid {path.suffix or 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise DeploymentError(f"config {key!r}: {path} must hold an object of keys, got {type(data).__name__}")
    return data
