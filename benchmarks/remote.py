"""Remote dispatch latency: a trivial project through MLflow's ``local`` backend, the ``azureml``
backend's local dispatch, and the ``azureml`` backend on a Ray compute target (a private loopback
Ray head this script starts and stops), interleaved, against one local workspace.

    python benchmarks/remote.py [--runs 5]

For each: submit->RUNNING (``projects.run(synchronous=False)`` returned / the Ray job reports
RUNNING) and submit->FINISHED (``wait()`` returned, run final in the store). A last row measures
Ray's ``pip`` runtime env (the project's conda.yaml): its first, cold, build and warm reuse.

The floor is a **bare Ray job** of the same command (``python script.py`` with the project folder as
``working_dir``, no MLflow run, no capture): the ``azureml`` Ray run's overhead over it is what the
plugin adds (run creation, snapshot zip, the job runner, capture uploads, final status).

Last line: ``remote: <bare Ray job FINISHED median / azureml Ray FINISHED median>x`` (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = "print('hello from a trivial project')\n"
LOGGING_SCRIPT = "import mlflow\nmlflow.log_metric('loss', 0.5)\nprint('logged')\n"
MLPROJECT = 'name: trivial\nentry_points:\n  main:\n    command: "python script.py"\n'
CONDA = "name: trivial\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n      - mlflow>=3.0,<4\n"


def write_projects(root: Path) -> tuple[Path, Path]:
    plain, with_env = root / "trivial", root / "trivial-pip"
    for folder in (plain, with_env):
        folder.mkdir(parents=True)
        (folder / "script.py").write_text(SCRIPT)
        (folder / "MLproject").write_text(MLPROJECT if folder is plain else MLPROJECT + "conda_env: conda.yaml\n")
    (with_env / "conda.yaml").write_text(CONDA)
    return plain, with_env


def write_logging_project(root: Path) -> Path:
    """A typical MLflow project: imports MLflow and logs a metric."""
    folder = root / "logging"
    folder.mkdir(parents=True)
    (folder / "script.py").write_text(LOGGING_SCRIPT)
    (folder / "MLproject").write_text(MLPROJECT.replace("trivial", "logging"))
    return folder


def timed_bare(project: Path, job_client) -> tuple[float, float]:
    """(submit->RUNNING, submit->SUCCEEDED) of a bare Ray job running the same command."""
    started = time.perf_counter()
    import mlflow

    # the same tracking store: a command that logs creates its own run there
    env_vars = {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    job_id = job_client.submit_job(entrypoint="python script.py",
                                   runtime_env={"working_dir": str(project), "env_vars": env_vars})
    while job_client.get_job_status(job_id) == "PENDING":
        time.sleep(0.02)
    running = time.perf_counter() - started
    while not job_client.get_job_status(job_id).is_terminal():
        time.sleep(0.02)
    assert job_client.get_job_status(job_id) == "SUCCEEDED", job_client.get_job_logs(job_id)
    return running, time.perf_counter() - started


def timed(project: Path, kind: str, job_client) -> tuple[float, float]:
    """(submit->RUNNING, submit->FINISHED) seconds for one run of ``kind``."""
    import mlflow

    if kind.startswith("bare-ray-job"):
        return timed_bare(project, job_client)

    backend, config = {
        "mlflow-local": ("local", {}),
        "azureml-local": ("azureml", {"USE_CONDA": False, "STREAM_OUTPUT": False}),
        "azureml-ray": ("azureml", {"COMPUTE": "ray-inherit", "STREAM_OUTPUT": False}),
        "azureml-ray-logging": ("azureml", {"COMPUTE": "ray-inherit", "STREAM_OUTPUT": False}),
        "azureml-ray-pip": ("azureml", {"COMPUTE": "ray-pip", "STREAM_OUTPUT": False}),
    }[kind]
    extra = {"env_manager": "local"} if kind in ("mlflow-local", "azureml-local") else {}
    started = time.perf_counter()
    submitted = mlflow.projects.run(str(project), backend=backend, backend_config=config,
                                    parameters={}, synchronous=False, **extra)
    running = time.perf_counter() - started
    if kind.startswith("azureml-ray"):
        while job_client.get_job_status(submitted.job_id) == "PENDING":
            time.sleep(0.02)
        running = time.perf_counter() - started
    assert submitted.wait(), f"{kind} run {submitted.run_id} did not finish"
    finished = time.perf_counter() - started
    if kind in RUNNER_OVERHEAD:
        RUNNER_OVERHEAD[kind].append(runner_overhead(job_client.get_job_logs(submitted.job_id)))
    return running, finished


RUNNER_OVERHEAD: dict[str, list[tuple[float, float]]] = {"azureml-ray": [], "azureml-ray-logging": []}


def runner_overhead(log: str) -> tuple[float, float]:
    """(before, after the command) seconds from the job runner's last line."""
    found = re.search(r"job runner overhead: ([0-9.]+) s before the command, ([0-9.]+) s after it", log)
    assert found, f"no job runner overhead line in the job log:\n{log[-1500:]}"
    return float(found.group(1)), float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    # MLflow's own local backend starts asynchronous runs as an `mlflow run` subprocess found on
    # PATH: give the baseline this interpreter's `mlflow` when the venv is not activated
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

    import mlflow
    from ray.job_submission import JobSubmissionClient

    from mlflow_workspace_plugin import Workspace
    from mlflow_workspace_plugin.compute.ray_head import LocalRayHead

    plain, with_env = write_projects(scratch / "projects")
    logging_project = write_logging_project(scratch / "projects")
    with LocalRayHead(num_cpus=2) as head:
        config = scratch / "config.json"
        config.write_text(json.dumps({"workspace_name": "bench", "local_path": str(scratch / "ws"), "compute": {
            "ray-inherit": {"type": "ray", "address": head.address, "environment": "inherit"},
            "ray-pip": {"type": "ray", "address": head.address, "environment": "pip"}}}))
        os.environ["MLFLOW_WORKSPACE_CONFIG"] = str(config)
        mlflow.set_tracking_uri(Workspace.from_config().get_mlflow_tracking_uri())
        client = JobSubmissionClient(head.address)
        kinds = {"mlflow-local": plain, "azureml-local": plain, "bare-ray-job": plain, "azureml-ray": plain,
                 "bare-ray-job-logging": logging_project, "azureml-ray-logging": logging_project}
        results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for kind, project in kinds.items():  # warm-up: imports, SQLite, Ray worker start
            timed(project, kind, client)
        for values in RUNNER_OVERHEAD.values():
            values.clear()
        cold_pip = timed(with_env, "azureml-ray-pip", client)
        for _ in range(args.runs):
            for kind, project in kinds.items():
                results[kind].append(timed(project, kind, client))
        results["azureml-ray-pip"] = [timed(with_env, "azureml-ray-pip", client) for _ in range(args.runs)]

    print(f"{'backend':<22}{'->RUNNING med':>15}{'->FINISHED med':>16}{'min':>8}{'max':>8}   (n={args.runs}, s)")
    for kind, values in results.items():
        finished = [v[1] for v in values]
        print(f"{kind:<22}{statistics.median(v[0] for v in values):>15.2f}{statistics.median(finished):>16.2f}"
              f"{min(finished):>8.2f}{max(finished):>8.2f}")
    print(f"{'ray pip, cold':<22}{cold_pip[0]:>15.2f}{cold_pip[1]:>16.2f}   (first build of the pip env)")
    for suffix, what in (("-logging", "a project that imports MLflow and logs a metric"),
                         ("", "the trivial project (prints a line)")):
        floor = statistics.median(v[1] for v in results["bare-ray-job" + suffix])
        ours = statistics.median(v[1] for v in results["azureml-ray" + suffix])
        before = statistics.median(b for b, _ in RUNNER_OVERHEAD["azureml-ray" + suffix])
        after = statistics.median(a for _, a in RUNNER_OVERHEAD["azureml-ray" + suffix])
        print(f"overhead over a bare Ray job, {what}: {ours - floor:+.2f} s (job runner, median: {before:.2f} s "
              f"from its start to the command's, {after:.2f} s from the command's end to the final status)")
    bare = statistics.median(v[1] for v in results["bare-ray-job"])
    ray = statistics.median(v[1] for v in results["azureml-ray"])
    print(f"remote: {bare / ray:.2f}x")


if __name__ == "__main__":
    main()
