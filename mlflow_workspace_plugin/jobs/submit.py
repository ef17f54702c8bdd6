"""``submit_job``: one command job -> one :class:`RunRequest` -> the one execution path (``launch``).

What a job becomes (everything is checked before any run exists):

- **name**: the job's ``name`` (or ``run_name``, or generated ``<adjective>_<noun>_<hex>``), unique in the
  workspace; the run's name and its tag ``azureml.job.name`` (jobs are found again by that tag);
- **code**: ``code`` (else the YAML file's folder) is the snapshot. A *local* job runs in a private copy
  of it (the snapshot's files, ignore rules applied), as a remote job does, so concurrent jobs (sweep
  trials) never share ``./outputs`` and your folder stays clean;
- **command**: placeholders rendered (shell-quoted): inputs materialised (:mod:`.inputs`; downloads into a
  private folder; for a remote job the data travels in its source package under ``.mlflow-job/``),
  ``${{outputs.x}}`` = ``<working dir>/outputs/x`` (uploaded as ``outputs/x/``),
  ``${{search_space.x}}`` from ``search_values``;
- **processes**: one per rank for distributed jobs (:mod:`.process_plan`);
- **environment**: :mod:`.job_environment`; ``environment_variables`` go to the command;
- **tracking**: experiment ``experiment_name``; tags: description (``mlflow.note.content``), display name,
  user ``tags``, inputs/outputs (``describe_io``), source and git; ``limits.timeout`` cancels the run
  (KILLED, ``azureml.cancel_reason``).
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import SourceType
from mlflow.exceptions import MlflowException
from mlflow.projects.utils import get_git_commit, get_git_repo_url
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_GIT_REPO_URL,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NOTE,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from mlflow_workspace_plugin.capture.names import JOB_DATA_DIR
from mlflow_workspace_plugin.capture.uploads import stage_snapshot
from mlflow_workspace_plugin.execution import Plan, RunRequest, WatchedRun, launch, plan
from mlflow_workspace_plugin.jobs import job_names
from mlflow_workspace_plugin.jobs.errors import JobSpecError
from mlflow_workspace_plugin.jobs.inputs import (
    describe_io,
    log_data_assets,
    materialize_input,
    pin_data_assets,
    prepare_outputs,
)
from mlflow_workspace_plugin.jobs.job_environment import job_environment
from mlflow_workspace_plugin.jobs.normalize import NAME_PATTERN, scalar_text
from mlflow_workspace_plugin.jobs.notices import warn_once
from mlflow_workspace_plugin.jobs.outputs import deliver_outputs, has_deliveries
from mlflow_workspace_plugin.jobs.placeholders import render_command
from mlflow_workspace_plugin.jobs.process_plan import check_launchable, job_processes
from mlflow_workspace_plugin.jobs.registry import explicit_tracking_uri, find_job, planned_uri, store_exists
from mlflow_workspace_plugin.jobs.spec import CommandJob, DataInput, LiteralInput
from mlflow_workspace_plugin.mlflow_compat import current_user
from mlflow_workspace_plugin.store.datastores import workspace_datastores
from mlflow_workspace_plugin.workspace import Workspace

_logger = logging.getLogger("mlflow.projects.azureml")


@dataclass
class PreparedJob:
    """A job turned into a :class:`RunRequest`, with the private folder it needs until the run ends."""

    name: str
    request: RunRequest
    plan: Plan | None = None
    private_dir: Path | None = None
    remote: bool = False
    notes: list[str] = field(default_factory=list)
    job: CommandJob | None = None  # as run: data asset inputs pinned to their exact versions
    datastores: dict = field(default_factory=dict)
    outputs_dir: Path | None = None  # a local run's ./outputs (datastore / model outputs are read there)
    _finished: threading.Lock = field(default_factory=threading.Lock)
    _delivered: bool = False

    def cleanup(self) -> None:
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)

    def finish(self, handle: WatchedRun) -> None:
        """Once the run has ended: deliver its outputs (datastore uploads, model registrations) if it
        FINISHED. Runs once, whichever of the watcher thread and the exit hook gets here first."""
        with self._finished:
            if self._delivered or self.job is None or not has_deliveries(self.job):
                self._delivered = True
                return
            self._delivered = True
            if handle.get_status() == "FINISHED":
                deliver_outputs(self.job, handle.run_id, handle.tracking_uri, self.datastores, self.outputs_dir)


def submit_job(
    job: CommandJob,
    *,
    stream: bool = False,
    workspace: Workspace | None = None,
    parent_run_id: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
    search_values: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    env_manager: str | None = None,
) -> WatchedRun:
    """Start ``job`` (from :func:`load_job`) and return its run handle (``run_id``, ``wait()``,
    ``get_status()``, ``cancel()``, ...; ``job_name`` holds the job's name).

    ``stream`` echoes the job's console here. For sweeps: ``parent_run_id`` (tag ``mlflow.parentRunId``),
    ``search_values`` fill ``${{search_space.<name>}}`` and are logged as params, ``extra_params`` are
    logged too (they win on equal keys), ``run_name`` names the run (and the job, when the job has no
    ``name``). ``env_manager``: see :mod:`.job_environment`. Local jobs end with the Python process that
    started them (as MLflow's local backend runs do); remote ones keep going.
    """
    workspace = workspace or Workspace.from_config()
    prepared = prepare_job(job, workspace=workspace, stream=stream, parent_run_id=parent_run_id,
                           extra_params=extra_params, search_values=search_values, run_name=run_name,
                           env_manager=env_manager)
    try:
        handle = launch(prepared.request, workspace, plan=prepared.plan)
    except BaseException:
        prepared.cleanup()
        raise
    try:
        log_data_assets(prepared.job, handle.run_id, handle.tracking_uri)
    except MlflowException as exc:  # the tags already name the exact versions
        _logger.warning("mlflow-workspace: could not record the data assets of job %s: %s", prepared.name, exc)
    return handle


def prepare_job(
    job: CommandJob,
    *,
    workspace: Workspace,
    stream: bool = False,
    parent_run_id: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
    search_values: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    env_manager: str | None = None,
) -> PreparedJob:
    """Check ``job`` against the workspace and build its :class:`RunRequest` (nothing is tracked yet)."""
    code = job.code or job.source_file.parent
    planned = plan(job.compute, code, workspace)  # the target and the snapshot limits, before anything is copied
    remote = planned.is_remote
    name = job_name_for(job, run_name)
    tracking_uri = planned_uri(workspace)
    check_unique(job, name, tracking_uri)
    job = pin_data_assets(job, tracking_uri)
    prepared = PreparedJob(name=name, request=None, remote=remote, job=job,  # type: ignore[arg-type]
                           datastores=workspace_datastores(workspace))

    def private_dir() -> Path:
        if prepared.private_dir is None:
            prepared.private_dir = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-job-{name[:40]}-"))
        return prepared.private_dir

    try:
        environment, environment_text = job_environment(
            job, remote=remote, target=job.compute, env_manager=env_manager, private_dir=private_dir,
            warn=_warn if parent_run_id is None else lambda text: warn_once(text, parent_run_id),  # once a sweep
            workspace=workspace, tracking_uri=lambda: tracking_uri)
        mpirun = check_launchable(job)
        travelling = remote and any(needs_data_on_cluster(spec) for spec in job.inputs.values())
        if remote and not travelling:
            source_dir = code
        else:
            source_dir = stage_snapshot(planned.snapshot, private_dir() / "code")
            if not travelling:  # an exact copy; travelling data joins it, so launch collects it again
                planned = planned.moved_to(source_dir)
        prepared.plan = planned
        if travelling:  # the data goes to the cluster inside the job's source package
            values = remote_input_values(job, Path(source_dir), tracking_uri, prepared.datastores)
        else:
            values = input_values(job, private_dir, tracking_uri, prepared.datastores)
        values.update(output_values(job, source_dir, remote))
        prepared.outputs_dir = None if remote else Path(source_dir) / "outputs"
        values.update({f"search_space.{key}": scalar_text(value) for key, value in (search_values or {}).items()})
        command = render_command(job.command, values)
        if remote and job.outputs:  # the job works in a copy on the cluster: make the folders there
            folders = " ".join(shlex.quote(f"outputs/{name}") for name in job.outputs)
            command = f"mkdir -p {folders} && {command}"
        command, processes = job_processes(job, command, mpirun)
        params = {key: scalar_text(value) for key, value in (search_values or {}).items()}
        params.update({key: str(value) for key, value in (extra_params or {}).items()})
        prepared.request = RunRequest(
            source_dir=Path(source_dir), command=command, experiment_name=job.experiment_name,
            tracking_uri=explicit_tracking_uri(), compute=job.compute, run_name=run_name or name,
            params=params, tags=job_tags(job, name, environment_text, parent_run_id, code),
            env_vars=dict(job.environment_variables), environment=environment, stream_output=stream,
            timeout_seconds=float(job.timeout) if job.timeout else None, processes=processes,
            name=name, private_dir=prepared.private_dir, on_end=prepared.finish,
            instance_type=job.instance_type, resources=job.resources, instances=job.instance_count,
        )
    except BaseException:
        prepared.cleanup()
        raise
    return prepared


def job_name_for(job: CommandJob, run_name: str | None) -> str:
    """The job's name: ``name``, else ``run_name`` when it is a valid job name, else a generated one."""
    if job.name:
        return job.name
    if run_name and NAME_PATTERN.fullmatch(run_name):
        return run_name
    return job_names.generate_job_name()


def check_unique(job: CommandJob, name: str, tracking_uri: str) -> None:
    """A job name is unique in the workspace: an existing job with ``name`` is an error."""
    if not store_exists(tracking_uri):
        return
    existing = find_job(MlflowClient(tracking_uri), name)
    if existing is not None:
        raise JobSpecError.at(
            job.source_file, "name",
            f"a job named {name!r} already exists in the workspace (run {existing.info.run_id}); job names "
            "are unique: give another name (--name) or leave it out to get a generated one")


def input_values(job: CommandJob, private_dir: Callable[[], Path], tracking_uri: str,
                 datastores: Mapping | None = None) -> dict[str, str | None]:
    """``inputs.<name>`` -> the value the command gets (None for an optional input left out)."""
    values: dict[str, str | None] = {}
    for name, spec in job.inputs.items():
        if not spec.present:
            values[f"inputs.{name}"] = None
            continue
        folder = private_dir() if needs_private_copy(spec) else job.source_file.parent  # (not written to)
        values[f"inputs.{name}"] = materialize_input(spec, folder, tracking_uri, source_file=job.source_file,
                                                     datastores=datastores)
    return values


def needs_data_on_cluster(spec: LiteralInput | DataInput) -> bool:
    """Whether a remote job needs ``spec``'s data sent along (everything but literals and direct URIs)."""
    return isinstance(spec, DataInput) and spec.present and spec.mode != "direct"


def remote_input_values(job: CommandJob, staged_code: Path, tracking_uri: str,
                        datastores: Mapping | None = None) -> dict[str, str | None]:
    """For a remote job: data inputs are copied / downloaded into the staged source under
    ``.mlflow-job/inputs/<name>`` (so they travel in the job's package, within the snapshot limits)
    and the command gets their path relative to the job's working folder."""
    data_root = staged_code / JOB_DATA_DIR
    values: dict[str, str | None] = {}
    for name, spec in job.inputs.items():
        if not needs_data_on_cluster(spec):
            values[f"inputs.{name}"] = (materialize_input(spec, data_root, tracking_uri, source_file=job.source_file,
                                                          datastores=datastores)
                                        if spec.present else None)
            continue
        copy = spec.model_copy(update={"mode": "download"}) if spec.mode != "download" else spec
        local = Path(materialize_input(copy, data_root, tracking_uri, source_file=job.source_file,
                                       datastores=datastores, contained=True))  # links out of the data never travel
        values[f"inputs.{name}"] = local.relative_to(staged_code).as_posix()
    if data_root.exists():  # the staged folder already is the snapshot: no ignore rule may drop the data
        (staged_code / ".amlignore").write_text("# staged by mlflow-workspace: already the job's snapshot\n",
                                                encoding="utf-8")
    return values


def needs_private_copy(spec: LiteralInput | DataInput) -> bool:
    """Whether materialising ``spec`` writes into the job's private folder (copies and downloads)."""
    if isinstance(spec, LiteralInput) or spec.mode == "direct":
        return False
    return not (spec.scheme == "local" and spec.mode == "ro_mount")


def output_values(job: CommandJob, source_dir: Path, remote: bool) -> dict[str, str]:
    """``outputs.<name>`` -> the folder the command writes to: ``<working dir>/outputs/<name>``."""
    if remote:  # relative to the job's working folder on the cluster
        return {f"outputs.{name}": f"outputs/{name}" for name in job.outputs}
    return prepare_outputs(job, Path(source_dir) / "outputs")


def job_tags(job: CommandJob, name: str, environment_text: str, parent_run_id: str | None,
             code: Path) -> dict[str, str]:
    """The run's tags: job identity, source, description, user tags, inputs/outputs."""
    tags = {
        MLFLOW_USER: current_user(),
        MLFLOW_SOURCE_NAME: str(job.source_file),
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.JOB),
        job_names.JOB_NAME_TAG: name,
        job_names.JOB_TYPE_TAG: "command",
        job_names.JOB_FILE_TAG: str(job.source_file),
        job_names.COMMAND_TAG: job.command,
        job_names.ENVIRONMENT_TAG: environment_text,
    }
    commit = get_git_commit(str(code))
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
        repo = get_git_repo_url(str(code))
        if repo:
            tags[MLFLOW_GIT_REPO_URL] = repo
    if job.distribution is not None or job.instance_count > 1:
        shape = job.distribution.model_dump(mode="json") if job.distribution else {}
        tags[job_names.DISTRIBUTION_TAG] = json.dumps({**shape, "instance_count": job.instance_count})
    if job.display_name:
        tags[job_names.DISPLAY_NAME_TAG] = job.display_name
    if job.description:
        tags[MLFLOW_RUN_NOTE] = job.description
    if parent_run_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    tags.update(job.tags)
    tags.update(describe_io(job))
    return {key: value[:MAX_TAG_VAL_LENGTH] for key, value in tags.items()}


def _warn(message: str) -> None:
    _logger.warning("mlflow-workspace: %s", message)
