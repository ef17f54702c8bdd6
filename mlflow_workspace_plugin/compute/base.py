"""The executor interface: what every compute type (this machine, a Ray cluster, ...) provides.

The run lifecycle (:mod:`mlflow_workspace_plugin.execution`) drives every executor the same way::

    executor_for(name)  -> check(environment, tracking_uri)   # before the run exists
    create + tag the run (run_tags) -> start(Launch) -> WatchedRun   # a failing start ends it FAILED
    -> record_identity(client, handle)   # what another process needs to find and stop the run
    ... cancel_run(client, run, reason)  # from any process, with the run's tags only

A new compute type is one new module with an :class:`Executor` subclass, registered by type name
in :mod:`mlflow_workspace_plugin.compute.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlflow import MlflowClient
from mlflow.entities import Run

from mlflow_workspace_plugin.capture.snapshot import Snapshot
from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.handles import WatchedRun
from mlflow_workspace_plugin.compute.process_set import SINGLE_PROCESS, ProcessSpec
from mlflow_workspace_plugin.compute.resources import ResourceShape
from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.workspace import ComputeTarget

COMPUTE_TAG = "azureml.compute"
COMPUTE_TYPE_TAG = "azureml.compute.type"
ENVIRONMENT_TAG = "mlflow.project.env"


@dataclass(frozen=True)
class Launch:
    """One run, created and validated, ready to start on an executor."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    command: str                      # shell command (bash), values already quoted
    source_dir: Path                  # the command's working directory and the snapshot's root
    snapshot: Snapshot
    run_env: Mapping[str, str]        # run identity, tracking connection/auth, user variables
    environment: EnvironmentSpec
    stream_output: bool = True
    raise_on_failure: bool = False
    timeout_seconds: float | None = None
    log_sync_seconds: float | None = None
    processes: tuple[ProcessSpec, ...] = SINGLE_PROCESS  # one per rank of a distributed run
    name: str | None = None           # the door's name for the run (a YAML job's name)
    resources: ResourceShape | None = None  # what the whole run reserves (all its instances)


class Executor(ABC):
    """Runs launches on one compute target; one instance per (target, workspace)."""

    type_name: ClassVar[str]
    is_remote: ClassVar[bool] = False  # runs elsewhere: goes on when this process ends; input data travels
    allowed_settings: ClassVar[dict[str, str]] = {}  # key -> description, for error messages

    def __init__(self, target: ComputeTarget, workspace: Any) -> None:
        self.target = target
        self.workspace = workspace
        unknown = sorted(set(target.settings) - set(self.allowed_settings))
        if unknown:
            raise self.config_error(unknown[0], "is not recognised")
        self.validate_settings()

    def validate_settings(self) -> None:  # noqa: B027 - optional hook: most types have no settings
        """Check ``self.target.settings``; raise :meth:`config_error` on a bad one."""

    @abstractmethod
    def check(self, environment: EnvironmentSpec, tracking_uri: str) -> None:
        """Everything that can be checked before the run exists (reachability, environment)."""

    @abstractmethod
    def describe(self) -> str:
        """Human-readable location, e.g. ``this machine`` or ``Ray cluster at http://...``."""

    @abstractmethod
    def start(self, launch: Launch) -> WatchedRun:
        """Start the run's command; raise if it cannot start (the lifecycle ends the run FAILED)."""

    def resource_shape(self, instance_type: str | None, asked: ResourceShape | None) -> ResourceShape | None:
        """What one instance of a run reserves here: ``instance_type`` (an Azure job's
        ``resources.instance_type``) and the run's own ``asked`` shape over it. Default: nothing (this
        compute type places runs itself); see :meth:`ignored_resources`."""
        return None

    def ignored_resources(self, instance_type: str | None, asked: ResourceShape | None) -> str | None:
        """Why an asked instance type / shape has no effect on this target (None: it has)."""
        if instance_type is None and (asked is None or asked.is_empty):
            return None
        return f"compute target {self.target.name!r} ({self.describe()}) runs it with what it has"

    def check_resources(self, shape: ResourceShape) -> None:  # noqa: B027 - optional hook
        """Fail before the run exists when no part of the compute could ever run ``shape``."""

    def run_tags(self, run_id: str, environment: EnvironmentSpec) -> dict[str, str]:
        """Tags naming where and how the run executes."""
        return {COMPUTE_TAG: self.target.name, ENVIRONMENT_TAG: environment.kind}

    def record_identity(self, client: MlflowClient, handle: WatchedRun) -> None:  # noqa: B027 - optional
        """Record on the started run what another process needs to find and stop it (default: the
        tags of :meth:`run_tags` are enough)."""

    @abstractmethod
    def cancel_run(self, client: MlflowClient, run: Run, reason: str) -> str:
        """Stop ``run`` (started by any process, found by its tags), record ``reason`` and end it
        KILLED; returns its final status."""

    def config_error(self, key: str, why: str) -> WorkspaceConfigError:
        where = f" in {self.workspace.config_path}" if getattr(self.workspace, "config_path", None) else ""
        allowed = "; ".join(f"{name} ({text})" for name, text in self.allowed_settings.items())
        return WorkspaceConfigError(
            f"Compute target {self.target.name!r} (type {self.target.type!r}){where}: setting "
            f"'compute.{self.target.name}.{key}' {why}. Allowed settings: {allowed}"
        )
