"""Pipelines end to end on a local workspace shared by the module: real CLI processes, real step runs;
assertions on exit codes and on what the tracking store holds (states, times, passed data, reuse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow.artifacts
import pytest
from mlflow import MlflowClient
from pipeline_files import step, write_pipeline

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.jobs.pipeline.report import step_runs
from mlflow_workspace_plugin.jobs.registry import find_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipeline-workspace")


@pytest.fixture
def env(isolated_workspace, home, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(home))
    return {**os.environ, "MLFLOW_WORKSPACE_LOG_SYNC_SECONDS": "1"}


@pytest.fixture
def client(home) -> MlflowClient:
    return MlflowClient(local_workspace.local_tracking_uri(home))


def create(path: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "job", "create", "-f", str(path), "--stream", *extra], env=env, cwd=path.parent,
                          capture_output=True, text=True, timeout=600)


def show(name: str, env: dict) -> dict:
    out = subprocess.run([*CLI, "job", "show", "-n", name], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def output_text(client: MlflowClient, run_id: str, tmp_path: Path) -> str:
    folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="outputs/out", dst_path=str(tmp_path),
                                                 tracking_uri=client.tracking_uri)
    return (Path(folder) / "data.txt").read_text()


def test_linear_pipeline_passes_data_and_is_reused_the_second_time(pipeline_dir, env, client, tmp_path):
    path = write_pipeline(pipeline_dir, {"a": step("A"), "b": step("B", "a"),
                                         "c": step("C", "b", outputs={"out": "${{parent.outputs.final}}"})},
                          outputs={"final": {"type": "uri_folder"}})
    first = create(path, env, "--name", "linear_1")
    assert first.returncode == 0, first.stderr
    assert "pipeline job linear_1 Completed" in first.stderr
    parent = find_job(client, "linear_1")
    assert parent.info.status == "FINISHED"
    steps = step_runs(client, parent)
    assert sorted(steps) == ["a", "b", "c"]
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in steps.values())
    assert steps["c"].info.run_name == "linear_1/c"
    assert output_text(client, steps["c"].info.run_id, tmp_path / "c") == "A+B+C"  # data passed along
    record = show("linear_1", env)
    assert {name: s["state"] for name, s in record["steps"].items()} == {"a": "Completed", "b": "Completed",
                                                                          "c": "Completed"}
    assert record["outputs"]["final"] == f"runs:/{steps['c'].info.run_id}/outputs/out"

    second = create(path, env, "--name", "linear_2")  # identical: every step reused, nothing runs
    assert second.returncode == 0, second.stderr
    assert "3 reused" in second.stderr
    again = step_runs(client, find_job(client, "linear_2"))
    assert {n: r.data.tags.get("azureml.pipeline.reused_run_id") for n, r in again.items()} == {
        n: r.info.run_id for n, r in steps.items()}

    third = create(path, env, "--name", "linear_3", "--set", "settings.force_rerun=true")
    assert third.returncode == 0, third.stderr
    rerun = step_runs(client, find_job(client, "linear_3"))
    assert not any("azureml.pipeline.reused_run_id" in r.data.tags for r in rerun.values())

    changed = create(path, env, "--name", "linear_4", "--set", "jobs.b.inputs.text=B2")  # b and c run, a reused
    assert changed.returncode == 0, changed.stderr
    runs = step_runs(client, find_job(client, "linear_4"))
    assert [n for n, r in sorted(runs.items()) if "azureml.pipeline.reused_run_id" in r.data.tags] == ["a"]
    assert output_text(client, runs["c"].info.run_id, tmp_path / "c4") == "A+B2+C"


def test_diamond_runs_independent_steps_in_parallel(pipeline_dir, env, client):
    path = write_pipeline(pipeline_dir, {
        "a": step("A"), "b": step("B", "a", sleep=4), "c": step("C", "a", sleep=4),
        "d": {"type": "command", "command": "cat ${{inputs.left}}/data.txt ${{inputs.right}}/data.txt",
              "inputs": {"left": "${{parent.jobs.b.outputs.out}}", "right": "${{parent.jobs.c.outputs.out}}"}},
    }, settings={"force_rerun": True})
    out = create(path, env, "--name", "diamond_1")
    assert out.returncode == 0, out.stderr
    runs = step_runs(client, find_job(client, "diamond_1"))
    b, c, d = runs["b"].info, runs["c"].info, runs["d"].info
    assert b.start_time < c.end_time and c.start_time < b.end_time  # b and c overlapped
    assert d.start_time >= max(b.end_time, c.end_time)


def test_failed_step_stops_the_pipeline_unless_told_to_continue(pipeline_dir, env, client):
    jobs = {"bad": {**step("X"), "command": None}, "after": step("Y", "bad"), "other": step("Z", sleep=3)}
    jobs["bad"] = {"type": "command", "command": "python -c 'import sys; sys.exit(3)'",
                   "outputs": {"out": {"type": "uri_folder"}}}
    path = write_pipeline(pipeline_dir, jobs, settings={"force_rerun": True})
    stopped = create(path, env, "--name", "fail_1")
    assert stopped.returncode == 1
    parent = find_job(client, "fail_1")
    assert parent.info.status == "FAILED"
    assert "step bad failed" in parent.data.tags["azureml.pipeline.problem"]
    runs = step_runs(client, parent)
    assert "after" not in runs and runs["bad"].info.status == "FAILED"
    assert runs["other"].info.status in ("KILLED", "FINISHED")  # stopped when bad failed (or done first)
    assert show("fail_1", env)["steps"]["after"]["state"] == "NotStarted"

    path = write_pipeline(pipeline_dir, jobs, settings={"force_rerun": True, "continue_on_step_failure": True})
    went_on = create(path, env, "--name", "fail_2")
    assert went_on.returncode == 1
    runs = step_runs(client, find_job(client, "fail_2"))
    assert runs["other"].info.status == "FINISHED" and "after" not in runs


def test_registered_component_runs_from_the_workspace(pipeline_dir, env, client, tmp_path):
    made = subprocess.run([*CLI, "component", "create", "-f", str(pipeline_dir / "step.yml")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["reference"] == "azureml:step:1"
    elsewhere = tmp_path / "elsewhere"  # no step.yml, no src/ here: everything comes from the workspace
    elsewhere.mkdir()
    path = write_pipeline(elsewhere, {"a": {"component": "azureml:step@latest", "inputs": {"text": "R"}},
                                      "b": {"component": "azureml:step:1",
                                            "inputs": {"text": "S", "inp": "${{parent.jobs.a.outputs.out}}"}}},
                          settings={"force_rerun": True})
    out = create(path, env, "--name", "registered_1")
    assert out.returncode == 0, out.stderr
    runs = step_runs(client, find_job(client, "registered_1"))
    assert output_text(client, runs["b"].info.run_id, tmp_path / "b") == "R+S"
    listed = subprocess.run([*CLI, "component", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "step" in listed.stdout and "1" in listed.stdout
