"""Sweep controller efficiency and early-termination savings, measured with the real controller on a
private local workspace (``run_sweep`` -> ``submit_job`` -> one local subprocess per trial, child runs in
the store).

    python benchmarks/sweep.py [--reports 8] [--report-seconds 1.0]

(a) **Efficiency**: 16 trials that each sleep 2 s and then log one metric through MLflow, concurrency 4
    (grid over ``index: choice [0..15]``). Ideal = 16 x 2 s / 4 = 8 s; actual = wall time from
    ``run_sweep`` to the parent run's end. Each trial's overhead (its child run's duration minus 2 s) is
    split from the stored runs and the trial's own timestamps into: launch (child run created -> trial
    script's first line: code copy, spawn, interpreter start), ``from mlflow import MlflowClient``
    inside the trial, and the rest (the metric's timestamp -> child run ended: the trial opens the
    tracking store, logs, exits, and the job layer uploads the logs and ends the run). Baseline: one
    wave of 4 bare processes of the same script (no controller, no job layer), started just before the
    sweep. ``import mlflow`` is also timed once on its own in a fresh interpreter, and the efficiency is
    printed a second time counting that import as part of each trial's work (ideal = 16 x (2 s + import) / 4).

(b) **Early termination**: the same 16-trial grid twice, without and with ``median_stopping``
    (``evaluation_interval: 1``, ``delay_evaluation: 2``), on a synthetic objective (minimize
    ``loss``; grid ``seed: [0..7]`` x ``quality: [good, bad]``, so good and bad trials alternate).
    A trial reports ``loss = level + 0.5 / k`` at reports k = 1..8, one every ``--report-seconds``,
    ``level = 0.1 + 0.005 seed`` (good) or ``1.0 + 0.005 seed`` (bad): half the trials are clearly
    worse and the unique best is ``good, seed 0``. Trial-seconds = the sum of the child runs'
    ``end_time - start_time`` from the store (``search_runs`` on ``mlflow.parentRunId``).

Last line: ``sweep: <ideal / actual wall time of (a)>x`` (target >= 0.8; (b) target: >= 30 % of the
trial-seconds saved with the same best trial).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

TRIALS = 16
CONCURRENCY = 4
SLEEP_SECONDS = 2.0

SLEEP_TRIAL = """\
import os, sys, time
script_start = time.time()
time.sleep(2)
started = time.perf_counter()
from mlflow import MlflowClient
from mlflow.entities import Metric
imported = time.perf_counter() - started
now = int(time.time() * 1000)
MlflowClient().log_batch(os.environ["MLFLOW_RUN_ID"], metrics=[
    Metric("done", 1.0, now, 0), Metric("mlflow_import_s", imported, now, 0),
    Metric("script_start_s", script_start, now, 0)])
"""

OBJECTIVE_TRIAL = """\
import argparse, os, time
parser = argparse.ArgumentParser()
parser.add_argument("--quality", choices=["good", "bad"], required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--reports", type=int, required=True)
parser.add_argument("--pause", type=float, required=True)
args = parser.parse_args()
from mlflow import MlflowClient
client, run_id = MlflowClient(), os.environ["MLFLOW_RUN_ID"]
level = (0.1 if args.quality == "good" else 1.0) + 0.005 * args.seed
for k in range(1, args.reports + 1):
    time.sleep(args.pause)  # one synthetic epoch
    client.log_metric(run_id, "loss", level + 0.5 / k, step=k)
"""


def write_sweep(folder: Path, name: str, script: str, body: dict) -> Path:
    """``folder/<name>.yml`` holding ``body``, with its trial script next to it (the trial's ``code``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(script, encoding="utf-8")
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def sweep_body(command: str, search_space: dict, objective: dict, experiment: str, **extra) -> dict:
    return {
        "type": "sweep",
        "sampling_algorithm": "grid",
        "trial": {"code": ".", "command": command},
        "search_space": search_space,
        "objective": objective,
        "limits": {"max_total_trials": TRIALS, "max_concurrent_trials": CONCURRENCY,
                   "timeout": 900, "trial_timeout": 300},
        "compute": "local",
        "experiment_name": experiment,
        **extra,
    }


def mlflow_import_seconds() -> float:
    """``import mlflow`` alone in a fresh interpreter (no other trial running)."""
    code = "import time; t = time.perf_counter(); import mlflow; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return float(result.stdout.strip().splitlines()[-1])


def run_and_wait(spec, name: str, workspace) -> tuple[object, float]:
    """Run the sweep; (its handle, wall seconds from ``run_sweep`` to the parent's end)."""
    from mlflow_workspace_plugin.jobs.sweep import run_sweep

    started = time.perf_counter()
    handle = run_sweep(spec, workspace=workspace, name=name)
    if not handle.wait_for(900):
        handle.cancel()
        raise SystemExit(f"sweep {name} did not end within 900 s")
    elapsed = time.perf_counter() - started
    if handle.get_status() != "FINISHED":
        raise SystemExit(f"sweep {name} ended {handle.get_status()}:\n" + "\n".join(handle.log_lines[-20:]))
    return handle, elapsed


def child_runs(client, parent_run_id: str) -> list:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=1000)
    if len(runs) != TRIALS:
        raise SystemExit(f"expected {TRIALS} child runs of {parent_run_id}, found {len(runs)}")
    return runs


def duration(run) -> float:
    return (run.info.end_time - run.info.start_time) / 1000


def span(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"


def bare_wave(folder: Path, client, tracking_uri: str) -> list[dict[str, float]]:
    """The baseline without the sweep controller and the job layer: the same trial script as
    ``CONCURRENCY`` plain subprocesses started at once, each logging into a run created for it."""
    experiment_id = client.create_experiment("bench-sweep-bare")
    results: list[dict[str, float]] = [{} for _ in range(CONCURRENCY)]

    def one(slot: int) -> None:
        run_id = client.create_run(experiment_id).info.run_id
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id}
        spawned = time.time()
        subprocess.run([sys.executable, "trial.py"], cwd=folder, env=env, check=True, timeout=300)
        results[slot] = {"spawned": spawned, "exited": time.time(), "run_id": run_id}

    threads = [threading.Thread(target=one, args=(slot,)) for slot in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = []
    for result in results:
        run = client.get_run(result["run_id"])
        client.set_terminated(result["run_id"], "FINISHED")
        (logged,) = client.get_metric_history(result["run_id"], "done")
        rows.append({"total": result["exited"] - result["spawned"],
                     "launch": run.data.metrics["script_start_s"] - result["spawned"],
                     "import": run.data.metrics["mlflow_import_s"],
                     "after_log": result["exited"] - logged.timestamp / 1000})
    return rows


def sweep_trial_rows(client, runs) -> list[dict[str, float]]:
    rows = []
    for run in runs:
        (logged,) = client.get_metric_history(run.info.run_id, "done")
        rows.append({"total": duration(run),
                     "launch": run.data.metrics["script_start_s"] - run.info.start_time / 1000,
                     "import": run.data.metrics["mlflow_import_s"],
                     "after_log": (run.info.end_time - logged.timestamp) / 1000})
    return rows


def efficiency_part(root: Path, workspace, client, import_once: float) -> float:
    from mlflow_workspace_plugin.jobs.sweep import load_sweep

    command = f"{shlex.quote(sys.executable)} trial.py --index ${{{{search_space.index}}}}"  # the script ignores it
    path = write_sweep(root / "efficiency", "sweep-sleep", SLEEP_TRIAL, sweep_body(
        command, {"index": {"type": "choice", "values": list(range(TRIALS))}},
        {"primary_metric": "done", "goal": "maximize"}, "bench-sweep-efficiency"))
    bare = bare_wave(path.parent, client, workspace.get_mlflow_tracking_uri())
    handle, actual = run_and_wait(load_sweep(path), "bench-sweep-efficiency", workspace)
    runs = child_runs(client, handle.run_id)
    ours = sweep_trial_rows(client, runs)
    ideal = TRIALS * SLEEP_SECONDS / CONCURRENCY
    ideal_with_import = TRIALS * (SLEEP_SECONDS + import_once) / CONCURRENCY
    busy = sum(row["total"] for row in ours) / (CONCURRENCY * actual)
    print(f"(a) {TRIALS} trials x sleep {SLEEP_SECONDS:.0f} s + log one metric through MLflow, concurrency "
          f"{CONCURRENCY}, local")
    print(f"    actual wall time (run_sweep -> parent ended)   {actual:6.2f} s")
    print(f"    ideal (16 x 2 s / 4)                            {ideal:6.2f} s  -> efficiency {ideal / actual:.2f}")
    print(f"    'import mlflow' alone, fresh interpreter         {import_once:6.2f} s")
    print(f"    ideal counting that import as trial work        {ideal_with_import:6.2f} s  -> efficiency "
          f"{ideal_with_import / actual:.2f}")
    print(f"    per trial, median s (min-max)   sweep trial run ({TRIALS})   bare process ({CONCURRENCY} at once, "
          "no controller, no job layer)")
    labels = {"total": "total (run start / spawn -> end)", "overhead": "overhead (total - 2 s sleep)",
              "launch": "  start -> script's first line", "import": "  from mlflow import MlflowClient",
              "after_log": "  open store, log, exit -> end"}
    for row in (*ours, *bare):
        row["overhead"] = row["total"] - SLEEP_SECONDS
    for key, label in labels.items():
        print(f"      {label:<34}{span([row[key] for row in ours]):>20}   {span([row[key] for row in bare]):>20}")
    print(f"    slots busy with a trial run: {sum(row['total'] for row in ours):.1f} trial-s / "
          f"({CONCURRENCY} x {actual:.1f} s) = {busy:.2f}")
    return ideal / actual


def early_termination_part(root: Path, workspace, client, reports: int, pause: float) -> None:
    from mlflow_workspace_plugin.jobs.sweep import load_sweep

    command = (f"{shlex.quote(sys.executable)} trial.py --quality ${{{{search_space.quality}}}} "
               f"--seed ${{{{search_space.seed}}}} --reports {reports} --pause {pause}")
    space = {"seed": {"type": "choice", "values": list(range(TRIALS // 2))},
             "quality": {"type": "choice", "values": ["good", "bad"]}}
    objective = {"primary_metric": "loss", "goal": "minimize"}
    policy = {"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 2}
    variants = {
        "no early termination": sweep_body(command, space, objective, "bench-sweep-objective"),
        "median_stopping": sweep_body(command, space, objective, "bench-sweep-objective", early_termination=policy),
    }
    results = {}
    for label, body in variants.items():
        name = "bench-sweep-" + ("median" if "median" in label else "plain")
        path = write_sweep(root / name, name, OBJECTIVE_TRIAL, body)
        handle, wall = run_and_wait(load_sweep(path), name, workspace)
        runs = child_runs(client, handle.run_id)
        parent = client.get_run(handle.run_id)
        best = client.get_run(parent.data.tags["best_child_run_id"])
        killed = [run for run in runs if run.info.status == "KILLED"]
        after_first = []
        for run in runs:
            points = client.get_metric_history(run.info.run_id, "loss")
            first = min(point.timestamp for point in points) if points else run.info.start_time
            after_first.append((run.info.end_time - first) / 1000)
        results[label] = {
            "wall": wall, "trial_s": sum(duration(run) for run in runs), "after_first": sum(after_first),
            "best": (best.data.params["quality"], best.data.params["seed"]), "score": parent.data.tags["score"],
            "killed": len(killed), "killed_good": sum(1 for run in killed if run.data.params["quality"] == "good"),
        }
    print(f"(b) {TRIALS} trials (8 good, 8 clearly worse), {reports} reports of 'loss' {pause:g} s apart, "
          f"concurrency {CONCURRENCY}, grid")
    print(f"    {'':<22}{'wall s':>8}{'trial-s':>9}{'trial-s after 1st report':>26}{'killed':>8}   best trial (score)")
    for label, row in results.items():
        print(f"    {label:<22}{row['wall']:>8.1f}{row['trial_s']:>9.1f}{row['after_first']:>26.1f}"
              f"{row['killed']:>4} ({row['killed_good']} good)   {row['best'][0]}, seed {row['best'][1]} "
              f"({float(row['score']):.4f})")
    plain, median = results["no early termination"], results["median_stopping"]
    saved = 1 - median["trial_s"] / plain["trial_s"]
    saved_training = 1 - median["after_first"] / plain["after_first"]
    same = plain["best"] == median["best"] and plain["score"] == median["score"]
    print(f"    trial-seconds saved by median_stopping: {saved:.0%} "
          f"({plain['trial_s'] - median['trial_s']:.1f} of {plain['trial_s']:.1f} s; "
          f"after the first report: {saved_training:.0%}); same best trial: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=8, help="reports of the objective per trial in (b)")
    parser.add_argument("--report-seconds", type=float, default=1.0, help="seconds between two reports in (b)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_WORKSPACE_CONFIG", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        os.environ.pop(key, None)
    os.environ["MLFLOW_WORKSPACE_HOME"] = str(root / "workspace")  # a private local workspace
    try:
        import_once = mlflow_import_seconds()
        from mlflow import MlflowClient

        from mlflow_workspace_plugin import Workspace

        logging.getLogger("mlflow.projects.azureml").setLevel(logging.WARNING)  # quiet: one INFO line per trial
        workspace = Workspace.from_config()
        client = MlflowClient(workspace.get_mlflow_tracking_uri())
        efficiency = efficiency_part(root, workspace, client, import_once)
        early_termination_part(root, workspace, client, args.reports, args.report_seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"sweep: {efficiency:.2f}x")


if __name__ == "__main__":
    main()
