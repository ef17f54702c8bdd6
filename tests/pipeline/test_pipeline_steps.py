"""Pipeline steps of the other kinds: a sweep step (its best trial's outputs feed the next step) and a
step on the session's Ray head fed by a local step (data through the workspace's artifact store)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import mlflow.artifacts
import pytest
import yaml
from mlflow import MlflowClient
from pipeline_files import step, write_pipeline

from mlflow_workspace_plugin.jobs.pipeline import load_pipeline, run_pipeline
from mlflow_workspace_plugin.jobs.pipeline.report import step_runs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TRIAL = '''
import argparse, pathlib, mlflow
p = argparse.ArgumentParser()
p.add_argument("--inp"); p.add_argument("--c", type=float); p.add_argument("--out")
a = p.parse_args()
seen = (pathlib.Path(a.inp) / "data.txt").read_text()
pathlib.Path(a.out).mkdir(parents=True, exist_ok=True)
(pathlib.Path(a.out) / "data.txt").write_text(f"{seen}+c={a.c:g}")
with mlflow.start_run():
    mlflow.log_metric("score", a.c)
'''


def outputs_of(client: MlflowClient, run_id: str, folder: Path) -> str:
    got = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="outputs/out", dst_path=str(folder),
                                              tracking_uri=client.tracking_uri)
    return (Path(got) / "data.txt").read_text()


def test_sweep_step_feeds_its_best_trial_to_the_next_step(pipeline_dir, local_tracking, tmp_path):
    (pipeline_dir / "src" / "trial.py").write_text(textwrap.dedent(TRIAL))
    (pipeline_dir / "trial.yml").write_text(yaml.safe_dump({
        "name": "trial", "type": "command", "code": "./src",
        "inputs": {"inp": {"type": "uri_folder"}, "c": {"type": "number", "default": 1}},
        "outputs": {"out": {"type": "uri_folder"}},
        "command": "python trial.py --inp ${{inputs.inp}} --c ${{inputs.c}} --out ${{outputs.out}}"}))
    path = write_pipeline(pipeline_dir, {
        "a": step("A"),
        "tune": {"type": "sweep", "trial": "./trial.yml", "inputs": {"inp": "${{parent.jobs.a.outputs.out}}"},
                 "sampling_algorithm": "grid", "search_space": {"c": {"type": "choice", "values": [1, 3, 2]}},
                 "objective": {"primary_metric": "score", "goal": "maximize"},
                 "limits": {"max_total_trials": 3, "max_concurrent_trials": 2}},
        "after": step("Z", "tune"),
    })
    handle = run_pipeline(load_pipeline(path), name="swept_1")
    assert handle.wait(), {n: (s.status, s.error) for n, s in handle.steps.items()}
    client = MlflowClient(local_tracking)
    runs = step_runs(client, client.get_run(handle.run_id))
    assert runs["tune"].data.tags["azureml.job.type"] == "sweep"
    assert runs["tune"].data.tags["mlflow.parentRunId"] == handle.run_id
    assert outputs_of(client, runs["after"].info.run_id, tmp_path / "after") == "A+c=3+Z"  # the best trial's


def test_step_on_ray_reads_a_local_steps_output(pipeline_dir, ray_workspace, tmp_path):
    path = write_pipeline(pipeline_dir, {"local": step("L"),
                                         "remote": step("R", "local", compute="azureml:fast-cluster")})
    handle = run_pipeline(load_pipeline(path), name="mixed_1")
    assert handle.wait(), {n: (s.status, s.error) for n, s in handle.steps.items()}
    client = MlflowClient(ray_workspace)
    runs = step_runs(client, client.get_run(handle.run_id))
    assert runs["remote"].data.tags.get("azureml.compute") == "fast-cluster" or "ray.job_id" in runs["remote"].data.tags
    assert outputs_of(client, runs["remote"].info.run_id, tmp_path / "r") == "L+R"
