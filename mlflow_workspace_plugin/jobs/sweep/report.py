"""What ``job show`` and ``job download`` say and fetch for a sweep job (its parent run and its trials)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.jobs.job_names import JOB_NAME_TAG, JOB_TYPE_TAG
from mlflow_workspace_plugin.jobs.states import job_state
from mlflow_workspace_plugin.jobs.sweep.best_trial import trial_score
from mlflow_workspace_plugin.jobs.sweep.controller import (
    ARTIFACT_PATH,
    BEST_RUN_TAG,
    BEST_STATUS_TAG,
    PARENT_TAG,
    PROBLEM_TAG,
    SCORE_TAG,
    SUMMARY_TAG,
    TRIAL_INDEX_TAG,
)
from mlflow_workspace_plugin.jobs.sweep.controller_log import ARTIFACT_DIR

DEFAULT_PARTS = ("outputs", "logs", "user_logs")


def is_sweep_run(run: Run) -> bool:
    """True for the parent run of a sweep job."""
    return run.data.tags.get(JOB_TYPE_TAG) == "sweep" or run.data.tags.get("azureml.sweep") == "true"


def trial_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """The sweep's trial runs, by trial index."""
    runs = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
                              max_results=1000)
    return sorted(runs, key=lambda run: int(run.data.tags.get(TRIAL_INDEX_TAG, "1000000")))


def sweep_record(client: MlflowClient, parent: Run) -> dict:
    """The sweep's part of ``job show``: objective, limits, best trial and every trial (index, name, run id,
    state, params, best value of the primary metric)."""
    tags = parent.data.tags
    objective = json.loads(tags.get("primary_metric_config", "{}"))
    metric, goal = objective.get("name"), objective.get("goal", "minimize")
    trials = []
    for run in trial_runs(client, parent):
        best = None
        if metric:
            values = [p.value for p in sorted(client.get_metric_history(run.info.run_id, metric),
                                              key=lambda p: (p.timestamp, p.step))]
            scored = trial_score(values, goal)
            best = None if scored is None else scored[0]
        trials.append({
            "index": int(run.data.tags.get(TRIAL_INDEX_TAG, -1)),
            "name": run.data.tags.get(JOB_NAME_TAG, run.info.run_name),
            "run_id": run.info.run_id,
            "status": job_state(run.info.status),
            "params": dict(run.data.params),
            f"best_{metric}": best,
            "cancel_reason": run.data.tags.get("azureml.cancel_reason"),
        })
    best_run = tags.get(BEST_RUN_TAG)
    return {
        "objective": objective,
        "sampling_algorithm": _json(tags.get("azureml.sweep.sampling_algorithm")),
        "search_space": _json(tags.get("azureml.sweep.search_space")),
        "early_termination": _json(tags.get("azureml.sweep.early_termination")),
        "limits": _json(tags.get("azureml.sweep.limits")),
        "space_size": tags.get("space_size"),
        "best_child_run_id": best_run,
        "best_trial": next((t["name"] for t in trials if t["run_id"] == best_run), None),
        "score": float(tags[SCORE_TAG]) if SCORE_TAG in tags else None,
        "best_metric_status": tags.get(BEST_STATUS_TAG),
        "problem": tags.get(PROBLEM_TAG),
        "summary": _json(tags.get(SUMMARY_TAG)),
        "trials": trials,
    }


def download_sweep(client: MlflowClient, parent: Run, destination: Path, *, everything: bool = False,
                   output_name: str | None = None) -> list[str]:
    """Download the sweep's log (``azureml-logs/``) and its best trial's outputs, logs and console log (every
    artifact with ``everything``; only ``outputs/<output_name>/`` with ``output_name``) into ``destination``.
    Returns the artifact paths fetched."""
    best = parent.data.tags.get(BEST_RUN_TAG)
    if best is None:
        why = parent.data.tags.get(PROBLEM_TAG) or f"the sweep is {job_state(parent.info.status)}"
        raise MlflowException(f"sweep {parent.data.tags.get(JOB_NAME_TAG)} has no best trial to download ({why})")
    top = {entry.path for entry in client.list_artifacts(best)}
    if output_name:
        outputs = {entry.path for entry in client.list_artifacts(best, "outputs")}
        if f"outputs/{output_name}" not in outputs:
            raise MlflowException(f"the best trial (run {best}) has no output {output_name!r} (outputs/{output_name}/)")
        parts = [f"outputs/{output_name}"]
    else:
        parts = sorted(top) if everything else [part for part in DEFAULT_PARTS if part in top]
    destination.mkdir(parents=True, exist_ok=True)
    fetched = []
    for part in parts:
        mlflow.artifacts.download_artifacts(run_id=best, artifact_path=part, dst_path=str(destination),
                                            tracking_uri=client.tracking_uri)
        fetched.append(part)
    if not output_name and any(e.path == ARTIFACT_DIR for e in client.list_artifacts(parent.info.run_id)):
        mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path=ARTIFACT_DIR,
                                            dst_path=str(destination), tracking_uri=client.tracking_uri)
        fetched.append(ARTIFACT_PATH)
    return fetched


def _json(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = ["download_sweep", "is_sweep_run", "sweep_record", "trial_runs"]
