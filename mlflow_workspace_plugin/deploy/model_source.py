"""Resolve a model URI against the workspace and turn it into a local MLflow pyfunc model folder.

Accepted URIs: ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<name>/latest``
(or a stage), ``runs:/<run id>/<path>``, or a local folder holding an MLmodel file.
A registered model version without an MLmodel file but with ``framework`` / ``framework_version``
tags (on the version or the registered model) and a joblib/pickle file is wrapped as a pyfunc
model (no-code deployment, seed 003). Anything else fails with an error saying what was found.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.deploy.errors import DeploymentError, not_found

MLMODEL = "MLmodel"
PYFUNC = "python_function"
MODEL_FILE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# framework tag (lowercased, without '-', '_' and spaces) -> pip distribution of that framework
FRAMEWORK_PACKAGES = {"scikitlearn": "scikit-learn", "sklearn": "scikit-learn", "xgboost": "xgboost",
                      "lightgbm": "lightgbm"}
_MODELS_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))/?$")
_RUNS_RE = re.compile(r"^runs:/(?P<run_id>[0-9a-fA-F]{8,64})/(?P<path>.+)$")
SHAPES = ("models:/<name>/<version>", "models:/<name>@<alias>", "models:/<name>/latest", "runs:/<run id>/<path>",
          "a local MLflow model folder")


@dataclass
class ModelSource:
    """Where a deployment's model comes from (stored with the deployment; never holds secrets)."""

    uri: str
    download_uri: str
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # "pyfunc" or "framework" once materialized
    framework: str | None = None
    framework_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(model_uri: str, tracking_uri: str) -> ModelSource:
    """Look the URI up in the workspace (registry or runs); unknown names/versions/aliases fail here."""
    if not isinstance(model_uri, str) or not model_uri.strip():
        raise DeploymentError(f"model_uri {model_uri!r} is empty; use one of: {', '.join(SHAPES)}")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    match = _MODELS_RE.match(model_uri)
    if match:
        return _resolve_registered(client, model_uri, match["name"], match["alias"], match["ref"])
    match = _RUNS_RE.match(model_uri)
    if match:
        try:
            client.get_run(match["run_id"])
        except MlflowException:
            raise not_found(f"model_uri {model_uri!r}: run {match['run_id']} does not exist in the workspace "
                            f"{tracking_uri}") from None
        return ModelSource(model_uri, model_uri, run_id=match["run_id"])
    path = Path(model_uri.removeprefix("file://")).expanduser()
    if path.is_absolute() and (path / MLMODEL).is_file():
        return ModelSource(model_uri, str(path))
    raise DeploymentError(f"model_uri {model_uri!r} is not supported: use one of: {', '.join(SHAPES)}")


def _resolve_registered(client: MlflowClient, uri: str, name: str, alias: str | None, ref: str | None) -> ModelSource:
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        raise not_found(f"model_uri {uri!r}: no registered model named {name!r} in the workspace") from None
    try:
        if alias is not None:
            version = client.get_model_version_by_alias(name, alias)
        elif ref.isdigit():
            version = client.get_model_version(name, ref)
        else:
            found = client.get_latest_versions(name, None if ref.lower() == "latest" else [ref])
            if not found:
                raise MlflowException(f"no version in {ref!r}")
            version = max(found, key=lambda v: int(v.version))
    except MlflowException:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        aliases = sorted(registered.aliases or {})
        what = f"alias {alias!r}" if alias is not None else f"version {ref!r}"
        raise not_found(f"model_uri {uri!r}: model {name!r} has no {what}; versions: "
                        f"{', '.join(map(str, versions)) or 'none'}; aliases: {', '.join(aliases) or 'none'}") from None
    tags = {**(registered.tags or {}), **(version.tags or {})}
    return ModelSource(uri, f"models:/{name}/{version.version}", name=name, version=str(version.version),
                       run_id=version.run_id, tags=tags)


def materialize(source: ModelSource, dest: Path, tracking_uri: str) -> Path:
    """Download the model into ``dest`` as an MLflow pyfunc model folder (wrapping a framework file)."""
    dest = Path(dest)
    staging = dest.with_name(dest.name + ".download")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    try:
        if Path(source.download_uri).is_absolute():
            shutil.copytree(source.download_uri, staging)
            local = staging
        else:
            import mlflow.artifacts

            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=_storage_uri(client, source.download_uri), dst_path=str(staging),
                tracking_uri=tracking_uri, registry_uri=tracking_uri))
        if not local.is_dir():
            raise DeploymentError(f"Model {source.uri!r} is a single file ({local.name}), not a model folder")
        if (local / MLMODEL).is_file():
            _check_pyfunc(source, local)
            local.rename(dest)
            source.kind = "pyfunc"
        else:
            _wrap_framework_model(source, local, dest)
    except MlflowException as exc:
        if isinstance(exc, DeploymentError):
            raise
        raise DeploymentError(f"Cannot fetch model {source.uri!r}: {exc.message}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _storage_uri(client: MlflowClient, uri: str) -> str:
    """Where the files behind a ``models:/<name>/<version>`` or ``runs:/<run id>/<path>`` URI are
    stored, looked up through ``client`` alone: MLflow's ``models:/`` (and, before 3.x's later
    releases, ``runs:/``) repositories resolve with the process-wide tracking and registry URIs,
    whatever is passed in, and swapping those globals races with other threads."""
    match = re.match(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$", uri)
    if match:
        uri = client.get_model_version_download_uri(match["name"], match["version"])
    logged = re.match(r"^models:/(?P<model_id>m-[^/]+)/?$", uri)  # MLflow 3 logged model
    if logged:
        return client.get_logged_model(logged["model_id"]).artifact_location
    match = _RUNS_RE.match(uri)
    if not match:
        return uri
    run_id, path = match["run_id"], match["path"].strip("/")
    run = client.get_run(run_id)
    for output in getattr(run.outputs, "model_outputs", None) or []:  # MLflow 3: a model the run logged
        model = client.get_logged_model(output.model_id)
        if model.name == path:
            return model.artifact_location
    return f"{run.info.artifact_uri.rstrip('/')}/{path}"  # a folder among the run's own artifacts


def _check_pyfunc(source: ModelSource, folder: Path) -> None:
    try:
        flavors = (yaml.safe_load((folder / MLMODEL).read_text(encoding="utf-8")) or {}).get("flavors") or {}
    except yaml.YAMLError as exc:
        raise DeploymentError(f"Model {source.uri!r}: its MLmodel file is not valid YAML: {exc}") from None
    if PYFUNC not in flavors:
        raise DeploymentError(f"Model {source.uri!r} cannot be served: its MLmodel has flavors "
                              f"{', '.join(sorted(flavors)) or 'none'} but no {PYFUNC!r} flavor")


def _wrap_framework_model(source: ModelSource, staging: Path, dest: Path) -> None:
    framework = source.tags.get("framework")
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    if not framework:
        listing = ", ".join(str(p.relative_to(staging)) for p in files[:8]) or "no files"
        raise DeploymentError(
            f"Model {source.uri!r} cannot be served: it has no MLmodel file (found: {listing}) and no "
            "'framework' tag. Register an MLflow model (mlflow.<flavor>.log_model), or tag the version with "
            "framework=ScikitLearn and framework_version=<version> next to a .joblib/.pkl file"
        )
    package = FRAMEWORK_PACKAGES.get(re.sub(r"[-_ ]", "", framework.lower()))
    if package is None:
        raise DeploymentError(f"Model {source.uri!r}: framework tag {framework!r} is not supported for no-code "
                              f"deployment; supported: ScikitLearn, XGBoost, LightGBM (a joblib/pickle file)")
    model_file = _pick_model_file(source, staging, files)
    import mlflow.pyfunc

    from mlflow_workspace_plugin.deploy import framework_model

    version = source.tags.get("framework_version")
    requirement = f"{package}=={version}" if version else package
    mlflow.pyfunc.save_model(str(dest), python_model=framework_model.__file__,
                             artifacts={"model_file": str(model_file)},
                             pip_requirements=[requirement, "joblib"])
    source.kind, source.framework, source.framework_version = "framework", framework, version


def _pick_model_file(source: ModelSource, staging: Path, files: list[Path]) -> Path:
    hinted = source.tags.get("model_path")
    if hinted:
        hint = Path(hinted)
        for candidate in files:
            rel = candidate.relative_to(staging)
            if rel == hint or rel.parts == hint.parts[-len(rel.parts):]:
                return candidate
    found = [p for p in files if p.suffix.lower() in MODEL_FILE_SUFFIXES]
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(staging)) for p in found) or "none"
        raise DeploymentError(f"Model {source.uri!r} (framework {source.tags.get('framework')!r}) needs exactly one "
                              f"{'/'.join(MODEL_FILE_SUFFIXES)} file or a 'model_path' tag; found: {names}")
    return found[0]
