"""``RemoteExecutor``: the shared workflow of compute types that run launches as remote jobs.

    check():  validate settings (constructor) -> check_reachable() -> check_tracking_uri()
              -> the environment can run remotely
    start():  zip the snapshot -> start_job(JobSpec) -> RemoteRun (status, wait, logs, cancel)

The job itself runs our job runner (:mod:`mlflow_workspace_plugin.compute.job_runner`), which
captures the run exactly as a local run is captured and sets its final status, so runs end
correctly even when the submitting process has gone. A subclass implements the per-type
primitives below.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import ExecutionException

from mlflow_workspace_plugin.capture.source_package import build_source_zip
from mlflow_workspace_plugin.compute.base import COMPUTE_TYPE_TAG, Executor, Launch
from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.handles import CANCEL_REASON_TAG
from mlflow_workspace_plugin.compute.job_api import JobInfo, JobSpec
from mlflow_workspace_plugin.compute.process_set import PROCESSES_ENV, SINGLE_PROCESS, encode
from mlflow_workspace_plugin.compute.remote_run import RemoteRun
from mlflow_workspace_plugin.compute.sealed_secrets import KEY_ENV, SEALED_FILE, seal, split_secrets

_logger = logging.getLogger("mlflow.projects.azureml")
RUNNER_MODULE = "mlflow_workspace_plugin.compute.job_runner"
REMOTE_STOP_TIMEOUT_SECONDS = 30.0


class RemoteExecutor(Executor):
    """Base class of compute types that run each launch as a job on a remote service."""

    is_remote = True

    # ------------------------------------------------------------ per-type primitives
    @property
    def address(self) -> str:
        """Where the compute's job API answers (a Ray cluster: its dashboard)."""
        raise NotImplementedError(f"compute type {self.type_name!r} has no address")

    @abstractmethod
    def check_reachable(self) -> None:
        """Fail fast (short timeout) with an error naming the address if the compute is not there."""

    @abstractmethod
    def environment_kind(self) -> str:
        """Value of the ``mlflow.project.env`` tag (how the job's environment is built)."""

    @abstractmethod
    def requirements(self, environment: EnvironmentSpec) -> list[str] | None:
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
        """Warn (or fail) if jobs on this compute cannot reach ``tracking_uri``; default: no check."""
        return None

    def check(self, environment: EnvironmentSpec, tracking_uri: str) -> None:
        if environment.remote_problem:
            raise ExecutionException(f"{environment.remote_problem} (compute target {self.target.name!r})")
        self.check_reachable()
        self.check_tracking_uri(tracking_uri)

    def job_id_for(self, run_id: str) -> str:
        return f"mlflow-{run_id}"

    def job_tags(self, job_id: str) -> dict[str, str]:
        """Extra run tags naming the job (e.g. ``ray.job_id``)."""
        return {}

    def run_tags(self, run_id: str, environment: EnvironmentSpec) -> dict[str, str]:
        return {**super().run_tags(run_id, environment), COMPUTE_TYPE_TAG: self.target.type,
                "mlflow.project.env": self.environment_kind(), **self.job_tags(self.job_id_for(run_id))}

    def credential_mode(self) -> str:
        """``forward`` (the submitter's credentials travel sealed) or ``cluster`` (none travel)."""
        return "forward"

    def credentials_for_job(self, env: dict[str, str]) -> tuple[dict[str, str], dict[str, bytes]]:
        """The job's env vars without secrets, and the files carrying them sealed (if forwarded)."""
        public, secrets = split_secrets(env)
        if not secrets or self.credential_mode() == "cluster":
            return public, {}
        key, blob = seal(secrets)
        return {**public, KEY_ENV: key}, {SEALED_FILE: blob}

    def python_command(self) -> str:
        """Interpreter that runs the job runner (and, first on PATH, the command)."""
        return "python"

    def runner_entrypoint(self, command: str) -> str:
        """The job's shell command: our job runner wrapping the run's command."""
        return f"{shlex.quote(self.python_command())} -m {RUNNER_MODULE} -- {shlex.quote(command)}"

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

    def cancel_run(self, client: MlflowClient, run: Run, reason: str) -> str:
        """Stop the run's job; the job's runner ends the run KILLED (else it is recorded KILLED here)."""
        run_id = run.info.run_id
        client.set_tag(run_id, CANCEL_REASON_TAG, reason)
        self.cancel(self.job_id_for(run_id), REMOTE_STOP_TIMEOUT_SECONDS)
        deadline = time.monotonic() + REMOTE_STOP_TIMEOUT_SECONDS
        status = client.get_run(run_id).info.status
        while status not in ("FINISHED", "FAILED", "KILLED") and time.monotonic() < deadline:
            time.sleep(0.25)
            status = client.get_run(run_id).info.status
        if status != "KILLED":  # the job's runner did not get to it (or the job ended otherwise meanwhile)
            client.set_terminated(run_id, "KILLED")
        return "KILLED"

    def fetch_outputs(self, run_id: str, destination: str | Path, tracking_uri: str | None = None) -> Path:
        """Download the run's ``outputs/`` artifacts (uploaded by the job) into ``destination``."""
        Path(destination).mkdir(parents=True, exist_ok=True)
        return Path(MlflowClient(tracking_uri).download_artifacts(run_id, "outputs", str(destination)))

    def start(self, launch: Launch) -> RemoteRun:
        job_id = self.job_id_for(launch.run_id)
        staging = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-{launch.run_id[:8]}-"))
        try:
            env_vars, sealed = self.credentials_for_job(job_environment(launch))
            spec = JobSpec(
                job_id=job_id, run_id=launch.run_id, command=launch.command,
                source_zip=build_source_zip(launch.snapshot, staging / "source.zip", extra=sealed),
                env_vars=env_vars,
                requirements=self.requirements(launch.environment),
                metadata={"mlflow_run_id": launch.run_id, "mlflow_experiment_id": str(launch.experiment_id),
                          "compute_target": self.target.name},
                resources=launch.resources,
            )
            _logger.info("=== Submitting run %s to compute target %r (%s) as job %s ===",
                         launch.run_id, self.target.name, self.describe(), job_id)
            self.start_job(spec)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return RemoteRun(adapter=self, job_id=job_id, launch=launch)


def job_environment(launch: Launch) -> dict[str, str]:
    """The job's variables: the run's, plus the processes to start when there is more than one."""
    env = dict(launch.run_env)
    if tuple(launch.processes) != SINGLE_PROCESS:
        env[PROCESSES_ENV] = encode(launch.processes)
    return env
