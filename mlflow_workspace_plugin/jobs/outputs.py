"""What happens to a job's outputs when its run has FINISHED, beyond the run's ``outputs/<name>/`` artifacts.

- ``path: azureml://datastores/<store>/paths/<p>``: the output folder is uploaded there (tag
  ``azureml.outputs.<name>.uploaded_to``);
- a model-typed output (``mlflow_model``, ``custom_model``, ``triton_model``) with a ``name`` is registered in
  the workspace's model registry from ``runs:/<run_id>/outputs/<name>`` (tag ``azureml.outputs.<name>.model``;
  the YAML's ``version`` is kept as the version's tag ``azureml.requested_version``: the registry numbers
  versions itself).

A run that did not finish delivers nothing (its artifacts still hold what it wrote). Failures are reported
as warnings and tags (``azureml.outputs.<name>.error``): the run itself already ended.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from mlflow_workspace_plugin.jobs.spec import CommandJob, JobOutput
from mlflow_workspace_plugin.store.datastores import Datastore, DatastoreError, resolve, upload
from mlflow_workspace_plugin.uri import redact

MODEL_TYPES = ("mlflow_model", "custom_model", "triton_model")
_logger = logging.getLogger("mlflow.projects.azureml")


def has_deliveries(job: CommandJob) -> bool:
    """Whether any output needs more than the run's artifacts."""
    return any(_delivers(output) for output in job.outputs.values())


def deliver_outputs(job: CommandJob, run_id: str, tracking_uri: str, stores: Mapping[str, Datastore],
                    outputs_dir: Path | None = None) -> dict[str, str]:
    """Upload / register the outputs of the FINISHED run ``run_id``; returns the tags set on it.

    ``outputs_dir`` is the run's local ``outputs`` folder when it ran here; otherwise each output is read
    back from the run's artifacts.
    """
    client = MlflowClient(tracking_uri)
    tags: dict[str, str] = {}
    for name, output in job.outputs.items():
        if not _delivers(output):
            continue
        try:
            if output.path is not None:
                tags[f"azureml.outputs.{name}.uploaded_to"] = _upload(client, run_id, name, output, stores,
                                                                      outputs_dir)
            if output.type in MODEL_TYPES and output.model_name:
                tags[f"azureml.outputs.{name}.model"] = _register(client, run_id, name, output)
        except (DatastoreError, MlflowException, OSError) as error:
            reason = redact(getattr(error, "message", None) or str(error)).splitlines()[0]
            tags[f"azureml.outputs.{name}.error"] = reason
            _logger.warning("mlflow-workspace: job %s: outputs.%s was not delivered: %s", job.name or run_id,
                            name, reason)
    for key, value in tags.items():
        client.set_tag(run_id, key, value[:MAX_TAG_VAL_LENGTH])
    return tags


def _delivers(output: JobOutput) -> bool:
    return output.path is not None or (output.type in MODEL_TYPES and bool(output.model_name))


def _upload(client: MlflowClient, run_id: str, name: str, output: JobOutput, stores: Mapping[str, Datastore],
            outputs_dir: Path | None) -> str:
    location = resolve(output.path, stores)
    local = Path(outputs_dir) / name if outputs_dir is not None else None
    if local is not None and local.is_dir():
        upload(local, location)
        return location.shown
    with tempfile.TemporaryDirectory(prefix="mlflow-ws-output-") as staging:
        folder = Path(client.download_artifacts(run_id, f"outputs/{name}", staging))
        upload(folder, location)
    return location.shown


def _register(client: MlflowClient, run_id: str, name: str, output: JobOutput) -> str:
    from mlflow.exceptions import RESOURCE_ALREADY_EXISTS
    from mlflow.protos.databricks_pb2 import ErrorCode

    try:
        client.create_registered_model(output.model_name, tags={"azureml.model.type": output.type})
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    tags = {"azureml.model.type": output.type, "azureml.job.output": name}
    if output.model_version:
        tags["azureml.requested_version"] = output.model_version
    version = client.create_model_version(output.model_name, source=f"runs:/{run_id}/outputs/{name}",
                                          run_id=run_id, tags=tags, description=output.description)
    return f"models:/{output.model_name}/{version.version}"
