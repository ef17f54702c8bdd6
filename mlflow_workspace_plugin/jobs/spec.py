"""The normalised, frozen command-job model every YAML spelling turns into.

Whatever spelling a file uses (the seed's 2021 preview or today's CLI v2), :func:`load_job` returns the
same :class:`CommandJob`: paths absolute, placeholders in the ``${{inputs.x}}`` form, preview fields
translated (``mount`` -> ``ro_mount``, ``process_count`` -> ``process_count_per_instance``, ...).
Instances are frozen pydantic models: ``model_dump(mode="json")`` gives a JSON-able record and they pickle
(for Ray). The dict fields are plain dicts: treat them as read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlflow_workspace_plugin.compute.resources import ResourceShape
from mlflow_workspace_plugin.jobs.placeholders import Placeholder, find_placeholders

InputMode = Literal["ro_mount", "download", "direct"]
OutputMode = Literal["rw_mount", "upload"]
DataType = Literal["uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"]
Scalar = bool | int | float | str


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LiteralInput(_Frozen):
    """``inputs.lr: 0.1``: substituted into the command as written (``str()``, shell-quoted)."""

    kind: Literal["literal"] = "literal"
    name: str
    value: Scalar | None  # None: an optional input left without a value

    @property
    def present(self) -> bool:
        return self.value is not None


class DataInput(_Frozen):
    """A ``uri_file`` / ``uri_folder`` input.

    ``uri`` is what the job reads from: an absolute local path (for local paths), or the URI as written
    (``file://``, ``http(s)://``, ``runs:/``, ``models:/``). ``local_path`` is set for local paths and
    ``file://`` URIs and is known to exist. ``uri`` is None only for an optional input without a value.
    """

    kind: Literal["data"] = "data"
    name: str
    type: DataType
    uri: str | None
    local_path: Path | None = None
    mode: InputMode = "ro_mount"
    optional: bool = False
    description: str | None = None

    @property
    def present(self) -> bool:
        return self.uri is not None

    @property
    def scheme(self) -> Literal["local", "http", "runs", "models", "datastore", "asset"] | None:
        """Where the data comes from; None when absent."""
        if self.uri is None:
            return None
        if self.local_path is not None:
            return "local"
        from mlflow_workspace_plugin.store.datastores import is_storage_uri

        if is_storage_uri(self.uri):
            return "datastore"
        if self.uri.startswith(("http://", "https://")):
            return "http"
        if self.uri.startswith("azureml:"):
            return "asset"
        return "runs" if self.uri.startswith("runs:/") else "models"


JobInput = Annotated[LiteralInput | DataInput, Field(discriminator="kind")]


class JobOutput(_Frozen):
    """``outputs.x``: a writable folder whose content becomes the run's ``outputs/<name>/`` artifacts."""

    name: str
    type: DataType = "uri_folder"
    mode: OutputMode = "rw_mount"
    description: str | None = None
    path: str | None = None  # a datastore URI: the folder is uploaded there when the job ends
    model_name: str | None = None  # model outputs: registered under this name (YAML ``name``)
    model_version: str | None = None  # (YAML ``version``; informational: the registry numbers versions)


class Environment(_Frozen):
    """``environment``: exactly one of ``reference`` or the inline fields is set.

    ``reference`` is an ``azureml:<name>:<version>`` / ``azureml:<name>@latest`` string (curated or
    registered environment); ``image`` a Docker image; ``conda_file`` an absolute path that exists (or
    ``conda_inline``, the conda YAML written inline); ``build_context`` a Docker build folder.
    """

    reference: str | None = None
    image: str | None = None
    conda_file: Path | None = None
    conda_inline: dict | None = None
    build_context: Path | None = None
    dockerfile: str | None = None


class PyTorchDistribution(_Frozen):
    type: Literal["pytorch"] = "pytorch"
    process_count_per_instance: int = 1


class TensorFlowDistribution(_Frozen):
    type: Literal["tensorflow"] = "tensorflow"
    worker_count: int
    parameter_server_count: int = 0


class MpiDistribution(_Frozen):
    type: Literal["mpi"] = "mpi"
    process_count_per_instance: int = 1


Distribution = Annotated[
    PyTorchDistribution | TensorFlowDistribution | MpiDistribution, Field(discriminator="type")
]


class CommandJob(_Frozen):
    """A validated command job; see the README's "Jobs from YAML" table for each field."""

    source_file: Path
    name: str | None = None
    display_name: str | None = None
    experiment_name: str
    description: str | None = None
    tags: dict[str, str] = {}
    code: Path | None = None
    command: str
    environment_variables: dict[str, str] = {}
    environment: Environment | None = None
    compute: str = "local"
    instance_count: int = 1
    instance_type: str | None = None  # resources.instance_type: a shape of the compute target's instance_types
    resources: ResourceShape | None = None  # resources.properties' cpus / gpus / memory_gb / resources
    distribution: Distribution | None = None
    timeout: int | None = None  # limits.timeout, seconds
    inputs: dict[str, JobInput] = {}
    outputs: dict[str, JobOutput] = {}
    ignored_fields: tuple[str, ...] = ()  # accepted but without effect here (services, identity, ...)

    @property
    def placeholders(self) -> list[Placeholder]:
        return find_placeholders(self.command)

    @property
    def process_count(self) -> int:
        """How many processes the job starts in total (across all instances)."""
        if isinstance(self.distribution, TensorFlowDistribution):
            return self.distribution.worker_count + self.distribution.parameter_server_count
        if self.distribution is None:
            return self.instance_count
        return self.instance_count * self.distribution.process_count_per_instance
