"""The pipeline controller: a parent run (the pipeline job) whose steps are ordinary job runs.

:func:`run_pipeline` checks every step (its command job is built once with stand-in upstream outputs, and
its compute target is looked up) before the parent run exists, then a controller thread

- starts each step as soon as the steps it reads from have finished, independent steps in parallel (at
  most ``MLFLOW_WORKSPACE_PIPELINE_MAX_PARALLEL`` at once, default: the CPU count), each through
  :func:`~mlflow_workspace_plugin.jobs.submit.submit_job` (command steps) or
  :func:`~mlflow_workspace_plugin.jobs.sweep.controller.run_sweep` (sweep steps) as a child run
  (``mlflow.parentRunId``, run name ``<pipeline>/<step>``) on the step's compute;
- passes data along through the workspace's artifact store: a step's output ``o`` is its run's
  ``outputs/o/``, and a step bound to it gets ``runs:/<run>/outputs/o`` (downloaded into its private
  folder, or sent with a Ray job), so steps need no shared disk; a sweep step's outputs are its best
  trial's;
- reuses a deterministic step identical to an earlier successful one (:mod:`.reuse`) unless
  ``settings.force_rerun``: the step's run ends at once, tagged with the run it reused;
- on a failed step with ``continue_on_step_failure: false`` (the default) stops the running steps and
  starts no more; with ``true`` runs every step that does not depend on the failed one;
- watches the parent for ``azureml.cancel_reason`` (``mlflow-workspace job cancel``) and cancels then;
- ends the parent FINISHED (Completed), FAILED or KILLED (Canceled), with the graph and every step's state
  in ``azureml.pipeline.steps`` and the pipeline's log in ``azureml-logs/pipeline.txt``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mlflow_workspace_plugin.capture.live_logs import log_sync_interval
from mlflow_workspace_plugin.env_settings import env_number
from mlflow_workspace_plugin.execution import CANCEL_REASON_TAG, control, live_runs
from mlflow_workspace_plugin.execution.plan import check_target
from mlflow_workspace_plugin.execution.tracking import create_training_experiment
from mlflow_workspace_plugin.jobs.errors import JobSpecError
from mlflow_workspace_plugin.jobs.job_names import (
    DISPLAY_NAME_TAG,
    JOB_FILE_TAG,
    JOB_NAME_TAG,
    JOB_TYPE_TAG,
    generate_job_name,
)
from mlflow_workspace_plugin.jobs.pipeline.reuse import REUSE_KEY_TAG, REUSED_RUN_TAG, find_reusable, step_key
from mlflow_workspace_plugin.jobs.pipeline.spec import PipelineSpec, Step, Upstream
from mlflow_workspace_plugin.jobs.registry import find_job, jobs_client
from mlflow_workspace_plugin.jobs.states import job_state
from mlflow_workspace_plugin.jobs.sweep.controller_log import ControllerLog
from mlflow_workspace_plugin.workspace import Workspace

_logger = logging.getLogger("mlflow.projects.azureml")

MAX_PARALLEL_ENV = "MLFLOW_WORKSPACE_PIPELINE_MAX_PARALLEL"
POLL_SECONDS = 0.5
CANCEL_WAIT_SECONDS = 90.0
LOG_FILE = "pipeline.txt"
STEP_TAG = "azureml.pipeline.step"
PIPELINE_RUN_TAG = "azureml.pipeline.parent_run_id"
STEPS_TAG = "azureml.pipeline.steps"
OUTPUTS_TAG = "azureml.pipeline.outputs"
PROBLEM_TAG = "azureml.pipeline.problem"
GRAPH_ARTIFACT = "pipeline/graph.json"
PARENT_TAG = MLFLOW_PARENT_RUN_ID  # MLflow's own tag name
ENDED = ("FINISHED", "FAILED", "KILLED")
_STAND_IN_RUN = "0" * 32  # validation only: the upstream run a step will read from is not known yet


@dataclass
class StepRun:
    """What the controller knows of one step."""

    name: str
    status: str = "NOT_STARTED"  # NOT_STARTED -> RUNNING -> FINISHED / FAILED / KILLED
    run_id: str | None = None
    outputs_run_id: str | None = None  # the run holding its outputs (the reused / best-trial run)
    reused_from: str | None = None
    key: str | None = None
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    handle: Any = field(default=None, repr=False)

    def record(self) -> dict:
        return {"state": job_state(self.status) if self.status != "NOT_STARTED" else "NotStarted",
                "run_id": self.run_id, "reused_run_id": self.reused_from, "error": self.error}


class PipelineHandle:
    """A running pipeline: ``run_id``, ``name``, ``steps``, ``wait()``, ``get_status()``, ``cancel()``."""

    def __init__(self, controller: _Controller) -> None:
        self._controller = controller

    run_id = property(lambda self: self._controller.parent_run_id)
    name = property(lambda self: self._controller.name)
    tracking_uri = property(lambda self: self._controller.client.tracking_uri)
    spec = property(lambda self: self._controller.spec)

    @property
    def steps(self) -> dict[str, StepRun]:
        with self._controller.lock:
            return dict(self._controller.steps)

    def wait(self) -> bool:
        """Wait for the end; True when the pipeline completed."""
        self._controller.ended.wait()
        return self._controller.final_status == "FINISHED"

    def wait_for(self, timeout: float) -> bool:
        return self._controller.ended.wait(timeout)

    def get_status(self) -> str:
        return self._controller.final_status

    def cancel(self) -> None:
        self.cancel_because("canceled through the pipeline's handle")
        self.wait()

    def cancel_because(self, reason: str) -> None:
        self._controller.request_cancel(reason)
        self._controller.ended.wait()


def run_pipeline(spec: PipelineSpec, *, workspace: Workspace | None = None, stream: bool = False,
                 name: str | None = None, env_manager: str | None = None) -> PipelineHandle:
    """Start ``spec``; returns at once with a :class:`PipelineHandle` (see the module docstring)."""
    workspace = workspace or Workspace.from_config()
    for warning in spec.warnings:
        _logger.warning("mlflow-workspace: %s", warning)
    pipeline_name = name or spec.name or generate_job_name()
    for step in spec.steps.values():
        check_step(spec, step, workspace, pipeline_name)
    client = jobs_client(workspace)
    if find_job(client, pipeline_name) is not None:
        raise MlflowException(f"A job named {pipeline_name!r} already exists in the workspace at "
                              f"{client.tracking_uri}; job names are unique: choose another name (--name)",
                              error_code=INVALID_PARAMETER_VALUE)
    existing = client.get_experiment_by_name(spec.experiment_name)
    experiment_id = existing.experiment_id if existing else create_training_experiment(client, spec.experiment_name)
    tags = {**spec.tags, JOB_NAME_TAG: pipeline_name, JOB_TYPE_TAG: "pipeline", JOB_FILE_TAG: str(spec.source_file),
            "azureml.compute": spec.default_compute or "local"}
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    if spec.display_name:
        tags[DISPLAY_NAME_TAG] = spec.display_name
    parent = client.create_run(experiment_id, tags=tags, run_name=pipeline_name)
    try:
        control.mark_launcher(client, parent.info.run_id)  # host and launcher: `job cancel` finds this process
        controller = _Controller(spec, pipeline_name, client, parent.info.run_id, workspace, stream, env_manager)
    except BaseException:
        client.set_terminated(parent.info.run_id, "FAILED")
        raise
    controller.start()
    return PipelineHandle(controller)


def check_step(spec: PipelineSpec, step: Step, workspace: Workspace, pipeline_name: str) -> None:
    """Build the step's job once (upstream outputs stood in for) and look up its compute: every mistake
    a step's job can have is found before the pipeline starts."""
    stand_ins = {name: _STAND_IN_RUN for name in spec.steps}
    if step.kind == "sweep":
        sweep = _sweep_spec(spec, step, stand_ins, pipeline_name, parent_run_id=_STAND_IN_RUN)
        try:
            sweep.trial_job()
        except JobSpecError as error:
            raise JobSpecError(error.message, source_file=spec.shown, field=f"jobs.{step.name}") from None
        check_target(sweep.compute, workspace, reachable=False)
    else:
        job = step_command_job(spec, step, stand_ins, pipeline_name, parent_run_id=_STAND_IN_RUN)
        check_target(job.compute, workspace, reachable=False)


def step_command_job(spec: PipelineSpec, step: Step, output_runs: dict[str, str], pipeline_name: str,
                     parent_run_id: str):
    """The command job of ``step``, its upstream outputs read from ``output_runs[<step>]``."""
    from mlflow_workspace_plugin.jobs.loader import command_job_from_mapping

    mapping = _job_mapping(spec, step, output_runs, parent_run_id)
    source = _component_file(spec, step)
    try:
        return command_job_from_mapping(mapping, source, shown_file=f"{spec.shown}: jobs.{step.name}",
                                        name=step_job_name(pipeline_name, step.name))
    except JobSpecError as error:
        raise JobSpecError(error.message, source_file=spec.shown, field=f"jobs.{step.name}") from None


def step_job_name(pipeline_name: str, step_name: str) -> str:
    """A step's job name: ``<pipeline>_<step>`` (job names are unique in the workspace)."""
    return f"{pipeline_name}_{step_name}"[:255]


def _job_mapping(spec: PipelineSpec, step: Step, output_runs: dict[str, str], parent_run_id: str,
                 skip_inputs: set[str] | None = None) -> dict:
    values = {}
    for name, value in step.values.items():
        if skip_inputs and name in skip_inputs:
            continue
        if isinstance(value, Upstream):
            data = {"type": "uri_folder", "path": f"runs:/{output_runs[value.step]}/outputs/{value.output}"}
            if value.mode:
                data["mode"] = value.mode
            values[name] = data
        elif isinstance(value, dict):
            data = {k: v for k, v in value.items() if k in ("type", "path", "mode", "optional", "description")}
            if data.get("type") not in ("uri_file", "uri_folder"):
                data["type"] = "uri_folder"  # mltable and model folders are folders to the command
            values[name] = data
        else:
            values[name] = value
    outputs = {name: {"type": "uri_folder", **({"mode": out["mode"]} if out.get("mode") else {})}
               for name, out in step.outputs.items()}
    mapping = step.component.step_job(values, outputs, step.job_fields)
    mapping["experiment_name"] = spec.experiment_name
    mapping["tags"] = {**step.tags, STEP_TAG: step.name, PIPELINE_RUN_TAG: parent_run_id}
    if step.display_name:
        mapping["display_name"] = step.display_name
    return mapping


def _component_file(spec: PipelineSpec, step: Step) -> Path:
    shown = Path(step.component.shown)
    return shown if shown.is_absolute() and shown.is_file() else spec.source_file


def _sweep_spec(spec: PipelineSpec, step: Step, output_runs: dict[str, str], pipeline_name: str, parent_run_id: str):
    from mlflow_workspace_plugin.jobs.sweep.spec import sweep_from_mapping

    swept = set(step.sweep.get("search_space") or {})
    trial = _job_mapping(spec, step, output_runs, parent_run_id, skip_inputs=swept)
    command = trial["command"]
    for name in swept:  # the trial component's own inputs are what the sweep varies
        command = command.replace(f"${{{{inputs.{name}}}}}", f"${{{{search_space.{name}}}}}")
    trial["command"] = command
    compute = trial.pop("compute", None)
    tags = trial.pop("tags")
    raw = {"type": "sweep", "trial": trial, **step.sweep, "experiment_name": spec.experiment_name,
           "tags": {**tags, PARENT_TAG: parent_run_id}}
    if compute is not None:
        raw["compute"] = compute
    try:
        return sweep_from_mapping(raw, _component_file(spec, step), shown_file=f"{spec.shown}: jobs.{step.name}")
    except JobSpecError as error:
        raise JobSpecError(error.message, source_file=spec.shown, field=f"jobs.{step.name}") from None


def max_parallel() -> int:
    return int(env_number(MAX_PARALLEL_ENV, float(os.cpu_count() or 2), allow_zero=False))


class _Controller:
    """The controller thread of one pipeline (see the module docstring)."""

    def __init__(self, spec: PipelineSpec, name: str, client: MlflowClient, parent_run_id: str,
                 workspace: Workspace, stream: bool, env_manager: str | None) -> None:
        self.spec, self.name, self.client, self.parent_run_id = spec, name, client, parent_run_id
        self.workspace, self.env_manager = workspace, env_manager
        self.order = spec.order()
        self.steps = {step: StepRun(step) for step in self.order}
        self.keys: dict[str, str | None] = {}
        self.lock = threading.Lock()
        self.ended = threading.Event()
        self.final_status = "RUNNING"
        self.parallel = max_parallel()
        self._wake = threading.Event()
        self._cancel_reason: str | None = None
        self._failure: str | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-pipeline-{parent_run_id[:8]}-"))
        self.log = ControllerLog(client, parent_run_id, self._scratch, echo=stream, upload_every=log_sync_interval(),
                                 file_name=LOG_FILE)
        self._thread = threading.Thread(target=self._run, name=f"mlflow-ws-pipeline-{parent_run_id[:8]}", daemon=True)

    def start(self) -> None:
        live_runs.track_controller(self, "the process that ran the pipeline exited")  # stopped first at exit
        graph = self._scratch / "graph.json"
        graph.write_text(json.dumps(self.spec.graph(), indent=2, default=str))
        self.client.log_artifact(self.parent_run_id, str(graph), "pipeline")
        self._thread.start()

    def wait_ended(self, timeout: float) -> bool:
        return self.ended.wait(timeout)

    def request_cancel(self, reason: str) -> None:
        with self.lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason
        self._wake.set()

    # ---------------------------------------------------------------- the loop
    def _run(self) -> None:
        error: BaseException | None = None
        begun = time.monotonic()
        try:
            self.log.controller(f"Pipeline {self.name}: {len(self.order)} step(s) in order {', '.join(self.order)}; "
                                f"at most {self.parallel} at once")
            next_watch = 0.0
            while True:
                self._wake.clear()
                self._collect_ended()
                if self._cancel_reason is not None or (self._failure and not self.spec.continue_on_step_failure):
                    break
                if time.monotonic() >= next_watch:
                    self._watch_parent()
                    next_watch = time.monotonic() + 1.0
                self._schedule()
                if not self._running() and not self._ready():
                    break
                self.log.upload_if_due()
                self._wake.wait(POLL_SECONDS)
        except BaseException as exc:
            error = exc
            _logger.exception("mlflow-workspace: pipeline %s failed", self.name)
        finally:
            try:
                self._finish(error, time.monotonic() - begun)
            finally:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self.ended.set()
                live_runs.untrack_controller(self)

    def _watch_parent(self) -> None:
        try:
            reason = self.client.get_run(self.parent_run_id).data.tags.get(CANCEL_REASON_TAG)
        except Exception as error:
            _logger.debug("parent run %s not readable: %s", self.parent_run_id, error)
            return
        if reason:
            self.request_cancel(reason)

    def _running(self) -> list[StepRun]:
        with self.lock:
            return [s for s in self.steps.values() if s.status == "RUNNING"]

    def _ready(self) -> list[str]:
        ready = []
        with self.lock:
            for name in self.order:
                state = self.steps[name]
                if state.status != "NOT_STARTED":
                    continue
                if all(self.steps[up].status == "FINISHED" for up in self.spec.steps[name].upstream):
                    ready.append(name)
        return ready

    def _schedule(self) -> None:
        for name in self._ready():
            if len(self._running()) >= self.parallel or self._cancel_reason is not None:
                return
            self._start(name)

    def _start(self, name: str) -> None:
        step = self.spec.steps[name]
        state = self.steps[name]
        output_runs = {up: self.steps[up].outputs_run_id for up in step.upstream}
        state.key = step_key(step, self.keys)
        self.keys[name] = state.key
        state.started_at = time.time()
        if state.key and not self.spec.force_rerun:
            earlier = find_reusable(self.client, state.key)
            if earlier is not None:
                self._reuse(step, state, earlier)
                return
        try:
            if step.kind == "sweep":
                from mlflow_workspace_plugin.jobs.sweep.controller import run_sweep

                sweep = _sweep_spec(self.spec, step, output_runs, self.name, self.parent_run_id)
                state.handle = run_sweep(sweep, workspace=self.workspace,
                                         name=step_job_name(self.name, name), env_manager=self.env_manager)
            else:
                from mlflow_workspace_plugin.jobs.submit import submit_job

                job = step_command_job(self.spec, step, output_runs, self.name, self.parent_run_id)
                state.handle = submit_job(job, workspace=self.workspace, parent_run_id=self.parent_run_id,
                                          run_name=f"{self.name}/{name}", env_manager=self.env_manager)
        except Exception as error:
            state.status, state.error, state.ended_at = "FAILED", f"could not start: {error}", time.time()
            self._failure = self._failure or f"step {name} could not start: {error}"
            self.log.scheduler(f"Step {name} could not start: {error}", level="ERROR")
            return
        state.run_id = state.handle.run_id
        state.status = "RUNNING"
        self.log.scheduler(f"Step {name} started as run {state.run_id}")

    def _reuse(self, step: Step, state: StepRun, earlier) -> None:
        original = earlier.data.tags.get(REUSED_RUN_TAG) or earlier.info.run_id
        experiment = self.client.get_run(self.parent_run_id).info.experiment_id
        tags = {**step.tags, PARENT_TAG: self.parent_run_id, STEP_TAG: step.name, PIPELINE_RUN_TAG: self.parent_run_id,
                REUSED_RUN_TAG: original, REUSE_KEY_TAG: state.key, JOB_TYPE_TAG: "command",
                JOB_NAME_TAG: step_job_name(self.name, step.name), "mlflow.note.content":
                f"Reused the outputs of run {original} (identical step; settings.force_rerun: true runs it again)"}
        run = self.client.create_run(experiment, tags=tags, run_name=f"{self.name}/{step.name}")
        self.client.set_terminated(run.info.run_id, "FINISHED")
        state.run_id, state.outputs_run_id, state.reused_from = run.info.run_id, original, original
        state.status, state.ended_at = "FINISHED", time.time()
        self.log.scheduler(f"Step {step.name} reused run {original} (identical definition, code and inputs)")

    def _collect_ended(self) -> None:
        for state in self._running():
            if not state.handle.wait_for(0):
                continue
            step = self.spec.steps[state.name]
            status = state.handle.get_status()
            if status not in ENDED:
                status = self.client.get_run(state.run_id).info.status
            state.status, state.ended_at = status, time.time()
            if step.kind == "sweep":
                best = state.handle.best
                state.outputs_run_id = best.trial_id if best is not None else None
                if status == "FINISHED" and best is None:
                    state.status, state.error = "FAILED", "the sweep step has no best trial to take outputs from"
            else:
                state.outputs_run_id = state.run_id
            if state.status == "FINISHED" and state.key:
                try:
                    self.client.set_tag(state.run_id, REUSE_KEY_TAG, state.key)
                except Exception as error:
                    _logger.warning("mlflow-workspace: step %s: reuse key not stored: %s", state.name, error)
            self.log.scheduler(f"Step {state.name} (run {state.run_id}) {job_state(state.status)} after "
                               f"{state.ended_at - state.started_at:.1f} s")
            if state.status != "FINISHED" and self._failure is None:
                self._failure = f"step {state.name} {job_state(state.status).lower()} (run {state.run_id})"

    def _finish(self, error: BaseException | None, elapsed: float) -> None:
        stopping = self._cancel_reason or (f"{self._failure}; continue_on_step_failure is false"
                                           if self._failure else None)
        running = self._running()
        if running:
            self.log.controller(f"Stopping {len(running)} running step(s): {stopping or error}")
            for state in running:
                try:
                    reason_of = getattr(state.handle, "cancel_because", None)
                    (reason_of(f"pipeline stopped: {stopping}") if reason_of else state.handle.cancel())
                except Exception as exc:
                    _logger.warning("mlflow-workspace: step %s not cancelled: %s", state.name, exc)
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            for state in running:
                state.handle.wait_for(max(0.0, deadline - time.monotonic()))
            self._collect_ended()
        status = self._final_status(error)
        with self.lock:
            steps = {name: state.record() for name, state in self.steps.items()}
        reused = sum(1 for state in self.steps.values() if state.reused_from)
        tags = {STEPS_TAG: json.dumps(steps)[:7900], OUTPUTS_TAG: json.dumps(self._pipeline_outputs())[:7900]}
        if status == "KILLED" and self._cancel_reason:
            tags[CANCEL_REASON_TAG] = self._cancel_reason
        elif status == "FAILED":
            tags[PROBLEM_TAG] = self._failure or f"{type(error).__name__}: {error}"
        self.log.controller(f"Pipeline {self.name} {job_state(status)} after {elapsed:.1f} s; {reused} of "
                            f"{len(self.steps)} step(s) reused")
        try:
            for key, value in tags.items():
                self.client.set_tag(self.parent_run_id, key, value)
        finally:
            self.log.upload()
            self.final_status = status
            self.client.set_terminated(self.parent_run_id, status)

    def _final_status(self, error: BaseException | None) -> str:
        if error is not None:
            return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        if self._cancel_reason is not None:
            return "KILLED"
        if self._failure is not None or any(s.status != "FINISHED" for s in self.steps.values()):
            return "FAILED"
        return "FINISHED"

    def _pipeline_outputs(self) -> dict[str, str]:
        """Pipeline output -> ``runs:/<run>/outputs/<name>`` of the step output bound to it."""
        bound = {}
        for step in self.spec.steps.values():
            run_id = self.steps[step.name].outputs_run_id
            for output, pipeline_output in step.pipeline_outputs.items():
                if run_id:
                    bound[pipeline_output] = f"runs:/{run_id}/outputs/{output}"
        return bound


__all__ = ["PipelineHandle", "StepRun", "run_pipeline", "step_command_job"]
