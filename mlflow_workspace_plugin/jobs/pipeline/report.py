"""What ``job show`` and ``job download`` say and fetch for a pipeline job (its run and its steps)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.jobs.job_names import JOB_NAME_TAG, JOB_TYPE_TAG
from mlflow_workspace_plugin.jobs.pipeline.controller import (
    OUTPUTS_TAG,
    PIPELINE_RUN_TAG,
    PROBLEM_TAG,
    STEP_TAG,
    STEPS_TAG,
)
from mlflow_workspace_plugin.jobs.pipeline.reuse import REUSED_RUN_TAG
from mlflow_workspace_plugin.jobs.states import job_state


def is_pipeline_run(run: Run) -> bool:
    return run.data.tags.get(JOB_TYPE_TAG) == "pipeline"


def is_step_run(run: Run) -> bool:
    """A run of a pipeline's step (listed by ``job show`` of its pipeline, not by ``job list``)."""
    return STEP_TAG in run.data.tags


def step_runs(client: MlflowClient, parent: Run) -> dict[str, Run]:
    """The pipeline's step runs by step name."""
    runs = client.search_runs([parent.info.experiment_id],
                              f"tags.`{PIPELINE_RUN_TAG}` = '{parent.info.run_id}'", max_results=1000)
    return {run.data.tags[STEP_TAG]: run for run in runs if STEP_TAG in run.data.tags}


def pipeline_record(client: MlflowClient, parent: Run) -> dict:
    """The pipeline's part of ``job show``: every step (state, run, job name, reused run) and the outputs."""
    tags = parent.data.tags
    recorded = json.loads(tags.get(STEPS_TAG, "{}") or "{}")
    runs = step_runs(client, parent)
    steps = {}
    for name in sorted(set(recorded) | set(runs)):
        run = runs.get(name)
        entry = {"state": recorded.get(name, {}).get("state", "NotStarted")}
        if run is not None:
            entry.update({"state": job_state(run.info.status), "run_id": run.info.run_id,
                          "job_name": run.data.tags.get(JOB_NAME_TAG)})
            if run.data.tags.get(REUSED_RUN_TAG):
                entry["reused_run_id"] = run.data.tags[REUSED_RUN_TAG]
        steps[name] = entry
    record = {"steps": steps, "outputs": json.loads(tags.get(OUTPUTS_TAG, "{}") or "{}")}
    if tags.get(PROBLEM_TAG):
        record["problem"] = tags[PROBLEM_TAG]
    return record


def download_pipeline(client: MlflowClient, parent: Run, destination: Path, output_name: str | None = None) -> None:
    """The pipeline's outputs (``outputs/<name>/``, from the steps that produced them) and its log."""
    outputs = json.loads(parent.data.tags.get(OUTPUTS_TAG, "{}") or "{}")
    if output_name is not None:
        if output_name not in outputs:
            raise MlflowException(f"pipeline has no output {output_name!r}; its outputs: "
                                  f"{', '.join(sorted(outputs)) or '(none)'}")
        outputs = {output_name: outputs[output_name]}
    for name, uri in outputs.items():
        target = destination / "outputs" / name
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target), tracking_uri=client.tracking_uri)
    logs = destination / "azureml-logs"
    logs.mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="azureml-logs",
                                        dst_path=str(destination), tracking_uri=client.tracking_uri)
