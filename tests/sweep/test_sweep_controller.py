"""End-to-end sweeps: real trial processes through submit_job (the one execution path), checked from the store.

Trials are tiny: ``trial.py`` logs ``loss`` a few times (or fails / hangs before importing MLflow), or the
command is a plain shell ``echo`` / ``sleep``, so most trials cost no Python start-up at all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.cli.job_commands import job as job_cli
from mlflow_workspace_plugin.compute.handles import CANCEL_REASON_TAG
from mlflow_workspace_plugin.compute.local_control import SUPERVISOR_TAG, alive
from mlflow_workspace_plugin.jobs.registry import find_job
from mlflow_workspace_plugin.jobs.sweep import load_sweep
from mlflow_workspace_plugin.jobs.sweep.controller import (
    ARTIFACT_PATH,
    BEST_RUN_TAG,
    PROBLEM_TAG,
    SCORE_TAG,
    SUMMARY_TAG,
    TRIAL_INDEX_TAG,
    run_sweep,
)
from mlflow_workspace_plugin.jobs.sweep.spec import default_concurrent_trials

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TRIAL_SCRIPT = """\
import argparse, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--case", required=True)
parser.add_argument("--reports", type=int, default=3)
parser.add_argument("--pause", type=float, default=0.0)
args = parser.parse_args()
if args.case == "fail":
    sys.exit(3)
level = {"good": 1.0, "worse": 3.0, "bad": 5.0}[args.case]
pause = args.pause / 5 if args.case == "good" else args.pause  # the good trial overtakes the others
from mlflow import MlflowClient
client, run_id = MlflowClient(), os.environ["MLFLOW_RUN_ID"]
for i in range(args.reports):
    client.log_metric(run_id, "loss", level + 1.0 / (i + 1), step=i)
    time.sleep(pause)
os.makedirs("outputs", exist_ok=True)
with open("outputs/case.txt", "w") as out:
    out.write(args.case)
"""


def write_sweep(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(TRIAL_SCRIPT)
    path = folder / "sweep.yml"
    path.write_text(textwrap.dedent(body))
    return path


def children(client: MlflowClient, parent_run_id: str) -> list:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return sorted(runs, key=lambda run: int(run.data.tags[TRIAL_INDEX_TAG]))


def history(client: MlflowClient, run_id: str, key: str = "loss") -> list[float]:
    points = client.get_metric_history(run_id, key)
    return [p.value for p in sorted(points, key=lambda p: (p.timestamp, p.step))]


def max_overlap(runs) -> int:
    """Most runs alive at one instant, from the stored start and end times."""
    events = [(run.info.start_time, 1) for run in runs] + [(run.info.end_time, -1) for run in runs]
    alive = peak = 0
    for _, change in sorted(events, key=lambda event: (event[0], event[1])):  # ends before starts on ties
        alive += change
        peak = max(peak, alive)
    return peak


def wait_ended(handle, timeout: float = 240) -> None:
    assert handle.wait_for(timeout), f"sweep {handle.name} still {handle.get_status()} after {timeout} s"


@pytest.mark.compat
def test_grid_sweep_from_the_cli_runs_its_grid_counts_failures_and_picks_the_best(tmp_path, local_tracking):
    """The preview spelling through `job create --stream`, then checked in the store and with show/stream/download."""
    path = write_sweep(tmp_path / "grid", """\
        type: sweep_job
        algorithm: grid
        trial:
          code: {local_path: .}
          command: python trial.py --case {search_space.case}
        search_space:
          case: {type: choice, values: [worse, fail, good]}
        objective: {primary_metric: loss, goal: minimize}
        max_total_trials: 10
        max_concurrent_trials: 2
        experiment_name: sweep-grid
        """)
    runner = CliRunner()
    created = runner.invoke(job_cli, ["create", "-f", str(path), "--stream", "--name", "grid-sweep"])
    assert created.exit_code == 0, created.output
    assert "[GENERATOR][INFO]All jobs generated: the search space is exhausted after 3 jobs." in created.stderr
    assert "sweep job grid-sweep Completed" in created.stderr and "best trial grid-sweep_2" in created.stderr

    client = MlflowClient(local_tracking)
    parent = find_job(client, "grid-sweep")
    runs = children(client, parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "grid-sweep"
    assert parent.data.tags["runTemplate"] == "HyperDrive" and parent.data.tags["space_size"] == "3"
    # exactly the grid, once each, as child runs named <sweep>_<index> with the value as a param
    assert [run.data.params["case"] for run in runs] == ["worse", "fail", "good"]
    assert [run.info.run_name for run in runs] == [f"grid-sweep_{i}" for i in range(3)]
    assert {run.info.experiment_id for run in runs} == {parent.info.experiment_id}
    assert [run.info.status for run in runs] == ["FINISHED", "FAILED", "FINISHED"]
    assert max_overlap(runs) <= 2
    summary = parent.data.tags[SUMMARY_TAG]
    assert '"trials": 3' in summary and '"failed": 1' in summary and '"finished": 2' in summary
    good = runs[2]
    best_value = min(history(client, good.info.run_id))
    assert best_value == pytest.approx(1.0 + 1 / 3) and min(history(client, runs[0].info.run_id)) > best_value
    assert parent.data.tags[BEST_RUN_TAG] == good.info.run_id
    assert float(parent.data.tags[SCORE_TAG]) == best_value == parent.data.metrics["best_loss"]
    assert parent.data.tags["best_metric_status"] == "Succeeded"

    shown = runner.invoke(job_cli, ["show", "-n", "grid-sweep"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["type"] == "sweep" and record["status"] == "Completed"
    assert record["objective"] == {"name": "loss", "goal": "minimize"}
    assert [(t["index"], t["name"], t["params"]["case"], t["status"]) for t in record["trials"]] == [
        (0, "grid-sweep_0", "worse", "Completed"), (1, "grid-sweep_1", "fail", "Failed"),
        (2, "grid-sweep_2", "good", "Completed")]
    assert record["trials"][2]["best_loss"] == best_value and record["trials"][1]["best_loss"] is None
    assert record["best_trial"] == "grid-sweep_2" and record["score"] == best_value

    streamed = runner.invoke(job_cli, ["stream", "-n", "grid-sweep"])  # the parent's console: the controller log
    assert streamed.exit_code == 0 and "[CONTROLLER][INFO]Best job 'grid-sweep_2'" in streamed.stdout
    assert "[SCHEDULER][INFO]Scheduling job, id='grid-sweep_1'" in streamed.stdout

    fetched = runner.invoke(job_cli, ["download", "-n", "grid-sweep", "--all", "--download-path", str(tmp_path / "dl")])
    assert fetched.exit_code == 0, fetched.output
    folder = tmp_path / "dl" / "grid-sweep"
    assert (folder / "outputs" / "case.txt").read_text() == "good"  # the best trial's output
    assert (folder / "user_logs" / "std_log.txt").is_file()
    log = (folder / ARTIFACT_PATH).read_text()
    assert "ended FAILED" in log and "Best job 'grid-sweep_2'" in log


def test_random_sweep_with_a_seed_samples_the_same_trials_again(tmp_path, local_tracking):
    path = write_sweep(tmp_path / "random", """\
        type: sweep
        sampling_algorithm: {type: random, seed: 11}
        trial:
          code: .
          command: echo "x=${{search_space.x}} lr=${{search_space.lr}}"
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
          lr: {type: loguniform, min_value: -6, max_value: -1}
        objective: {primary_metric: accuracy, goal: maximize}
        limits: {max_total_trials: 3, max_concurrent_trials: 3}
        experiment_name: sweep-random
        """)
    client = MlflowClient(local_tracking)
    sampled = []
    for _ in range(2):
        handle = run_sweep(load_sweep(path))
        wait_ended(handle)
        runs = children(client, handle.run_id)
        sampled.append([(run.data.params["x"], run.data.params["lr"]) for run in runs])
        assert [run.info.status for run in runs] == ["FINISHED"] * 3
    assert sampled[0] == sampled[1] and len(set(sampled[0])) == 3
    for x, lr in sampled[0]:
        assert 0 <= float(x) <= 1 and 2.4e-3 < float(lr) < 0.37
    # the value reached the command line of the trial, as its console log shows
    console = Path(client.download_artifacts(runs[0].info.run_id, "user_logs/std_log.txt", str(tmp_path / "c")))
    assert f"x={sampled[1][0][0]} lr={sampled[1][0][1]}" in console.read_text()
    # no trial logged the primary metric: the parent says so instead of naming a best trial
    parent = client.get_run(handle.run_id)
    assert parent.info.status == "FINISHED" and BEST_RUN_TAG not in parent.data.tags
    assert parent.data.tags["best_metric_status"] == "Failed"
    assert "no trial logged the primary metric 'accuracy'" in parent.data.tags[PROBLEM_TAG]


def test_bandit_cancels_the_bad_trial_and_the_stored_histories_justify_it(tmp_path, local_tracking):
    spec = load_sweep(write_sweep(tmp_path / "bandit", """\
        type: sweep
        sampling_algorithm: grid
        trial:
          code: .
          command: python trial.py --case ${{search_space.case}} --reports ${{search_space.reports}} --pause 0.25
        search_space:
          case: {type: choice, values: [bad, good]}
          reports: {type: choice, values: [120]}
        objective: {primary_metric: loss, goal: minimize}
        early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 2}
        limits: {max_total_trials: 2, max_concurrent_trials: 2, trial_timeout: 200}
        experiment_name: sweep-bandit
        """))
    handle = run_sweep(spec)  # the good trial reports 5x faster: it reaches every interval the bad one reaches
    wait_ended(handle)
    bad, good = handle.trials
    assert bad.status == "KILLED", f"bad trial {bad.status}; log:\n" + "\n".join(handle.log_lines)
    assert good.status == "FINISHED" and good.cancellation is None
    client = MlflowClient(local_tracking)
    stored = {run.info.run_id: run for run in children(client, handle.run_id)}
    bad_run = stored[bad.run_id]
    assert bad_run.info.status == "KILLED"
    assert bad_run.data.tags[CANCEL_REASON_TAG].startswith("bandit policy at interval")
    assert bad_run.data.tags["azureml.sweep.early_termination.policy"] == "bandit"
    assert int(bad_run.data.tags["azureml.sweep.early_termination.interval"]) == bad.cancellation.interval
    histories = {run_id: history(client, run_id) for run_id in stored}
    assert spec.early_termination.verify(bad.cancellation, histories, "minimize")
    assert len(histories[bad.run_id]) < 120  # it really stopped early
    parent = client.get_run(handle.run_id)
    assert parent.data.tags[BEST_RUN_TAG] == good.run_id
    assert '"early_terminated": 1' in parent.data.tags[SUMMARY_TAG]
    log = "\n".join(handle.log_lines)
    assert f"[EARLY_TERMINATION][INFO]Cancelling job '{handle.name}_0'" in log


def test_cancelling_the_sweep_cancels_every_running_trial(tmp_path, local_tracking):
    spec = load_sweep(write_sweep(tmp_path / "cancel", """\
        type: sweep
        sampling_algorithm: grid
        trial:
          code: .
          command: echo ${{search_space.case}} && sleep 120
        search_space:
          case: {type: choice, values: [a, b, c]}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 3, max_concurrent_trials: 2}
        experiment_name: sweep-cancel
        """))
    handle = run_sweep(spec)
    deadline = time.monotonic() + 120
    while sum(trial.status == "RUNNING" for trial in handle.trials) < 2:
        assert time.monotonic() < deadline, handle.log_lines
        time.sleep(0.2)
    process_groups = [pid for trial in handle.trials for pid in trial.handle.pids]
    handle.cancel()
    assert handle.get_status() == "KILLED" and not handle.wait()
    client = MlflowClient(local_tracking)
    parent = client.get_run(handle.run_id)
    assert parent.info.status == "KILLED" and parent.data.tags[CANCEL_REASON_TAG] == "cancelled by the user"
    runs = children(client, handle.run_id)
    assert len(runs) == 2  # the third trial never started
    for run in runs:
        assert run.info.status == "KILLED"
        assert run.data.tags[CANCEL_REASON_TAG] == "sweep cancelled: cancelled by the user"
    for pid in process_groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_trial_timeout_and_sweep_timeout_kill_with_their_reasons(tmp_path, local_tracking):
    spec = load_sweep(write_sweep(tmp_path / "timeouts", """\
        type: sweep
        sampling_algorithm: {type: random, seed: 3}
        trial:
          code: .
          command: echo ${{search_space.x}} && sleep 120
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 50, max_concurrent_trials: 2, timeout: 10, trial_timeout: 2}
        experiment_name: sweep-timeouts
        """))
    started = time.monotonic()
    handle = run_sweep(spec)
    wait_ended(handle, 120)
    assert time.monotonic() - started < 100
    client = MlflowClient(local_tracking)
    parent = client.get_run(handle.run_id)
    assert parent.info.status == "KILLED"
    assert parent.data.tags[CANCEL_REASON_TAG] == "timeout: the sweep exceeded its limit of 10 s"
    runs = children(client, handle.run_id)
    reasons = [run.data.tags.get(CANCEL_REASON_TAG, "") for run in runs]
    assert all(run.info.status == "KILLED" for run in runs)
    assert "timeout: the run exceeded its limit of 2 s" in reasons  # trial_timeout
    assert all(reason in ("timeout: the run exceeded its limit of 2 s",
                          "sweep cancelled: timeout: the sweep exceeded its limit of 10 s") for reason in reasons)
    assert max_overlap(runs) <= 2


def test_bad_input_fails_before_any_run_exists(tmp_path, local_tracking):
    path = write_sweep(tmp_path / "bad", """\
        type: sweep
        sampling_algorithm: grid
        name: my-sweep
        trial:
          code: .
          command: echo ${{search_space.case}}
        search_space:
          case: {type: choice, values: [a]}
        objective: {primary_metric: loss, goal: minimize}
        experiment_name: sweep-bad
        """)
    client = MlflowClient(local_tracking)
    with pytest.raises(Exception, match="nope-cluster"):
        run_sweep(load_sweep(path, ["compute=nope-cluster"]))
    assert client.get_experiment_by_name("sweep-bad") is None
    handle = run_sweep(load_sweep(path))
    wait_ended(handle)
    assert handle.name == "my-sweep"
    experiment = client.get_experiment_by_name("sweep-bad")
    before = client.search_runs([experiment.experiment_id])
    with pytest.raises(Exception, match="'my-sweep' already exists"):
        run_sweep(load_sweep(path))
    assert len(client.search_runs([experiment.experiment_id])) == len(before) == 2


def test_cli_detached_sweep_is_cancelled_by_job_cancel(tmp_path, local_tracking):
    path = write_sweep(tmp_path / "detached", """\
        type: sweep
        sampling_algorithm: grid
        trial:
          code: .
          command: echo ${{search_space.case}} && sleep 120
        search_space:
          case: {type: choice, values: [a, b, c]}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 3, max_concurrent_trials: 2}
        experiment_name: sweep-detached
        """)
    runner = CliRunner()
    created = runner.invoke(job_cli, ["create", "-f", str(path)])
    assert created.exit_code == 0, created.output
    name = created.stdout.strip()
    client = MlflowClient(local_tracking)
    parent = find_job(client, name)
    deadline = time.monotonic() + 180
    while sum(run.info.status == "RUNNING" for run in children(client, parent.info.run_id)) < 2:
        assert time.monotonic() < deadline, "the detached sweep's trials did not start"
        time.sleep(0.5)
    supervisor = client.get_run(parent.info.run_id).data.tags[SUPERVISOR_TAG]
    cancelled = runner.invoke(job_cli, ["cancel", "-n", name])
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.strip() == "Canceled"
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "KILLED"
    assert parent.data.tags[CANCEL_REASON_TAG] == "canceled with `mlflow-workspace job cancel`"
    runs = children(client, parent.info.run_id)
    assert len(runs) == 2 and all(run.info.status == "KILLED" for run in runs)
    assert all(run.data.tags[CANCEL_REASON_TAG] == "sweep cancelled: canceled with `mlflow-workspace job cancel`"
               for run in runs)
    deadline = time.monotonic() + 60
    while still_running(supervisor):
        assert time.monotonic() < deadline, "the sweep's supervisor is still running"
        time.sleep(0.2)


def test_job_cancel_reaches_the_trials_of_a_sweep_whose_supervisor_was_killed(tmp_path, local_tracking):
    """kill -9 of the detached supervisor: `job show` says so, `job cancel` ends the parent and every trial,
    and every process of the trials (setsid children included) is gone."""
    pids = tmp_path / "pids.txt"
    path = write_sweep(tmp_path / "crashed", f"""\
        type: sweep
        sampling_algorithm: grid
        trial:
          code: .
          command: setsid sleep 300 & echo $! >> {pids} && echo ${{{{search_space.case}}}} && sleep 120
        search_space:
          case: {{type: choice, values: [a, b, c]}}
        objective: {{primary_metric: loss, goal: minimize}}
        limits: {{max_total_trials: 3, max_concurrent_trials: 2}}
        experiment_name: sweep-crashed
        """)
    runner = CliRunner()
    created = runner.invoke(job_cli, ["create", "-f", str(path)])
    assert created.exit_code == 0, created.output
    name = created.stdout.strip()
    client = MlflowClient(local_tracking)
    parent = find_job(client, name)
    deadline = time.monotonic() + 180
    while sum(run.info.status == "RUNNING" for run in children(client, parent.info.run_id)) < 2 or \
            len(pids.read_text().split() if pids.exists() else []) < 2:
        assert time.monotonic() < deadline, "the detached sweep's trials did not start"
        time.sleep(0.5)
    trial_groups = [identity for run in children(client, parent.info.run_id)
                    for identity in run.data.tags["azureml.local.processes"].split(",")]
    supervisor = client.get_run(parent.info.run_id).data.tags[SUPERVISOR_TAG]
    os.kill(int(supervisor.split(":")[0]), 9)
    deadline = time.monotonic() + 30
    while still_running(supervisor):
        assert time.monotonic() < deadline
        time.sleep(0.1)

    shown = json.loads(runner.invoke(job_cli, ["show", "-n", name]).stdout)
    assert shown["status"] == "Running" and shown["launcher"].startswith("gone: the process that ran this job")
    cancelled = runner.invoke(job_cli, ["cancel", "-n", name])
    assert cancelled.exit_code == 0, cancelled.output
    assert client.get_run(parent.info.run_id).info.status == "KILLED"
    runs = children(client, parent.info.run_id)
    assert len(runs) == 2 and all(run.info.status == "KILLED" for run in runs)
    assert all(run.data.tags[CANCEL_REASON_TAG].startswith(f"parent run {parent.info.run_id} cancelled")
               for run in runs)
    escaped = [int(pid) for pid in pids.read_text().split()]
    leaders = [int(identity.split(":")[0]) for identity in trial_groups]
    deadline = time.monotonic() + 30
    while any(process_tree.running(pid) for pid in escaped + leaders):
        assert time.monotonic() < deadline, "processes of the trials are still running"
        time.sleep(0.2)
    assert json.loads(runner.invoke(job_cli, ["show", "-n", name]).stdout)["launcher"] is None


def test_a_sweep_without_a_concurrency_limit_runs_a_bounded_number_at_once_and_none_fails(tmp_path, local_tracking):
    """60 trials of `true` and no max_concurrent_trials: at most this machine's CPUs at once, every trial
    FINISHED (none failed to start), no run left RUNNING."""
    spec = load_sweep(write_sweep(tmp_path / "many", """\
        type: sweep
        sampling_algorithm: random
        trial:
          code: .
          command: "true ${{search_space.x}}"
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 60}
        experiment_name: sweep-many
        """))
    assert spec.limits.max_concurrent_trials == default_concurrent_trials()
    handle = run_sweep(spec)
    wait_ended(handle, 500)
    assert [trial.error for trial in handle.trials if trial.status != "FINISHED"] == []
    client = MlflowClient(local_tracking)
    runs = children(client, handle.run_id)
    assert len(runs) == 60 and {run.info.status for run in runs} == {"FINISHED"}
    assert max_overlap(runs) <= default_concurrent_trials()


def still_running(identity: str) -> bool:
    """The recorded process runs (a zombie, ended but not yet reaped by this test process, does not)."""
    if not alive(identity):
        return False
    stat = Path(f"/proc/{identity.split(':')[0]}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# ------------------------------------------------------------------ Ray
# (fixtures ray_head / ray_workspace: tests/conftest.py)


def test_sweep_on_the_ray_head_runs_every_trial_as_a_ray_job(ray_workspace, tmp_path):
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    spec = load_sweep(write_sweep(tmp_path / "ray", """\
        type: sweep
        sampling_algorithm: grid
        trial:
          code: .
          command: python trial.py --case ${{search_space.case}}
        search_space:
          case: {type: choice, values: [worse, fail, good]}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 3, max_concurrent_trials: 2}
        compute: azureml:fast-cluster
        experiment_name: sweep-ray
        """))
    handle = run_sweep(spec)
    wait_ended(handle, 300)
    client = MlflowClient(ray_workspace)
    runs = children(client, handle.run_id)
    assert [run.info.status for run in runs] == ["FINISHED", "FAILED", "FINISHED"], handle.log_lines
    assert all(run.data.tags["azureml.compute.type"] == "ray" and run.data.tags["ray.job_id"] for run in runs)
    assert max_overlap(runs) <= 2
    parent = client.get_run(handle.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[BEST_RUN_TAG] == runs[2].info.run_id
    assert parent.data.metrics["best_loss"] == pytest.approx(1 + 1 / 3)
    assert client.list_artifacts(runs[2].info.run_id, "outputs")[0].path == "outputs/case.txt"


def test_a_sweep_ends_with_the_python_process_that_runs_it(tmp_path, local_tracking, isolated_workspace):
    path = write_sweep(tmp_path / "exit", """\
        type: sweep
        sampling_algorithm: grid
        name: exiting-sweep
        trial:
          code: .
          command: echo ${{search_space.case}} && sleep 120
        search_space:
          case: {type: choice, values: [a, b, c]}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 3, max_concurrent_trials: 2}
        experiment_name: sweep-exit
        """)
    script = tmp_path / "exit" / "driver.py"
    script.write_text(textwrap.dedent(f"""\
        import sys, time
        from mlflow_workspace_plugin.jobs.sweep import load_sweep
        from mlflow_workspace_plugin.jobs.sweep.controller import run_sweep
        handle = run_sweep(load_sweep({str(path)!r}))
        while sum(t.status == "RUNNING" for t in handle.trials) < 2:
            time.sleep(0.2)
        print("pids", *[pid for t in handle.trials for pid in t.handle.pids], flush=True)
        sys.exit(0)  # with the sweep still running
        """))
    env = {**os.environ, "MLFLOW_WORKSPACE_HOME": str(isolated_workspace)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(local_tracking)
    parent = find_job(client, "exiting-sweep")
    assert parent.info.status == "KILLED"
    assert parent.data.tags[CANCEL_REASON_TAG] == "the process that ran the sweep exited"
    runs = children(client, parent.info.run_id)
    assert len(runs) == 2 and {run.info.status for run in runs} == {"KILLED"}
    assert {run.data.tags[CANCEL_REASON_TAG] for run in runs} == {
        "sweep cancelled: the process that ran the sweep exited"}
    pids = [int(pid) for pid in done.stdout.split("pids", 1)[1].split()]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_trials_that_cannot_start_count_as_failed_and_fail_the_sweep(tmp_path, local_tracking):
    with socket.socket() as probe:  # a port nobody listens on: every trial's input download is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = load_sweep(write_sweep(tmp_path / "unstartable", f"""\
        type: sweep
        sampling_algorithm: grid
        trial:
          code: .
          command: cat ${{{{inputs.data}}}} ${{{{search_space.case}}}}
        inputs:
          data: {{type: uri_file, path: "http://127.0.0.1:{port}/data.csv"}}
        search_space:
          case: {{type: choice, values: [a, b, c]}}
        objective: {{primary_metric: loss, goal: minimize}}
        limits: {{max_total_trials: 3, max_concurrent_trials: 2}}
        experiment_name: sweep-unstartable
        """))
    handle = run_sweep(spec)
    wait_ended(handle, 120)
    assert handle.get_status() == "FAILED" and not handle.wait()
    assert [(trial.status, trial.run_id) for trial in handle.trials] == [("FAILED", None)] * 3
    assert all(f"127.0.0.1:{port}" in trial.error for trial in handle.trials)
    client = MlflowClient(local_tracking)
    parent = client.get_run(handle.run_id)
    assert parent.info.status == "FAILED" and '"failed": 3' in parent.data.tags[SUMMARY_TAG]
    assert children(client, handle.run_id) == []
    assert sum("[SCHEDULER][ERROR]Failed to schedule job" in line for line in handle.log_lines) == 3
