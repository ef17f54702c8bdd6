"""``RunRequest``: everything one run needs, built by a door and validated before anything starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.handles import WatchedRun
from mlflow_workspace_plugin.compute.process_set import SINGLE_PROCESS, ProcessSpec
from mlflow_workspace_plugin.compute.resources import ResourceShape


@dataclass(frozen=True)
class RunRequest:
    """One run of a shell command on a compute target of the workspace.

    ``tracking_uri`` None means "the workspace of ``Workspace.from_config()``": it becomes MLflow's
    tracking URI at launch, after validation, and the experiment (``experiment_name``, else
    ``experiment_id``) is resolved there. ``existing_run_id`` reuses a run created by the caller.
``private_dir`` is removed when the run has ended, a remote run's once it started (the cluster has its package).
    """

    source_dir: Path                                   # working directory and snapshot root
    command: str                                       # bash command, values already shell-quoted
    experiment_id: str | None = None
    experiment_name: str | None = None
    tracking_uri: str | None = None
    compute: str = "local"
    run_name: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    existing_run_id: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)  # extra variables for the command
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    stream_output: bool = True
    raise_on_failure: bool = False
    timeout_seconds: float | None = None
    processes: tuple[ProcessSpec, ...] = SINGLE_PROCESS  # distributed runs: one per rank, same command
    name: str | None = None                            # the door's name for the run (the handle's job_name)
    instance_type: str | None = None                   # an Azure job's resources.instance_type
    resources: ResourceShape | None = None             # what one instance asks for, over its instance type's
    instances: int = 1                                 # instances of a distributed run (one job on the target)
    private_dir: Path | None = None                    # the run's own folder (copies, data): removed once it ends
    on_end: Callable[[WatchedRun], None] | None = None  # the door's last step once the run ended (before
    #                                                     private_dir goes), e.g. delivering outputs
