"""The sweep controller: a parent run (the sweep job) whose trials are ordinary job runs.

:func:`run_sweep` validates, creates the parent run and starts a controller thread that

- samples trials (``spec.sampler()``) and starts each with :func:`~mlflow_workspace_plugin.jobs.submit.submit_job`
  (the one execution path: local subprocess or Ray job, with all its capture) as a child run
  (``mlflow.parentRunId``, run name ``<sweep>_<index>``, sampled values as params,
  ``${{search_space.x}}`` rendered in the command), never more than ``max_concurrent_trials`` at once
  (default: this machine's CPUs) and never more than :data:`MAX_STARTING` being started at once (the
  others wait their turn, they do not fail);
- stops generating at ``max_total_trials`` or when a finite space is exhausted; a failed trial
  counts and the sweep goes on;
- every ~1 s reads the running trials' primary-metric histories and applies the early-termination
  policy (an interval = one report); a losing trial is cancelled (KILLED) with ``azureml.cancel_reason``
  and the policy's tags;
- ``trial_timeout`` is each trial job's ``limits.timeout`` (the execution path cancels it, KILLED with
  the reason); the sweep ``timeout``, :meth:`SweepHandle.cancel` and Ctrl-C (in the CLI) cancel every
  running trial and end the parent KILLED with ``azureml.cancel_reason``;
- at the end tags the parent ``best_child_run_id``, ``score`` (the best trial's best primary-metric value)
  and logs the metric ``best_<primary_metric>``; the parent ends FINISHED, KILLED when cancelled, or
  FAILED when every trial failed;
- writes ``azureml-logs/hyperdrive.txt`` on the parent (:mod:`.controller_log`);
- never leaves a trial run RUNNING when it ends: every start is waited for, a trial started after a
  cancel is cancelled at once, and child runs still going at the very end are cancelled by their tags.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.time import get_current_time_millis

from mlflow_workspace_plugin.capture.live_logs import log_sync_interval
from mlflow_workspace_plugin.execution import CANCEL_REASON_TAG, WatchedRun, control, live_runs
from mlflow_workspace_plugin.execution.plan import check_target, plan_resources
from mlflow_workspace_plugin.execution.tracking import create_training_experiment
from mlflow_workspace_plugin.jobs.job_names import (
    DISPLAY_NAME_TAG,
    JOB_FILE_TAG,
    JOB_NAME_TAG,
    JOB_TYPE_TAG,
    generate_job_name,
)
from mlflow_workspace_plugin.jobs.registry import find_job, jobs_client
from mlflow_workspace_plugin.jobs.spec import CommandJob
from mlflow_workspace_plugin.jobs.sweep.best_trial import BestTrial, TrialOutcome, choose_best_trial, trial_score
from mlflow_workspace_plugin.jobs.sweep.controller_log import ARTIFACT_PATH, ControllerLog
from mlflow_workspace_plugin.jobs.sweep.early_termination import Cancellation
from mlflow_workspace_plugin.jobs.sweep.search_space import flatten_params, format_value
from mlflow_workspace_plugin.jobs.sweep.spec import SweepSpec
from mlflow_workspace_plugin.workspace import Workspace

_logger = logging.getLogger("mlflow.projects.azureml")

POLL_SECONDS = 1.0  # how often the running trials' metric histories are read
CANCEL_WAIT_SECONDS = 90.0  # how long the end of the sweep waits for cancelled trials to end
MAX_STARTING = 4  # trials being started at once (run creation, snapshot, process start); the others wait
EXIT_REASON = "the process that ran the sweep exited"

PARENT_TAG = MLFLOW_PARENT_RUN_ID  # MLflow's own tag name
TRIAL_INDEX_TAG = "azureml.sweep.trial_index"
SUMMARY_TAG = "azureml.sweep.summary"
PROBLEM_TAG = "azureml.sweep.problem"
BEST_RUN_TAG = "best_child_run_id"
SCORE_TAG = "score"
BEST_STATUS_TAG = "best_metric_status"
ENDED = ("FINISHED", "FAILED", "KILLED")

TrialLauncher = Callable[..., WatchedRun]


def best_metric_key(primary_metric: str) -> str:
    """The parent's metric holding the best trial's best value: ``best_<primary_metric>``."""
    return f"best_{primary_metric}"


@dataclass
class SweepTrial:
    """One trial: its sampled values, its child run and what the controller saw of it."""

    index: int
    name: str
    values: dict[str, Any]
    run_id: str | None = None
    status: str = "STARTING"  # STARTING -> RUNNING -> FINISHED / FAILED / KILLED (FAILED: could not start)
    error: str | None = None  # why it could not start
    reported: bool = False  # its end was recorded and its score told to the sampler
    history: list[float] = field(default_factory=list)  # primary metric, report order
    cancellation: Cancellation | None = None  # the early-termination decision, if any
    started_at: float | None = None
    ended_at: float | None = None
    handle: WatchedRun | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, str]:
        """The sampled values as MLflow params (nested choices flattened to ``name.key``)."""
        return {key: format_value(value) for key, value in flatten_params(self.values).items()}

    @property
    def search_values(self) -> dict[str, str]:
        """``{name: text}``: what ``${{search_space.<name>}}`` becomes in the trial's command."""
        return {name: format_value(value) for name, value in self.values.items()}

    def score(self, goal: str) -> float | None:
        scored = trial_score(self.history, goal)
        return None if scored is None else scored[0]


def trial_run_name(sweep_name: str, index: int) -> str:
    return f"{sweep_name}_{index}"


class SweepHandle:
    """The running sweep: ``run_id`` (the parent run), ``wait()``, ``get_status()``, ``cancel()``, ``trials``."""

    def __init__(self, controller: _Controller) -> None:
        self._controller = controller

    @property
    def run_id(self) -> str:
        return self._controller.parent_run_id

    @property
    def name(self) -> str:
        return self._controller.name

    @property
    def tracking_uri(self) -> str:
        return self._controller.client.tracking_uri

    @property
    def spec(self) -> SweepSpec:
        return self._controller.spec

    @property
    def trials(self) -> list[SweepTrial]:
        """A snapshot of the trials so far, in index order."""
        with self._controller.lock:
            return list(self._controller.trials)

    @property
    def best(self) -> BestTrial | None:
        """The best trial once the sweep has ended (None before, or when no trial logged the metric)."""
        return self._controller.best

    @property
    def log_lines(self) -> list[str]:
        """The controller log (``azureml-logs/hyperdrive.txt``) so far."""
        return list(self._controller.log_lines)

    def wait(self) -> bool:
        """Block until the sweep has ended (every trial ended, parent terminated); True iff FINISHED."""
        while not self._controller.ended.wait(0.5):  # short waits keep Ctrl-C responsive
            pass
        return self._controller.final_status == "FINISHED"

    def wait_for(self, timeout: float) -> bool:
        """True once the sweep has ended (within ``timeout`` seconds)."""
        return self._controller.ended.wait(timeout)

    def get_status(self) -> str:
        """RUNNING until the end, then FINISHED / FAILED / KILLED."""
        return self._controller.final_status if self._controller.ended.is_set() else "RUNNING"

    def cancel(self) -> None:
        """Cancel the sweep and every running trial; returns once they have ended (parent KILLED)."""
        self.cancel_because("cancelled by the user")

    def cancel_because(self, reason: str) -> None:
        self._controller.request_cancel(reason)
        self._controller.ended.wait(CANCEL_WAIT_SECONDS + 30)


def run_sweep(
    spec: SweepSpec,
    *,
    workspace: Workspace | None = None,
    stream: bool = False,
    name: str | None = None,
    env_manager: str | None = None,
    launcher: TrialLauncher | None = None,
) -> SweepHandle:
    """Start ``spec`` as a parent run with trials as child runs; return at once with a :class:`SweepHandle`.

    ``name``: the sweep's name (default: the YAML's ``name``, else a generated one such as
    ``sharp_bottle_3f9a1c2d``; unique in the workspace), its parent run's
    name and the prefix of its trials' run names. ``stream``: echo the controller log to stderr (the
    trials' own output goes to their ``user_logs/std_log.txt``). ``env_manager``: how local trials build
    ``environment.conda_file`` (see :func:`~mlflow_workspace_plugin.jobs.submit.submit_job`). ``launcher``: how a
    trial job starts (default ``submit_job``). The trial job is validated before the parent run exists.

    The parent run records this process as its launcher (``azureml.local.*`` tags), and the controller
    watches the parent for ``azureml.cancel_reason``: ``mlflow-workspace job cancel`` of the sweep sets it,
    and the sweep is cancelled within a second, whichever process runs it.
    """
    workspace = workspace or Workspace.from_config()
    trial_job = spec.trial_job().model_copy(update={"experiment_name": spec.experiment_name})
    if launcher is None:
        from mlflow_workspace_plugin.jobs.submit import submit_job as launcher
    executor = check_target(trial_job.compute, workspace)  # exists, valid settings, (remote) answers
    plan_resources(executor, trial_job.instance_type, trial_job.resources, trial_job.instance_count)  # fits
    client = jobs_client(workspace)
    sweep_name = name or spec.name
    if sweep_name is None:
        sweep_name = generate_job_name()
    elif find_job(client, sweep_name) is not None:
        raise MlflowException(f"A job named {sweep_name!r} already exists in the workspace at "
                              f"{client.tracking_uri}; job names are unique: choose another name (--name)",
                              error_code=INVALID_PARAMETER_VALUE)
    sampler = spec.sampler()
    experiment_id = _experiment_id(client, spec.experiment_name)
    tags = {
        **spec.tags,
        "mlflow.runName": sweep_name,
        JOB_NAME_TAG: sweep_name,
        JOB_TYPE_TAG: "sweep",
        JOB_FILE_TAG: str(spec.source_file),
        **spec.parent_properties(getattr(sampler, "seed", None)),
        "azureml.compute": spec.compute.removeprefix("azureml:"),  # named as a command job's
    }
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    if spec.display_name:
        tags[DISPLAY_NAME_TAG] = spec.display_name
    parent = client.create_run(experiment_id, tags=tags, run_name=sweep_name)
    try:
        control.mark_launcher(client, parent.info.run_id)  # host and launcher: `job cancel` finds this process
        controller = _Controller(spec, sweep_name, trial_job, sampler, client, parent.info.run_id,
                                 workspace, launcher, stream, env_manager)
    except BaseException:
        client.set_terminated(parent.info.run_id, "FAILED")
        raise
    controller.start()
    return SweepHandle(controller)


def _experiment_id(client: MlflowClient, name: str) -> str:
    existing = client.get_experiment_by_name(name)
    return existing.experiment_id if existing else create_training_experiment(client, name)


class _Controller:
    """The controller thread of one sweep (see the module docstring)."""

    def __init__(self, spec: SweepSpec, name: str, trial_job: CommandJob, sampler, client: MlflowClient,
                 parent_run_id: str, workspace: Workspace, launcher: TrialLauncher, stream: bool,
                 env_manager: str | None = None) -> None:
        self.spec, self.name, self.trial_job, self.sampler = spec, name, trial_job, sampler
        self.client, self.parent_run_id = client, parent_run_id
        self.workspace, self.launcher = workspace, launcher
        self.launch_options = {"env_manager": env_manager} if env_manager else {}
        self.terminator = spec.early_terminator()
        self.goal = spec.objective.goal
        self.metric = spec.objective.primary_metric
        self.limits = spec.limits
        self.lock = threading.Lock()
        self.trials: list[SweepTrial] = []
        self.best: BestTrial | None = None
        self.final_status = "RUNNING"
        self.ended = threading.Event()
        self.log_lines: list[str] = []
        self._wake = threading.Event()
        self._cancel_reason: str | None = None
        self._generation_done = False
        self._cancellers: list[threading.Thread] = []
        self._started: list[threading.Event] = []  # one per trial: set once its start is over (run or not)
        self._start_slots = threading.BoundedSemaphore(MAX_STARTING)
        self._scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-sweep-{parent_run_id[:8]}-"))
        self.log = ControllerLog(client, parent_run_id, self._scratch, echo=stream, upload_every=log_sync_interval())
        self._thread = threading.Thread(target=self._run, name=f"mlflow-ws-sweep-{parent_run_id[:8]}", daemon=True)

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        live_runs.track_controller(self, EXIT_REASON)  # at exit: cancelled before the runs are
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
        deadline = time.monotonic() + self.limits.timeout
        error: BaseException | None = None
        try:
            self._log_start()
            next_poll = 0.0
            while True:
                self._wake.clear()
                self._collect_ended()
                if self._cancel_reason is not None:
                    break
                if time.monotonic() >= deadline:
                    self.request_cancel(f"timeout: the sweep exceeded its limit of {self.limits.timeout} s")
                    break
                if time.monotonic() >= next_poll:
                    self._watch_parent()
                    if self._cancel_reason is not None:
                        break
                    self._read_histories()
                    self._early_terminate()
                    next_poll = time.monotonic() + POLL_SECONDS
                self._schedule()
                if self._generation_done and not self._active():
                    break
                self.log.upload_if_due()
                self._wake.wait(max(0.0, min(next_poll, deadline) - time.monotonic()))
        except BaseException as exc:  # the controller itself broke: stop what runs, end the parent FAILED
            error = exc
            _logger.exception("mlflow-workspace: sweep %s failed", self.name)
        finally:
            try:
                self._finish(error)
            finally:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self.ended.set()
                live_runs.untrack_controller(self)

    def _watch_parent(self) -> None:
        """``job cancel`` from another process tags the parent with the reason: cancel the sweep then."""
        try:
            reason = self.client.get_run(self.parent_run_id).data.tags.get(CANCEL_REASON_TAG)
        except Exception as error:  # a transient read failure: the next poll tries again
            _logger.debug("parent run %s not readable: %s", self.parent_run_id, error)
            return
        if reason:
            self.request_cancel(reason)

    def _log_start(self) -> None:
        spec, sampler = self.spec, self.sampler
        self.log.controller(f"Starting sweep '{self.name}' (parent run {self.parent_run_id}) from {spec.shown_file}")
        size = "infinite" if sampler.space_size is None else str(sampler.space_size)
        seed = getattr(sampler, "seed", None)
        self.log.generator(
            f"Sampling algorithm '{spec.sampling.type}'" + (f" (seed {seed})" if seed is not None else "")
            + f", space size {size}, primary metric '{self.metric}' ({self.goal})")
        policy = spec.early_termination
        self.log.controller(
            f"Limits: max_total_trials {self.limits.max_total_trials}, max_concurrent_trials "
            f"{self.limits.max_concurrent_trials}, timeout {self.limits.timeout} s, trial_timeout "
            f"{self.limits.trial_timeout or 'none'}; early termination "
            f"{'none' if policy is None else policy.name}")
        for warning in spec.warnings:
            self.log.controller(warning, level="WARNING")
            _logger.warning("mlflow-workspace: %s", warning)
        self._sync_log_lines()

    def _active(self) -> list[SweepTrial]:
        """Trials holding a concurrency slot: starting or running."""
        with self.lock:
            return [trial for trial in self.trials if trial.status in ("STARTING", "RUNNING")]

    def _running(self) -> list[SweepTrial]:
        with self.lock:
            return [trial for trial in self.trials if trial.status == "RUNNING"]

    def _schedule(self) -> None:
        free = self.limits.max_concurrent_trials - len(self._active())
        if free <= 0 or self._generation_done:
            return
        wanted = min(free, self.limits.max_total_trials - len(self.trials))
        self.log.generator(f"Trying to sample '{wanted}' jobs from the hyperparameter space")
        sampled = []
        for _ in range(wanted):
            values = self.sampler.next_trial()
            if values is None:
                break
            index = len(self.trials) + len(sampled)
            sampled.append(SweepTrial(index, trial_run_name(self.name, index), values, status="STARTING"))
        if sampled:
            self.log.generator(f"Successfully sampled '{len(sampled)}' jobs, they will soon be submitted "
                               "to the execution target.")
        for trial in sampled:
            self.log.generator(f"Job '{trial.name}': {json.dumps(trial.values)}")
        if len(sampled) < wanted:
            self._generation_done = True
            self.log.generator(f"All jobs generated: the search space is exhausted after "
                               f"{len(self.trials) + len(sampled)} jobs.")
        elif len(self.trials) + len(sampled) >= self.limits.max_total_trials:
            self._generation_done = True
            self.log.generator(f"Max number of jobs '{self.limits.max_total_trials}' reached for experiment.")
        for trial in sampled:
            with self.lock:
                self.trials.append(trial)
            started = threading.Event()
            self._started.append(started)
            starter = threading.Thread(target=self._start_trial, args=(trial, started), daemon=True,
                                       name=f"mlflow-ws-start-{trial.name[-40:]}")
            starter.start()  # starts run in parallel: a slow start (snapshot, Ray upload) delays no other trial
        self._sync_log_lines()

    def _start_trial(self, trial: SweepTrial, started: threading.Event) -> None:
        """Start one trial's job (in its own thread, at most :data:`MAX_STARTING` at once); a trial that
        cannot start counts as FAILED, one not started before the sweep was cancelled as KILLED."""
        try:
            with self._start_slots:
                handle = self._launch_trial(trial)
            if handle is None:
                self._wake.set()
                return
            with self.lock:
                trial.handle, trial.run_id, trial.status = handle, handle.run_id, "RUNNING"
            self.log.scheduler(f"Successfully scheduled a job. Id='{trial.name}', run id '{handle.run_id}'")
            if self._cancel_reason is not None:  # cancelled while it started: it must not outlive the sweep
                self._cancel_in_background(trial, f"sweep cancelled: {self._cancel_reason}")
        finally:
            started.set()
        while not handle.wait_for(3600):  # then wake the controller as soon as the trial ends
            pass
        self._wake.set()

    def _launch_trial(self, trial: SweepTrial) -> WatchedRun | None:
        if self._cancel_reason is not None:
            with self.lock:
                trial.status, trial.ended_at = "KILLED", time.time()
                trial.error = "not started: the sweep was cancelled"
            return None
        self.log.scheduler(f"Scheduling job, id='{trial.name}'")
        trial.started_at = time.time()
        try:
            job = self.trial_job.model_copy(update={
                "name": trial.name, "tags": {**self.trial_job.tags, TRIAL_INDEX_TAG: str(trial.index)}})
            return self.launcher(
                job, stream=False, workspace=self.workspace,
                parent_run_id=self.parent_run_id, extra_params=trial.params, search_values=trial.search_values,
                run_name=trial.name, **self.launch_options,
            )
        except Exception as error:
            with self.lock:
                trial.status, trial.error, trial.ended_at = "FAILED", f"{type(error).__name__}: {error}", time.time()
            self.log.scheduler(f"Failed to schedule job '{trial.name}': {trial.error}", level="ERROR")
            return None

    def _collect_ended(self) -> None:
        """Record trials that ended (and trials that could not start) and tell the sampler their score."""
        with self.lock:
            pending = [trial for trial in self.trials if not trial.reported and trial.status not in ("STARTING",)]
        for trial in pending:
            if trial.status == "RUNNING":
                if not trial.handle.wait_for(0):
                    continue
                self._read_history(trial)  # everything it logged, now that it has ended
                with self.lock:
                    trial.status, trial.ended_at = trial.handle.get_status(), time.time()
                score = trial.score(self.goal)
                why = f" ({trial.handle.cancel_reason})" if trial.handle.cancel_reason else ""
                self.log.controller(
                    f"Job '{trial.name}' (run {trial.run_id}) ended {trial.status}{why}; {len(trial.history)} "
                    f"report(s) of '{self.metric}', best {score if score is not None else 'none'}")
            trial.reported = True
            self.sampler.report(trial.index, trial.score(self.goal))
        self._sync_log_lines()

    # ---------------------------------------------------------------- metrics and early termination
    def _read_histories(self) -> None:
        for trial in self._running():
            self._read_history(trial)

    def _read_history(self, trial: SweepTrial) -> None:
        try:
            points = self.client.get_metric_history(trial.run_id, self.metric)
        except Exception as error:  # a transient read failure: the next poll tries again
            _logger.debug("metric history of %s not readable: %s", trial.run_id, error)
            return
        ordered = sorted(enumerate(points), key=lambda item: (item[1].timestamp, item[1].step, item[0]))
        trial.history = [point.value for _, point in ordered]

    def _early_terminate(self) -> None:
        if self.terminator is None:
            return
        running = {trial.run_id for trial in self._running() if trial.cancellation is None}
        histories = {trial.run_id: trial.history for trial in self.trials if trial.run_id}
        decided = self.terminator.evaluate(histories, running)
        for trial in self._running():
            cancellation = decided.get(trial.run_id)
            if cancellation is None:
                continue
            trial.cancellation = cancellation
            self.log.early_termination(f"Cancelling job '{trial.name}' (run {trial.run_id}): {cancellation.reason}")
            self._cancel_in_background(trial, cancellation.reason, cancellation.tags())
        self._sync_log_lines()

    def _cancel_in_background(self, trial: SweepTrial, reason: str, tags: dict[str, str] | None = None) -> None:
        def cancel() -> None:
            try:
                if tags:
                    self.client.log_batch(trial.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
                trial.handle.cancel_because(reason)
            except Exception as error:
                _logger.warning("mlflow-workspace: cancelling trial run %s failed: %s", trial.run_id, error)

        thread = threading.Thread(target=cancel, daemon=True, name=f"mlflow-ws-cancel-{trial.run_id[:8]}")
        self._cancellers.append(thread)
        thread.start()

    # ---------------------------------------------------------------- the end
    def _finish(self, error: BaseException | None) -> None:
        reason = self._cancel_reason
        if error is not None and reason is None:
            reason = f"the sweep controller failed: {type(error).__name__}: {error}"
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        if reason is not None:
            self.request_cancel(reason)  # trials still waiting to start are not started
        for started in list(self._started):  # let trials being started get their run
            started.wait(max(0.0, deadline - time.monotonic()))
        running = self._running()
        if running:
            self.log.controller(f"Cancelling {len(running)} running job(s): {reason}")
            for trial in running:
                if trial.cancellation is None:
                    self._cancel_in_background(trial, f"sweep cancelled: {reason}")
        for trial in running:
            trial.handle.wait_for(max(0.0, deadline - time.monotonic()))
        for thread in list(self._cancellers):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._collect_ended()
        self._cancel_leftovers(reason)
        status = self._final_status(error)
        tags, metrics = self._result_tags()
        if status == "KILLED" and reason:
            tags[CANCEL_REASON_TAG] = reason
            self.log.controller(f"Sweep cancelled: {reason}")
        elif error is not None:
            tags[PROBLEM_TAG] = reason
        self.log.controller(f"Experiment was 'RUNNING', is '{status}'.")
        self._sync_log_lines()
        try:
            self.client.log_batch(self.parent_run_id, metrics=metrics,
                                  tags=[RunTag(k, v) for k, v in tags.items()])
        finally:
            self.log.upload()
            self.final_status = status
            self.client.set_terminated(self.parent_run_id, status)

    def _cancel_leftovers(self, reason: str | None) -> None:
        """Child runs of the parent still going now (a start or a cancel that did not finish in time)
        are cancelled through their tags: the sweep never ends with a trial left RUNNING."""
        try:
            parent = self.client.get_run(self.parent_run_id)
            left = control.cancel_children(self.client, parent, f"sweep ended: {reason or 'all trials done'}",
                                           self.workspace)
        except Exception as error:
            _logger.warning("mlflow-workspace: sweep %s: could not check its trials' runs: %s", self.name, error)
            return
        if left:
            self.log.controller(f"Cancelled {left} trial run(s) still going at the end", level="WARNING")

    def _final_status(self, error: BaseException | None) -> str:
        if error is not None:
            return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        if self._cancel_reason is not None:
            return "KILLED"
        if self.trials and all(trial.status == "FAILED" for trial in self.trials):
            return "FAILED"
        return "FINISHED"

    def _result_tags(self) -> tuple[dict[str, str], list[Metric]]:
        outcomes = [TrialOutcome(trial.run_id or trial.name, trial.index, trial.status, trial.history)
                    for trial in self.trials]
        self.best = choose_best_trial(outcomes, self.goal)
        counts = {status: sum(1 for t in self.trials if t.status == status) for status in ENDED}
        summary = {"trials": len(self.trials), **{k.lower(): v for k, v in counts.items()},
                   "early_terminated": sum(1 for t in self.trials if t.cancellation is not None)}
        tags = {SUMMARY_TAG: json.dumps(summary)}
        self.log.controller(f"Trials: {json.dumps(summary)}")
        metrics: list[Metric] = []
        if self.best is None:
            problem = (f"no trial logged the primary metric '{self.metric}' (objective.primary_metric must "
                       "name a metric the training code logs); there is no best trial")
            tags[BEST_STATUS_TAG] = "Failed"
            tags[PROBLEM_TAG] = problem
            self.log.controller(problem, level="WARNING")
            if self.trials:
                _logger.warning("mlflow-workspace: sweep %s: %s", self.name, problem)
            return tags, metrics
        best_trial = self.trials[self.best.index]
        tags.update({BEST_RUN_TAG: self.best.trial_id, SCORE_TAG: repr(self.best.score), BEST_STATUS_TAG: "Succeeded"})
        metrics.append(Metric(best_metric_key(self.metric), self.best.score, get_current_time_millis(), 0))
        self.log.controller(
            f"Best job '{best_trial.name}' (run {self.best.trial_id}): {self.metric} {self.best.score} at report "
            f"{self.best.interval} ({self.goal}); values {json.dumps(best_trial.values)}")
        return tags, metrics

    def _sync_log_lines(self) -> None:
        self.log_lines = self.log.lines()


__all__ = [
    "ARTIFACT_PATH",
    "BEST_RUN_TAG",
    "SCORE_TAG",
    "SweepHandle",
    "SweepTrial",
    "best_metric_key",
    "run_sweep",
    "trial_run_name",
]
