"""Materialise a job's inputs and outputs into the values its command receives, and describe them for the run.

=====================  =============================  ==========================================
input                  ``ro_mount`` / ``mount``        ``download``
=====================  =============================  ==========================================
local path, file://    the path itself (no copy)      a private copy under ``private_dir``
http(s)://             downloaded into private_dir    downloaded into private_dir
runs:/, models:/       downloaded (MLflow artifacts)  downloaded (MLflow artifacts)
datastore, local       the path in its folder          a private copy under ``private_dir``
datastore, blob        downloaded (azure-storage-blob)  downloaded (azure-storage-blob)
datastore, http        downloaded (one file)           downloaded (one file)
azureml:<data asset>   as its stored files / its URI   as its stored files / its URI
=====================  =============================  ==========================================

Datastore URIs are ``azureml://datastores/<store>/paths/<p>``, ``wasbs://``, ``abfss://`` and blob
``https://`` URLs (:mod:`mlflow_workspace_plugin.store.datastores`). Model inputs (``mlflow_model``,
``custom_model``, ``triton_model``) are folders like ``uri_folder``; ``azureml:<model>:<version>`` is the
registered model (``models:/``). ``direct`` passes the URI as written. Literal inputs become their text
(``str(value)``). Downloads land in ``<private_dir>/inputs/<name>/``. Outputs are folders
``<outputs_root>/<name>/``.
With ``contained=True`` (data that travels with a remote job) a local folder is copied without
following a link: links ending inside it stay (relative) links, links pointing outside it are left
out with one warning naming them (never their targets' bytes).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, unquote, urlencode, urlparse, urlunparse

import requests
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from mlflow_workspace_plugin.assets.data import STORED_KEY, dataset_input, resolve_data
from mlflow_workspace_plugin.assets.store import AssetStore
from mlflow_workspace_plugin.capture.links import copy_tree_contained
from mlflow_workspace_plugin.jobs.errors import JobInputError
from mlflow_workspace_plugin.jobs.normalize import scalar_text
from mlflow_workspace_plugin.jobs.spec import CommandJob, DataInput, LiteralInput
from mlflow_workspace_plugin.store.datastores import (
    Datastore,
    DatastoreError,
    check_no_links_out,
    fetch,
    is_storage_uri,
    workspace_datastores,
)
from mlflow_workspace_plugin.store.datastores import resolve as resolve_location

HTTP_CONNECT_TIMEOUT = 10.0  # seconds to reach the server
HTTP_READ_TIMEOUT = 60.0  # seconds of silence allowed while downloading
_CHUNK = 1 << 20
_logger = logging.getLogger("mlflow.projects.azureml")


def materialize_input(
    spec: LiteralInput | DataInput,
    private_dir: Path,
    tracking_uri: str | None = None,
    *,
    registry_uri: str | None = None,
    source_file: Path | str | None = None,
    http_timeout: tuple[float, float] = (HTTP_CONNECT_TIMEOUT, HTTP_READ_TIMEOUT),
    datastores: Mapping[str, Datastore] | None = None,
    contained: bool = False,
) -> str:
    """The value ``${{inputs.<name>}}`` takes for ``spec`` (see the module table).

    ``private_dir`` is the job's own folder for copies and downloads. ``tracking_uri`` / ``registry_uri``
    (default: the tracking URI) say where ``runs:/``, ``models:/`` and data assets are read from;
    ``datastores`` (default: the current workspace's) where datastore URIs lead.
    Failures raise :class:`JobInputError` naming the input and the (redacted) URI.
    """
    field = f"inputs.{spec.name}"
    if not spec.present:
        raise JobInputError.at(source_file, field, "has no value (an optional input left out)")
    if isinstance(spec, LiteralInput):
        return scalar_text(spec.value)
    if spec.mode == "direct":
        return spec.uri
    target = Path(private_dir) / "inputs" / spec.name
    if spec.scheme == "local":
        if spec.mode == "ro_mount":
            return str(spec.local_path)
        return str(_copy(spec.local_path, target, field if contained else None))
    if spec.scheme == "asset":
        return _materialize_asset(spec, target, tracking_uri, source_file, field,
                                  lambda inner: materialize_input(inner, private_dir, tracking_uri,
                                                                  registry_uri=registry_uri, source_file=source_file,
                                                                  http_timeout=http_timeout, datastores=datastores,
                                                                  contained=contained))
    if spec.scheme in ("datastore", "http"):
        stores = workspace_datastores() if datastores is None else datastores
        if spec.scheme == "datastore" or is_storage_uri(spec.uri, stores):
            return _from_datastore(spec, target, stores, http_timeout, source_file, field)
        return str(_download(spec.uri, target, http_timeout, source_file, field))
    return _download_artifacts(spec.uri, target, tracking_uri, registry_uri or tracking_uri, source_file, field)


def _from_datastore(spec: DataInput, target: Path, stores: Mapping[str, Datastore],
                    http_timeout: tuple[float, float], source_file: Path | str | None, field: str) -> str:
    try:
        location = resolve_location(spec.uri, stores)
        if location.store.type == "http":
            if spec.type != "uri_file":
                raise JobInputError.at(source_file, f"{field}.type", (
                    f"{location.shown}: datastore {location.store.name!r} is an http datastore, which cannot list "
                    "a folder; use type: uri_file, or keep the folder in a local or blob datastore"))
            return str(_download(location.http_url, target, http_timeout, source_file, field))
        if location.store.type == "local" and spec.mode == "ro_mount":
            path = location.local_path
            if not path.exists():
                raise DatastoreError(f"{location.shown}: {path} does not exist")
            check_no_links_out(path, location.store.path)
            return str(path)
        return str(fetch(location, target, spec.type))
    except DatastoreError as error:
        raise JobInputError.at(source_file, field, error.message) from None


def _materialize_asset(spec: DataInput, target: Path, tracking_uri: str | None, source_file: Path | str | None,
                       field: str, materialize) -> str:
    """A data asset's stored files (downloaded) or the URI it names (materialised as that URI would be)."""
    try:
        asset = resolve_data(spec.uri, tracking_uri)
        if asset.spec.get(STORED_KEY):
            if spec.mode == "direct":
                return asset.files_uri
            _fresh(target)
            folder = AssetStore(tracking_uri).download_files(asset, target)
            if asset.spec.get("type") == "uri_file":
                files = [p for p in folder.iterdir() if p.is_file()]
                return str(files[0]) if len(files) == 1 else str(folder)
            return str(folder)
    except MlflowException as error:
        raise JobInputError.at(source_file, field, error.message.splitlines()[0]) from None
    uri = asset.spec.get("path")
    if spec.mode == "direct":
        return uri
    return materialize(DataInput(name=spec.name, type=asset.spec.get("type", spec.type), uri=uri, mode=spec.mode))


def pin_data_assets(job: CommandJob, tracking_uri: str | None) -> CommandJob:
    """``job`` with each data asset input naming its exact version (``azureml:iris@latest`` ->
    ``azureml:iris:3``), so the run's tags and what the command reads agree; unknown assets are one error."""
    pinned = {}
    for name, spec in job.inputs.items():
        if isinstance(spec, DataInput) and spec.present and spec.scheme == "asset":
            try:
                asset = resolve_data(spec.uri, tracking_uri)
            except MlflowException as error:
                raise JobInputError.at(job.source_file, f"inputs.{name}", error.message.splitlines()[0]) from None
            pinned[name] = spec.model_copy(update={"uri": asset.reference})
    return job.model_copy(update={"inputs": {**job.inputs, **pinned}}) if pinned else job


def log_data_assets(job: CommandJob, run_id: str, tracking_uri: str) -> None:
    """Record each (pinned) data asset input on the run as an MLflow dataset input."""
    from mlflow import MlflowClient

    datasets = [dataset_input(resolve_data(spec.uri, tracking_uri), name) for name, spec in job.inputs.items()
                if isinstance(spec, DataInput) and spec.present and spec.scheme == "asset"]
    if datasets:
        MlflowClient(tracking_uri).log_inputs(run_id, datasets=datasets)


def prepare_outputs(job: CommandJob, outputs_root: Path) -> dict[str, str]:
    """Create ``<outputs_root>/<name>/`` for each output; returns ``{"outputs.<name>": folder}``.

    Put ``outputs_root`` at ``<working dir>/outputs`` and the end-of-run upload of ``./outputs`` records
    each output as the run's ``outputs/<name>/`` artifacts.
    """
    folders = {}
    for name in job.outputs:
        folder = Path(outputs_root) / name
        folder.mkdir(parents=True, exist_ok=True)
        folders[f"outputs.{name}"] = str(folder)
    return folders


def command_values(
    job: CommandJob,
    private_dir: Path,
    outputs_root: Path,
    tracking_uri: str | None = None,
    *,
    registry_uri: str | None = None,
) -> dict[str, str | None]:
    """Every input and output value for :func:`render_command` (absent optional inputs map to None)."""
    values: dict[str, str | None] = {
        f"inputs.{name}": (
            materialize_input(spec, private_dir, tracking_uri, registry_uri=registry_uri, source_file=job.source_file)
            if spec.present
            else None
        )
        for name, spec in job.inputs.items()
    }
    values.update(prepare_outputs(job, outputs_root))
    return values


def describe_io(job: CommandJob) -> dict[str, str]:
    """Run tags that say where each input came from and where each output goes.

    - ``azureml.inputs.<name>``: a literal's value, or a data input's source (absolute path or URI,
      with passwords and query values masked);
    - ``azureml.inputs.<name>.type``: e.g. ``uri_file (ro_mount)``;
    - ``azureml.outputs.<name>``: the artifact folder ``outputs/<name>``; ``.type``: e.g. ``uri_folder (rw_mount)``.

    Tags, not params: a script that logs a param with the same name would otherwise clash with it.
    Optional inputs without a value get no tag.
    """
    tags: dict[str, str] = {}
    for name, spec in job.inputs.items():
        if not spec.present:
            continue
        if isinstance(spec, LiteralInput):
            tags[f"azureml.inputs.{name}"] = scalar_text(spec.value)
        else:
            tags[f"azureml.inputs.{name}"] = redact_uri(spec.uri)
            tags[f"azureml.inputs.{name}.type"] = f"{spec.type} ({spec.mode})"
    for name, output in job.outputs.items():
        tags[f"azureml.outputs.{name}"] = f"outputs/{name}"
        tags[f"azureml.outputs.{name}.type"] = f"{output.type} ({output.mode})"
    return {key: value[:MAX_TAG_VAL_LENGTH] for key, value in tags.items()}


def redact_uri(uri: str) -> str:
    """``uri`` without secrets: a password in the authority and every query value become ``***``."""
    parsed = urlparse(uri)
    if parsed.password is None and not parsed.query and not parsed.fragment:
        return uri
    netloc = parsed.netloc
    if parsed.password is not None:
        netloc = f"{parsed.username}:***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    query = urlencode([(key, "***") for key, _ in parse_qsl(parsed.query, keep_blank_values=True)], safe="*")
    return urlunparse(parsed._replace(netloc=netloc, query=query, fragment=""))


def _copy(source: Path, target: Path, contained_field: str | None = None) -> Path:
    _fresh(target)
    if source.is_dir() and contained_field is not None:
        skipped = copy_tree_contained(source, target)
        if skipped:
            shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
            _logger.warning("mlflow-workspace: %s: left out %d symbolic link(s) pointing outside %s (never "
                            "followed): %s", contained_field, len(skipped), source, shown)
        return target
    if source.is_dir():
        shutil.copytree(source, target)
        return target
    target.mkdir(parents=True)
    return Path(shutil.copy2(source, target / source.name))


def _download(
    url: str, target: Path, timeout: tuple[float, float], source_file: Path | str | None, field: str
) -> Path:
    _fresh(target)
    target.mkdir(parents=True)
    name = unquote(PurePosixPath(urlparse(url).path).name) or "download"
    destination = target / name
    shown = redact_uri(url)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 400:
                raise JobInputError.at(
                    source_file, field, f"cannot download {shown}: HTTP {response.status_code} {response.reason}"
                )
            with tempfile.NamedTemporaryFile(dir=target, delete=False, prefix=".part-") as part:
                for chunk in response.iter_content(_CHUNK):
                    part.write(chunk)
        Path(part.name).replace(destination)
    except requests.Timeout:
        raise JobInputError.at(
            source_file, field, f"cannot download {shown}: no answer within {max(timeout):g} s"
        ) from None
    except requests.RequestException as error:
        reason = type(error).__name__.replace("Error", " error").strip()
        problem = f"cannot download {shown}: {reason} (is the URL reachable?)"
        raise JobInputError.at(source_file, field, problem) from None
    return destination


def _download_artifacts(
    uri: str,
    target: Path,
    tracking_uri: str | None,
    registry_uri: str | None,
    source_file: Path | str | None,
    field: str,
) -> str:
    from mlflow.artifacts import download_artifacts

    _fresh(target)
    try:
        return download_artifacts(
            artifact_uri=uri, dst_path=str(target), tracking_uri=tracking_uri, registry_uri=registry_uri
        )
    except (MlflowException, OSError) as error:
        reason = error.message if isinstance(error, MlflowException) else str(error)
        raise JobInputError.at(source_file, field, f"cannot download {uri}: {reason.splitlines()[0]}") from None


def _fresh(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
