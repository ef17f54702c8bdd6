"""Data assets: Azure ML's data YAML -> a versioned asset in the workspace (:mod:`.store`).

A data YAML (``mlflow-workspace data create -f data.yml``) has ``name``, ``version``, ``type``
(``uri_file``, ``uri_folder`` or ``mltable``), ``path``, ``description`` and ``tags``. A local ``path``
(relative to the YAML file, or ``file://``) is **uploaded into the workspace** with the version, as Azure
ML uploads it to the workspace's blob store; a URI (``azureml://datastores/...``, ``wasbs://``,
``abfss://``, ``https://``, ``runs:/``) is stored as written and read when a job uses the asset.
Jobs refer to ``azureml:<name>:<version>`` or ``azureml:<name>@latest``; the run records the exact
version (a tag and an MLflow dataset input).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from mlflow_workspace_plugin.assets.store import AssetError, AssetStore, AssetVersion, validate_name, validate_version
from mlflow_workspace_plugin.uri import redact

KIND = "data"
TYPES = ("uri_file", "uri_folder", "mltable")
FIELDS = ("$schema", "name", "version", "type", "path", "description", "tags", "properties")
STORED_KEY = "stored_in_workspace"  # spec key: True when the files were uploaded with the version
SOURCE_TYPE = "azureml_data_asset"  # MLflow dataset source type recorded on runs
_URI_SCHEMES = ("azureml", "wasb", "wasbs", "abfs", "abfss", "http", "https", "runs")


def load_data_yaml(file: str | Path) -> dict[str, Any]:
    """The data YAML at ``file`` as a dict (unknown keys and wrong types are errors naming them)."""
    import yaml

    path = Path(file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AssetError(f"Cannot read data YAML {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise AssetError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise AssetError(f"{path}: a data YAML is a mapping with name, version, type and path")
    unknown = sorted(str(key) for key in data if key not in FIELDS)
    if unknown:
        raise AssetError(f"{path}: unknown key {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    return data


def create_data_asset(file: str | Path, tracking_uri: str | None = None, *, name: str | None = None,
                      version: str | None = None) -> AssetVersion:
    """Create the data asset the YAML ``file`` describes (``name`` / ``version`` override the file's)."""
    path = Path(file).resolve()
    data = load_data_yaml(path)
    name = validate_name(name if name is not None else data.get("name"), "name")
    version = version if version is not None else data.get("version")
    version = validate_version(version) if version is not None else None
    data_type = data.get("type", "uri_folder")
    if data_type not in TYPES:
        raise AssetError(f"{path}: type {data_type!r} is not a data asset type; allowed: {', '.join(TYPES)}")
    source = data.get("path")
    if not isinstance(source, str) or not source:
        raise AssetError(f"{path}: path is missing; give a local file or folder (uploaded into the workspace) "
                         "or a URI (azureml://datastores/<store>/paths/<p>, wasbs://, abfss://, https://)")
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise AssetError(f"{path}: tags must be a mapping of name -> value")
    description = data.get("description")
    local = _local_source(source, path.parent)
    spec = {"name": name, "type": data_type, "description": description, "tags": {k: str(v) for k, v in tags.items()}}
    store = AssetStore(tracking_uri)
    if local is not None:
        _check_local(local, data_type)
        spec.update(path=str(local), **{STORED_KEY: True})
        return store.create(KIND, name, spec, version=version, files=local, description=description, tags=tags)
    _check_uri(source, data_type)
    spec.update(path=source, **{STORED_KEY: False})
    return store.create(KIND, name, spec, version=version, description=description, tags=tags)


def resolve_data(reference: str, tracking_uri: str | None = None) -> AssetVersion:
    """The data asset version ``reference`` names (``azureml:<name>:<version>`` / ``@latest``)."""
    return AssetStore(tracking_uri).resolve(KIND, reference)


def dataset_input(asset: AssetVersion, input_name: str):
    """An MLflow ``DatasetInput`` recording ``asset``'s exact version as input ``input_name`` of a run."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = {"uri": asset.reference, "path": redact(asset.spec.get("path", "")),
              "stored_in_workspace": bool(asset.spec.get(STORED_KEY))}
    dataset = Dataset(name=asset.name, digest=asset.run_id[:36], source_type=SOURCE_TYPE,
                      source=json.dumps(source, sort_keys=True))
    tags = [InputTag(key="mlflow.data.context", value=f"input:{input_name}"),
            InputTag(key="azureml.data.version", value=asset.version)]
    return DatasetInput(dataset=dataset, tags=tags)


def describe(asset: AssetVersion) -> dict[str, Any]:
    """What ``data show`` prints: Azure's fields plus where the files live."""
    out = {"name": asset.name, "version": asset.version, "type": asset.spec.get("type"),
           "path": redact(asset.spec.get("path")), "description": asset.description,
           "tags": asset.tags, "archived": asset.archived, "reference": asset.reference}
    if asset.spec.get(STORED_KEY):
        out["stored_at"] = asset.files_uri
    return out


def _local_source(source: str, base: Path) -> Path | None:
    parsed = urlparse(source)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""
    if scheme == "file":
        return (base / url2pathname(unquote(parsed.path))).resolve()
    if scheme in _URI_SCHEMES:
        return None
    if scheme:
        raise AssetError(f"path {redact(source)!r}: {scheme}:// is not supported; use a local path, "
                         "azureml://datastores/<store>/paths/<p>, wasbs://, abfss://, http(s):// or runs:/")
    return (base / Path(source).expanduser()).resolve()


def _check_local(local: Path, data_type: str) -> None:
    if not local.exists():
        raise AssetError(f"path {str(local)!r} does not exist (relative paths start at the YAML file's folder)")
    if data_type == "uri_file" and not local.is_file():
        raise AssetError(f"path {str(local)!r} is a folder; use type: uri_folder")
    if data_type != "uri_file" and not local.is_dir():
        raise AssetError(f"path {str(local)!r} is a file; use type: uri_file")
    if data_type == "mltable" and not (local / "MLTable").is_file():
        raise AssetError(f"path {str(local)!r} has no MLTable file; an mltable asset is a folder with one")


def _check_uri(source: str, data_type: str) -> None:
    from mlflow_workspace_plugin.store.datastores import DatastoreError, check_shape, is_storage_uri

    if source.startswith("azureml:") and "/datastores/" not in source:
        raise AssetError(f"path {source!r}: a data asset's path is a file, folder or storage URI, "
                         "not another asset")
    if is_storage_uri(source):
        try:
            check_shape(source)
        except DatastoreError as error:
            raise AssetError(error.message) from None
    elif source.startswith(("http://", "https://")) and data_type != "uri_file":
        raise AssetError(f"path {redact(source)!r}: a web server cannot list a folder; use type: uri_file, or "
                         "a blob container URL / wasbs:// / azureml://datastores/ URI for a folder")

