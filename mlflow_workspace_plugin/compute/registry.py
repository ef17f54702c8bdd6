"""Find the executor of a compute target by the target's ``type`` (imported lazily, so optional
dependencies such as Ray stay optional)."""

from __future__ import annotations

import importlib
from typing import Any

from mlflow_workspace_plugin.compute.base import Executor
from mlflow_workspace_plugin.errors import WorkspaceConfigError

# type -> "module:Class" of its Executor
EXECUTOR_TYPES: dict[str, str] = {
    "local": "mlflow_workspace_plugin.compute.local:LocalExecutor",
    "ray": "mlflow_workspace_plugin.compute.ray_jobs:RayJobsAdapter",
}


def executor_for(name: str, workspace: Any) -> Executor:
    """The validated executor of compute target ``name`` of ``workspace`` (``local`` always exists);
    raises naming the known targets, the supported types or the bad setting."""
    target = workspace.get_compute_target(name)
    spec = EXECUTOR_TYPES.get(target.type)
    if spec is None:
        supported = ", ".join(sorted(t for t in EXECUTOR_TYPES if t != "local"))
        raise WorkspaceConfigError(
            f"Compute target {target.name!r} has type {target.type!r}, which has no executor; "
            f"supported compute types: {supported}"
        )
    module_name, class_name = spec.split(":")
    executor_class = getattr(importlib.import_module(module_name), class_name)
    return executor_class(target, workspace)


def cluster_address(name: str, workspace: Any) -> str:
    """The address of remote compute target ``name`` (a Ray cluster's dashboard), its settings valid
    and the cluster answering; raises naming the target when it is not a cluster."""
    from mlflow_workspace_plugin.compute.remote import RemoteExecutor

    executor = executor_for(name, workspace)
    if not isinstance(executor, RemoteExecutor):
        raise WorkspaceConfigError(f"Compute target {name!r} (type {executor.target.type!r}) is not a cluster "
                                   "with an address; use a target of type 'ray'")
    executor.check_reachable()
    return executor.address
