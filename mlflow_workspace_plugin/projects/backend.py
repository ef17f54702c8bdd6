"""The ``azureml`` MLflow Projects backend (entry point ``mlflow.project_backend: azureml``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import ExecutionException
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun
from mlflow.projects.utils import (
    fetch_and_validate_project,
    get_entry_point_command,
    get_or_create_run,
    get_run_env_vars,
    load_project,
)
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_BACKEND, MLFLOW_PROJECT_ENV

from mlflow_workspace_plugin.projects.backend_config import BackendConfig, parse_backend_config
from mlflow_workspace_plugin.projects.capture import log_sync_interval
from mlflow_workspace_plugin.projects.environment import choose_environment, prepare_environment
from mlflow_workspace_plugin.projects.local_run import LocalProjectRun
from mlflow_workspace_plugin.projects.parameters import normalise_parameters, validate_parameters
from mlflow_workspace_plugin.projects.snapshot import collect_snapshot
from mlflow_workspace_plugin.workspace import Workspace

_logger = logging.getLogger("mlflow.projects.azureml")
BACKEND_NAME = "azureml"
COMPUTE_TAG = "azureml.compute"


class WorkspaceProjectBackend(AbstractBackend):
    """Runs MLflow projects locally (with run capture) or on a workspace compute target."""

    def run(self, project_uri, entry_point, params, version, backend_config, tracking_uri, experiment_id) -> SubmittedRun:
        from_cli = invoked_from_mlflow_cli()
        # From the CLI, SIGTERM acts like Ctrl-C from the start, so no window leaves an orphan run
        previous = _interrupt_on_sigterm() if from_cli else None
        try:
            return self._run(project_uri, entry_point, params, version, backend_config, tracking_uri,
                             experiment_id, from_cli)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def _run(self, project_uri, entry_point, params, version, backend_config, tracking_uri, experiment_id,
             from_cli: bool) -> SubmittedRun:
        config = parse_backend_config(backend_config)
        if os.path.isdir(project_uri):
            ensure_mlproject(project_uri, entry_point)
        work_dir = fetch_and_validate_project(project_uri, version, entry_point, params)
        project = load_project(work_dir)
        params = normalise_parameters(params)
        validate_parameters(project, entry_point, params)
        log_sync_seconds = log_sync_interval()
        tracking_uri, experiment_id = resolve_workspace_tracking(tracking_uri, experiment_id)
        if config.is_remote:
            return self._run_remote(project_uri, project, work_dir, entry_point, params, version,
                                    config, tracking_uri, experiment_id, from_cli)
        env_kind = choose_environment(project, config)
        snapshot = collect_snapshot(work_dir)

        active_run = get_or_create_run(config.run_id, project_uri, experiment_id, work_dir, version, entry_point, params)
        run_id = active_run.info.run_id
        client = MlflowClient(tracking_uri)
        client.set_tag(run_id, MLFLOW_PROJECT_BACKEND, BACKEND_NAME)
        client.set_tag(run_id, MLFLOW_PROJECT_ENV, env_kind)
        client.set_tag(run_id, COMPUTE_TAG, "local")
        try:  # preparing the environment or starting the process can still fail: end the run FAILED
            prepared = prepare_environment(env_kind, project, work_dir, active_run, config)
            command = prepared.wrap(get_entry_point_command(project, entry_point, params, config.storage_dir)[0])
            submitted = LocalProjectRun(
                run_id=run_id,
                command=command,
                work_dir=work_dir,
                env=child_environment(tracking_uri, run_id, experiment_id),
                tracking_uri=tracking_uri,
                snapshot=snapshot,
                echo=config.stream_output,
                raise_on_failure=config.synchronous or from_cli,
                log_sync_seconds=log_sync_seconds,
            )
        except KeyboardInterrupt:  # Ctrl-C / SIGTERM (CLI) while preparing or starting
            client.set_terminated(run_id, "KILLED")
            raise
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        return wait_if_cli(submitted, from_cli)

    def _run_remote(self, project_uri, project, work_dir, entry_point, params, version, config: BackendConfig,
                    tracking_uri, experiment_id, from_cli) -> SubmittedRun:
        from mlflow_workspace_plugin.compute import adapter_class

        workspace = Workspace.from_config()
        target = workspace.get_compute_target(config.compute)
        adapter = adapter_class(target)(target, workspace)
        submitted = adapter.submit(
            project_uri=project_uri, project=project, work_dir=work_dir, entry_point=entry_point,
            params=params, version=version, config=config, tracking_uri=tracking_uri,
            experiment_id=experiment_id,
        )
        return wait_if_cli(submitted, from_cli)


def ensure_mlproject(work_dir: str, entry_point: str) -> None:
    """MLflow silently treats a folder without MLproject as a project with no entry points;
    say plainly what is missing unless the entry point is a script file."""
    if os.path.splitext(entry_point)[1] in (".py", ".sh"):
        return
    if not any(name.lower() == "mlproject" for name in os.listdir(work_dir)):
        raise ExecutionException(
            f"No MLproject file in {work_dir}: entry point {entry_point!r} cannot be resolved. "
            "Add an MLproject file, or pass a script as the entry point (e.g. -e train.py)."
        )


def invoked_from_mlflow_cli() -> bool:
    """True inside ``mlflow run``: the CLI never waits on plugin backends, so we must."""
    try:
        import click
    except ImportError:
        return False
    context = click.get_current_context(silent=True)
    return bool(context and context.command.name == "run" and
                getattr(context.command.callback, "__module__", "").startswith("mlflow.cli"))


def wait_if_cli(submitted: SubmittedRun, from_cli: bool) -> SubmittedRun:
    """From the CLI, stream to the end and fail with a non-zero exit (ExecutionException)."""
    if not from_cli:
        return submitted
    try:
        submitted.wait()  # raises ExecutionException with the error tail on failure
    except KeyboardInterrupt:
        _logger.error("=== Run (ID '%s') interrupted, cancelling run ===", submitted.run_id)
        submitted.cancel()
        raise
    return submitted


def _interrupt_on_sigterm():
    """In the CLI, treat SIGTERM like Ctrl-C so the run is cancelled, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def _raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, _raise_interrupt)


def resolve_workspace_tracking(tracking_uri: str, experiment_id: str) -> tuple[str, str]:
    """With no tracking URI set anywhere, runs go to the workspace of ``Workspace.from_config()``
    (the local workspace by default); the experiment MLflow resolved by name is re-resolved there."""
    if is_tracking_uri_set():
        return tracking_uri, str(experiment_id)
    workspace_uri = Workspace.from_config().get_mlflow_tracking_uri()
    mlflow.set_tracking_uri(workspace_uri)
    experiment_id = str(experiment_id)
    if experiment_id != "0":
        name = MlflowClient(tracking_uri).get_experiment(experiment_id).name
        target = MlflowClient(workspace_uri)
        existing = target.get_experiment_by_name(name)
        experiment_id = existing.experiment_id if existing else target.create_experiment(name)
    return workspace_uri, experiment_id


def child_environment(tracking_uri: str, run_id: str, experiment_id: str) -> dict[str, str]:
    """Environment of the entry-point process: the run, the tracking URI and its credentials
    (through the environment, never the command line), unbuffered output for live logs."""
    env = dict(os.environ)
    env.update(get_run_env_vars(run_id, experiment_id))
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PYTHONUNBUFFERED"] = "1"
    env.update(_auth_environment(tracking_uri))
    return env


def _auth_environment(tracking_uri: str) -> dict[str, str]:
    if not tracking_uri.startswith("azureml://"):
        return {}
    from mlflow_workspace_plugin import auth

    return auth.child_environment(tracking_uri)


if sys.platform == "win32":  # pragma: no cover - process groups and bash are POSIX here
    _logger.warning("mlflow-workspace: the azureml backend's local runs need a POSIX shell (bash)")
