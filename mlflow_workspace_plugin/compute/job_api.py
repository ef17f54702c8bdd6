"""Adapter-neutral types for remote jobs: states, what an adapter reports, what it starts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.compute.resources import ResourceShape


class JobState(str, enum.Enum):
    """Adapter-neutral job states."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED)

    @property
    def run_status(self) -> str:
        """The MLflow run status this job state means (a pending job's run is RUNNING)."""
        return {JobState.SUCCEEDED: "FINISHED", JobState.FAILED: "FAILED",
                JobState.STOPPED: "KILLED"}.get(self, "RUNNING")


@dataclass(frozen=True)
class JobInfo:
    """What an adapter reports about a job."""

    state: JobState
    exit_code: int | None = None
    message: str = ""
    error_type: str | None = None
    cause: str | None = None  # why a failed job ended, when the compute knows more (e.g. its node died)


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to start one run as a job."""

    job_id: str
    run_id: str
    command: str                         # the run's shell command, parameters quoted
    source_zip: Path                     # the snapshot as a zip: the job's exact source
    env_vars: dict[str, str]             # run identity + tracking connection + user variables
    requirements: list[str] | None       # pip requirements; None = the cluster's own environment
    metadata: dict[str, str] = field(default_factory=dict)
    resources: ResourceShape | None = None  # what the job reserves on the cluster (None: nothing)


def first_lines(text: Any, limit: int = 2000) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + " ..."
