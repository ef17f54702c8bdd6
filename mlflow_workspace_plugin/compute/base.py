"""The compute adapter interface: what a remote compute type provides to run MLflow projects.

:meth:`ComputeAdapter.submit` is the shared workflow every adapter follows::

    validate settings (constructor) -> check_reachable() -> snapshot + environment checks
    -> create the MLflow run and tag it -> stage the snapshot -> start_job(JobSpec)
    -> RemoteProjectRun (status, wait, log streaming, cancel)

Everything that can fail on bad input fails before the run exists; anything failing after it
exists ends the run FAILED. The job itself runs our job runner
(:mod:`mlflow_workspace_plugin.compute.job_runner`), which uploads ``./outputs``, ``./logs``, the
log and the snapshot to the run and sets its final status, so runs end correctly even when the
submitting process has gone. An adapter implements the per-type primitives below.
"""

from __future__ import annotations

import enum
import logging
import shlex
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.projects.submitted_run import SubmittedRun
from mlflow.projects.utils import get_entry_point_command, get_or_create_run
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_BACKEND, MLFLOW_PROJECT_ENV

from mlflow_workspace_plugin.compute.source_package import build_source_zip
from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.projects.snapshot import collect_snapshot

_logger = logging.getLogger("mlflow.projects.azureml")
COMPUTE_TYPE_TAG = "azureml.compute.type"
RUNNER_MODULE = "mlflow_workspace_plugin.compute.job_runner"
# Only these reach the job: the run's identity and the tracking server's connection/auth settings.
_JOB_ENV_PREFIXES = ("MLFLOW_TRACKING_",)
_JOB_ENV_KEYS = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "PYTHONUNBUFFERED", "MLFLOW_WORKSPACE_LOG_SYNC_SECONDS")


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


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to start one project run as a job."""

    job_id: str
    run_id: str
    command: str                         # the entry point's shell command, parameters quoted
    source_zip: Path                     # the snapshot as a zip: the job's exact source
    env_vars: dict[str, str]             # run identity + tracking auth only
    requirements: list[str] | None       # pip requirements; None = the cluster's own environment
    metadata: dict[str, str] = field(default_factory=dict)


class ComputeAdapter(ABC):
    """Base class of compute adapters; one instance per (target, workspace)."""

    type_name: ClassVar[str]
    allowed_settings: ClassVar[dict[str, str]] = {}  # key -> description, for error messages

    def __init__(self, target, workspace) -> None:
        self.target = target
        self.workspace = workspace
        unknown = sorted(set(target.settings) - set(self.allowed_settings))
        if unknown:
            raise self.config_error(unknown[0], "is not recognised")
        self.validate_settings()

    # ------------------------------------------------------------ per-type primitives
    @abstractmethod
    def validate_settings(self) -> None:
        """Check ``self.target.settings``; raise :meth:`config_error` on a bad one."""

    @abstractmethod
    def check_reachable(self) -> None:
        """Fail fast (short timeout) with an error naming the address if the compute is not there."""

    @abstractmethod
    def describe(self) -> str:
        """Human-readable location, e.g. ``Ray cluster at http://127.0.0.1:8265``."""

    @abstractmethod
    def environment_kind(self) -> str:
        """Value of the ``mlflow.project.env`` tag (how the job's environment is built)."""

    @abstractmethod
    def requirements(self, project, work_dir: str) -> list[str] | None:
        """pip requirements for the job's environment, or None to use the cluster's own."""

    @abstractmethod
    def start_job(self, spec: JobSpec) -> None:
        """Upload ``spec.source_zip`` and start the job; raise if the compute rejects it."""

    @abstractmethod
    def status(self, job_id: str) -> JobInfo:
        """The job's current state (bounded by a request timeout)."""

    @abstractmethod
    def logs(self, job_id: str) -> str:
        """The job's driver log so far."""

    @abstractmethod
    def request_stop(self, job_id: str) -> None:
        """Ask the compute to stop the job; returns without waiting."""

    # ------------------------------------------------------------ shared behaviour
    def check_tracking_uri(self, tracking_uri: str) -> None:
        """Warn (or fail) if jobs on this compute cannot reach ``tracking_uri``."""

    def job_id_for(self, run_id: str) -> str:
        return f"mlflow-{run_id}"

    def job_tags(self, job_id: str) -> dict[str, str]:
        """Extra run tags naming the job (e.g. ``ray.job_id``)."""
        return {}

    def python_command(self) -> str:
        """Interpreter that runs the job runner (and, first on PATH, the entry point)."""
        return "python"

    def runner_entrypoint(self, command: str) -> str:
        """The job's shell command: our job runner wrapping the entry-point command."""
        return f"{shlex.quote(self.python_command())} -m {RUNNER_MODULE} -- {shlex.quote(command)}"

    def config_error(self, key: str, why: str) -> WorkspaceConfigError:
        where = f" in {self.workspace.config_path}" if getattr(self.workspace, "config_path", None) else ""
        allowed = "; ".join(f"{name} ({text})" for name, text in self.allowed_settings.items())
        return WorkspaceConfigError(
            f"Compute target {self.target.name!r} (type {self.target.type!r}){where}: setting "
            f"'compute.{self.target.name}.{key}' {why}. Allowed settings: {allowed}"
        )

    def stream_logs(self, job_id: str, sink: Callable[[str], None], offset: int = 0) -> tuple[int, str]:
        """Send the log text after ``offset`` to ``sink``; return the new offset and the full text."""
        text = self.logs(job_id)
        if len(text) > offset:
            sink(text[offset:])
        return max(offset, len(text)), text

    def cancel(self, job_id: str, timeout: float) -> JobInfo:
        """Stop the job and wait (at most ``timeout`` seconds) until it is terminal."""
        self.request_stop(job_id)
        deadline = time.monotonic() + timeout
        info = self.status(job_id)
        while not info.state.terminal and time.monotonic() < deadline:
            time.sleep(0.25)
            info = self.status(job_id)
        return info

    def fetch_outputs(self, run_id: str, destination: str | Path, tracking_uri: str | None = None) -> Path:
        """Download the run's ``outputs/`` artifacts (uploaded by the job) into ``destination``."""
        Path(destination).mkdir(parents=True, exist_ok=True)
        return Path(MlflowClient(tracking_uri).download_artifacts(run_id, "outputs", str(destination)))

    def submit(self, *, project_uri, project, work_dir, entry_point, params, version, config,
               tracking_uri, experiment_id) -> SubmittedRun:
        """Create the run, upload the snapshot and start the job; return its SubmittedRun."""
        from mlflow_workspace_plugin.compute.remote_run import RemoteProjectRun
        from mlflow_workspace_plugin.projects.backend import (
            BACKEND_NAME,
            COMPUTE_TAG,
            child_environment,
            invoked_from_mlflow_cli,
        )

        self.check_reachable()
        self.check_tracking_uri(tracking_uri)
        snapshot = collect_snapshot(work_dir)
        requirements = self.requirements(project, work_dir)
        command = get_entry_point_command(project, entry_point, params, config.storage_dir)[0]

        active_run = get_or_create_run(config.run_id, project_uri, experiment_id, work_dir, version,
                                       entry_point, params)
        run_id = active_run.info.run_id
        job_id = self.job_id_for(run_id)
        client = MlflowClient(tracking_uri)
        staging = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-{run_id[:8]}-"))
        try:
            tags = {MLFLOW_PROJECT_BACKEND: BACKEND_NAME, COMPUTE_TAG: self.target.name,
                    COMPUTE_TYPE_TAG: self.target.type, MLFLOW_PROJECT_ENV: self.environment_kind(),
                    **self.job_tags(job_id)}
            client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
            spec = JobSpec(
                job_id=job_id, run_id=run_id, command=command,
                source_zip=build_source_zip(snapshot, staging / "source.zip"),
                env_vars=job_environment(child_environment(tracking_uri, run_id, experiment_id)),
                requirements=requirements,
                metadata={"mlflow_run_id": run_id, "mlflow_experiment_id": str(experiment_id),
                          "compute_target": self.target.name},
            )
            _logger.info("=== Submitting run %s to compute target %r (%s) as job %s ===",
                         run_id, self.target.name, self.describe(), job_id)
            self.start_job(spec)
        except BaseException as exc:
            client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return RemoteProjectRun(
            adapter=self, job_id=job_id, run_id=run_id, tracking_uri=tracking_uri,
            echo=config.stream_output, raise_on_failure=config.synchronous or invoked_from_mlflow_cli(),
        )


def job_environment(env: dict[str, str]) -> dict[str, str]:
    """The part of a child environment a job gets: the run and the tracking connection/auth."""
    return {key: value for key, value in env.items()
            if key in _JOB_ENV_KEYS or key.startswith(_JOB_ENV_PREFIXES)}


def first_lines(text: Any, limit: int = 2000) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + " ..."
