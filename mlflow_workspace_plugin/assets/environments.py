"""Registered environments: Azure ML's environment YAML, stored as versioned assets of the workspace.

``mlflow-workspace environment create -f env.yml`` reads Azure's environment YAML::

    $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
    name: sklearn-team
    version: 3                       # optional: the next integer version
    description: our scikit-learn environment
    tags: {team: ml}
    image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
    conda_file: conda.yml            # relative to the YAML file
    build: {path: docker-context, dockerfile_path: Dockerfile}   # instead of image
    os_type: linux

and stores it with :class:`~mlflow_workspace_plugin.assets.store.AssetStore`: the spec (the fields
above, the conda file's **content** under ``conda``) is the version's ``asset.json``; a ``build.path``
folder is stored as the version's files. Jobs reference it as ``azureml:<name>:<version>`` or
``azureml:<name>@latest``. Names starting with ``AzureML`` are Azure's curated environments and cannot
be registered (as in Azure ML). A conda file's pip list is checked by the same rules as a job's
(:mod:`mlflow_workspace_plugin.environments.requirement_rules`) when it is created, and again on use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlflow_workspace_plugin.assets.store import AssetError, AssetStore, AssetVersion, validate_name
from mlflow_workspace_plugin.environments.conda_files import conda_data_requirements, read_conda_file
from mlflow_workspace_plugin.environments.requirement_rules import check_requirements

KIND = "environment"
FIELDS = ("$schema", "name", "version", "description", "tags", "image", "conda_file", "build", "os_type",
          "inference_config")
BUILD_FIELDS = ("path", "dockerfile_path")
MAX_YAML_BYTES = 1_000_000


def load_environment_yaml(path: str | Path) -> tuple[dict[str, Any], Path | None]:
    """(the spec to store, the build-context folder to store with it) of an environment YAML file."""
    path = Path(path)
    where = f"Environment file {path}"
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise AssetError(f"{where} is larger than {MAX_YAML_BYTES} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AssetError(f"Cannot read {where.lower()}: {exc}") from None
    if not isinstance(data, dict):
        raise AssetError(f"{where} must be a YAML mapping with name, image / build / conda_file")
    unknown = sorted(set(map(str, data)) - set(FIELDS))
    if unknown:
        raise AssetError(f"{where}: field {unknown[0]!r} is not recognised; allowed: {', '.join(FIELDS)}")
    name = validate_name(data.get("name"), "environment name")
    if name.lower().startswith("azureml"):
        raise AssetError(f"{where}: name {name!r} starts with 'AzureML', which is reserved for Azure's curated "
                         "environments; choose another name")
    spec: dict[str, Any] = {"name": name}
    for key in ("description", "image", "os_type"):
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise AssetError(f"{where}: field {key!r} must be a string, got {data[key]!r}")
            spec[key] = data[key]
    if data.get("tags") is not None:
        if not isinstance(data["tags"], dict):
            raise AssetError(f"{where}: field 'tags' must be a mapping of name -> value")
        spec["tags"] = {str(k): str(v) for k, v in data["tags"].items()}
    if data.get("conda_file") is not None:
        spec["conda_file"], spec["conda"] = _conda(data["conda_file"], path, where)
    build_dir = None
    if data.get("build") is not None:
        build_dir, spec["build"] = _build(data["build"], path, where)
    if not any(key in spec for key in ("image", "conda", "build")):
        raise AssetError(f"{where}: give image, build or conda_file (an environment needs at least one)")
    if "image" in spec and "build" in spec:
        raise AssetError(f"{where}: give image or build, not both")
    return spec, build_dir


def create_environment(path: str | Path, *, store: AssetStore | None = None, name: str | None = None,
                       version: str | None = None) -> AssetVersion:
    """Register the environment of ``path`` (``name`` / ``version`` override the file's)."""
    spec, build_dir = load_environment_yaml(path)
    if name is not None:
        spec["name"] = validate_name(name, "environment name")
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    version = version if version is not None else data.get("version")
    store = store or AssetStore()
    return store.create(KIND, spec["name"], spec, version=version, files=build_dir,
                        description=spec.get("description"), tags=spec.get("tags"))


def _conda(value: Any, yaml_path: Path, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(value, dict):
        data, label = value, "inline"
    elif isinstance(value, str):
        file = (yaml_path.parent / value.removeprefix("file:")).resolve()
        if not file.is_file():
            raise AssetError(f"{where}: conda_file {value!r} does not exist ({file})")
        data, label = read_conda_file(file), file.name
    else:
        raise AssetError(f"{where}: field 'conda_file' must be a path (or the conda YAML inline), got {value!r}")
    check_requirements(conda_data_requirements(data, None, f"{where}: conda_file"), source=f"{where}: conda_file")
    return label, data


def _build(value: Any, yaml_path: Path, where: str) -> tuple[Path, dict[str, str]]:
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise AssetError(f"{where}: field 'build' must be a mapping with 'path' (a local folder)")
    unknown = sorted(set(value) - set(BUILD_FIELDS))
    if unknown:
        raise AssetError(f"{where}: field 'build.{unknown[0]}' is not recognised; allowed: {', '.join(BUILD_FIELDS)}")
    if value["path"].startswith(("http://", "https://", "git+", "azureml:")):
        raise AssetError(f"{where}: build.path {value['path']!r} must be a local folder here")
    folder = (yaml_path.parent / value["path"]).resolve()
    if not folder.is_dir():
        raise AssetError(f"{where}: build.path {value['path']!r} is not a folder ({folder})")
    dockerfile = value.get("dockerfile_path") or "Dockerfile"
    if not isinstance(dockerfile, str) or not (folder / dockerfile).resolve().is_relative_to(folder):
        raise AssetError(f"{where}: build.dockerfile_path {dockerfile!r} must name a file inside build.path")
    return folder, {"path": value["path"], "dockerfile_path": dockerfile}


def environment_summary(asset: AssetVersion) -> dict[str, Any]:
    """What ``environment show`` prints: the stored spec with its name, version and reference."""
    return {**asset.spec, "name": asset.name, "version": asset.version, "reference": asset.reference,
            "created": asset.created_ms, "archived": asset.archived}

