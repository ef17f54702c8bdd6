"""The ``azureml`` MLflow Projects backend (entry point ``mlflow.project_backend: azureml``).

A door: it turns MLflow's ``backend.run(...)`` call into one
:class:`~mlflow_workspace_plugin.execution.RunRequest` and hands it to the run lifecycle.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import shlex
import sys
import tempfile

from mlflow.exceptions import ExecutionException, MlflowException
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun
from mlflow.projects.utils import fetch_and_validate_project, load_project

from mlflow_workspace_plugin.execution import RunRequest, launch
from mlflow_workspace_plugin.execution.foreground import sigterm_as_interrupt, wait_or_cancel
from mlflow_workspace_plugin.execution.summary import print_final_line
from mlflow_workspace_plugin.mlflow_compat import is_tracking_uri_set
from mlflow_workspace_plugin.projects import default_store
from mlflow_workspace_plugin.projects.backend_config import BackendConfig, parse_backend_config
from mlflow_workspace_plugin.projects.environment import project_environment
from mlflow_workspace_plugin.projects.parameters import normalise_parameters, validate_parameters
from mlflow_workspace_plugin.projects.run_tags import project_run_params, project_run_tags
from mlflow_workspace_plugin.shell_quoting import UnsafeSlot, format_command
from mlflow_workspace_plugin.workspace import Workspace

_logger = logging.getLogger("mlflow.projects.azureml")
INTERRUPTED_EXIT_CODE = 130


class WorkspaceProjectBackend(AbstractBackend):
    """Runs MLflow projects on a compute target of the workspace (``local`` by default)."""

    def run(self, project_uri, entry_point, params, version, backend_config, tracking_uri,
            experiment_id) -> SubmittedRun:
        if not invoked_from_mlflow_cli():
            return launch(*self._request(project_uri, entry_point, params, version, backend_config,
                                         tracking_uri, experiment_id, from_cli=False))
        # From the CLI: SIGTERM acts like Ctrl-C from the start (no window leaves an orphan run);
        # the plugin's own errors become one line; the run is waited for and its exit code kept.
        with sigterm_as_interrupt():
            handle = None
            try:
                handle = launch(*self._request(project_uri, entry_point, params, version, backend_config,
                                               tracking_uri, experiment_id, from_cli=True))
                return _run_in_foreground(handle)
            except MlflowException as exc:
                if isinstance(exc, ExecutionException):
                    raise
                raise ExecutionException(exc.message) from None
            except KeyboardInterrupt:
                if handle is not None:  # between the start and the wait: cancel it like the wait does
                    handle.cancel()
                    print_final_line(handle)
                else:  # while starting: the lifecycle stopped it and recorded KILLED
                    _logger.error("=== Interrupted while starting: nothing is left running "
                                  "(a created run is recorded KILLED) ===")
                raise SystemExit(INTERRUPTED_EXIT_CODE) from None

    def _request(self, project_uri, entry_point, params, version, backend_config, tracking_uri,
                 experiment_id, from_cli: bool) -> tuple[RunRequest, Workspace]:
        config = parse_backend_config(backend_config)
        workspace = Workspace.from_config()
        if os.path.isdir(project_uri):
            ensure_mlproject(project_uri, entry_point)
        work_dir = fetch_and_validate_project(project_uri, version, entry_point, params)
        project = load_project(work_dir)
        params = normalise_parameters(params)
        validate_parameters(project, entry_point, params)
        warn_undeclared_parameters(project, entry_point, params)
        environment = project_environment(project, work_dir, config)
        command = entry_point_command(project, entry_point, params, config)

        experiment_name = None
        if not is_tracking_uri_set():  # runs go to the workspace; re-resolve the experiment there
            experiment_name = default_store.experiment_name(tracking_uri, experiment_id)
            default_store.remove_if_created_here(tracking_uri)
            tracking_uri, experiment_id = None, (None if experiment_name else "0")
        request = RunRequest(
            source_dir=work_dir, command=command, experiment_id=experiment_id,
            experiment_name=experiment_name, tracking_uri=tracking_uri, compute=config.compute or "local",
            params=project_run_params(project, entry_point, params),
            tags=project_run_tags(project_uri, work_dir, version, entry_point),
            existing_run_id=config.run_id, environment=environment, stream_output=config.stream_output,
            raise_on_failure=config.synchronous and not from_cli,
            instance_type=config.instance_type, resources=config.resources,
        )
        return request, workspace


def _run_in_foreground(handle) -> SubmittedRun:
    """``mlflow run`` never waits for plugin backends: stream to the end, print the outcome once,
    exit with the command's exit code (130 after Ctrl-C / SIGTERM, once the run is cancelled)."""
    try:
        finished = wait_or_cancel(handle)
    except KeyboardInterrupt:
        print_final_line(handle)
        raise SystemExit(INTERRUPTED_EXIT_CODE) from None
    print_final_line(handle)  # (the run's watcher has printed the error block once)
    if not finished:
        code = handle.exit_code
        raise SystemExit(code if isinstance(code, int) and 0 < code < 256 else 1)
    return handle


def entry_point_command(project, entry_point: str, params: dict[str, str], config: BackendConfig) -> str:
    """The entry point's shell command. Path parameters naming remote URIs are downloaded into
    ``STORAGE_DIR`` (MLflow's option) or a temporary folder, which is removed if nothing was
    downloaded into it."""
    entry = project.get_entry_point(entry_point)
    if config.storage_dir:
        return _quoted_command(entry, entry_point, params, config.storage_dir)
    storage = tempfile.mkdtemp(prefix="mlflow-ws-params-")
    try:
        return _quoted_command(entry, entry_point, params, storage)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(storage)  # removed unless a parameter was downloaded into it


def _quoted_command(entry, entry_point: str, params: dict[str, str], storage: str) -> str:
    """MLflow's ``EntryPoint.compute_command``, but each value escaped for the quoting context its
    ``{name}`` stands in (MLflow's ``shlex.quote`` is only right outside quotes: ``'{x}'`` injects)."""
    quoted, extra = entry.compute_parameters(params, storage)  # values shell-quoted by MLflow: undo that
    values = {key: shlex.split(value)[0] for key, value in quoted.items()}
    try:
        command = format_command(entry.command, values)
    except UnsafeSlot as error:
        raise ExecutionException(f"MLproject entry point {entry_point!r}: {error}") from None
    return " ".join([command, *[f"--{key} {value}" for key, value in extra.items()]])


def warn_undeclared_parameters(project, entry_point: str, params: dict[str, str]) -> None:
    """MLflow passes undeclared parameters on as ``--name value``; say so before the run starts."""
    entry = project.get_entry_point(entry_point)
    if entry is None or not entry.parameters:
        return
    declared = list(entry.parameters)
    for name in params:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; declared: {', '.join(declared)}"
            print(f"mlflow-workspace: parameter {name!r} is not declared by entry point {entry_point!r}: "
                  f"it is passed on as '--{name} <value>'{hint}", file=sys.stderr)


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


if sys.platform == "win32":  # pragma: no cover - process groups and bash are POSIX here
    _logger.warning("mlflow-workspace: the azureml backend's local runs need a POSIX shell (bash)")
