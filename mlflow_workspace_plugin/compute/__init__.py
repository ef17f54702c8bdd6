"""Remote compute adapters, looked up by the ``type`` of a workspace compute target."""

from __future__ import annotations

import importlib

from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.workspace import ComputeTarget

# type -> "module:Class" of its ComputeAdapter; imported lazily so optional deps stay optional.
ADAPTER_TYPES: dict[str, str] = {
    "ray": "mlflow_workspace_plugin.compute.ray_jobs:RayJobsAdapter",
}


def adapter_class(target: ComputeTarget):
    """The adapter class for ``target``, or an error naming the supported types."""
    spec = ADAPTER_TYPES.get(target.type)
    if spec is None:
        supported = ", ".join(sorted(ADAPTER_TYPES)) or "none in this version"
        raise WorkspaceConfigError(
            f"Compute target {target.name!r} has type {target.type!r}, which has no adapter; "
            f"supported compute types: {supported}"
        )
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)
