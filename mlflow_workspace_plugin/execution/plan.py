"""``plan``: what a run needs decided before anything exists — its executor (compute target checked),
its snapshot (limits checked) and so where its files and input data go (a remote run's data travels
in its source package; a local run works in a private copy).

A door that must place files before it can write the command (a YAML job: inputs, outputs) plans
first, then hands the plan to :func:`~mlflow_workspace_plugin.execution.launch`, which checks and
collects nothing twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from mlflow_workspace_plugin.capture.snapshot import Snapshot, collect_snapshot
from mlflow_workspace_plugin.compute.base import Executor
from mlflow_workspace_plugin.compute.registry import cluster_address, executor_for
from mlflow_workspace_plugin.compute.resources import ResourceShape
from mlflow_workspace_plugin.workspace import Workspace

__all__ = ["Plan", "check_target", "cluster_address", "plan", "plan_resources"]
_logger = logging.getLogger("mlflow.projects.azureml")
_noted: set[tuple] = set()
_lock = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """The executor of a run's compute target and the snapshot of its source folder."""

    executor: Executor
    snapshot: Snapshot

    @property
    def is_remote(self) -> bool:
        """The run executes elsewhere: it goes on when this process ends; its data must travel."""
        return self.executor.is_remote

    def moved_to(self, root: Path) -> Plan:
        """The same plan for an exact copy of the snapshot's files at ``root`` (a private working copy)."""
        return dataclasses.replace(self, snapshot=dataclasses.replace(self.snapshot, root=Path(root)))

    def collected_at(self, root: Path) -> Plan:
        """The same executor with the snapshot of another folder (limits checked again)."""
        return dataclasses.replace(self, snapshot=collect_snapshot(Path(root)))


def plan(compute: str, source_dir: Path, workspace: Workspace) -> Plan:
    """Check compute target ``compute`` of ``workspace`` and the snapshot of ``source_dir``."""
    executor = executor_for(compute, workspace)
    return Plan(executor=executor, snapshot=collect_snapshot(Path(source_dir)))


def plan_resources(executor: Executor, instance_type: str | None, asked: ResourceShape | None,
                   instances: int = 1) -> ResourceShape | None:
    """What a run of ``instances`` instances reserves on ``executor``'s target (None: nothing), checked
    against what the compute has; an instance type or shape the target ignores is said once."""
    note = executor.ignored_resources(instance_type, asked)
    if note is not None:
        key = (executor.target.name, instance_type, asked)
        with _lock:
            first = key not in _noted
            _noted.add(key)
        if first:
            asked_text = f"instance type {instance_type!r}" if instance_type else f"resources {asked.describe()}"
            _logger.warning("mlflow-workspace: %s is not reserved: %s", asked_text, note)
    shape = executor.resource_shape(instance_type, asked)
    if shape is None:
        return None
    shape = shape.times(instances)  # all instances of a run share its one job on the target
    executor.check_resources(shape)
    return shape


def check_target(compute: str, workspace: Workspace, *, reachable: bool = True) -> Executor:
    """The executor of ``compute``, its settings valid and (remote, with ``reachable``) answering: for
    controllers that check their runs' target before their own run exists."""
    executor = executor_for(compute, workspace)
    if reachable and executor.is_remote:
        executor.check_reachable()
    return executor
