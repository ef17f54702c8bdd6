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
import statistics
import tempfile
import time
from pathlib import Path

SCRIPT = "print('hello from a trivial project')\n"
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


def timed_bare(project: Path, job_client) -> tuple[float, float]:
    """(submit->RUNNING, submit->SUCCEEDED) of a bare Ray job running the same command."""
    started = time.perf_counter()
    job_id = job_client.submit_job(entrypoint="python script.py", runtime_env={"working_dir": str(project)})
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

    if kind == "bare-ray-job":
        return timed_bare(project, job_client)

    backend, config = {
        "mlflow-local": ("local", {}),
        "azureml-local": ("azureml", {"USE_CONDA": False, "STREAM_OUTPUT": False}),
        "azureml-ray": ("azureml", {"COMPUTE": "ray-inherit", "STREAM_OUTPUT": False}),
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
    return running, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-remote-"))

    import mlflow
    from ray.job_submission import JobSubmissionClient

    from mlflow_workspace_plugin import Workspace
    from mlflow_workspace_plugin.compute.ray_head import LocalRayHead

    plain, with_env = write_projects(scratch / "projects")
    with LocalRayHead(num_cpus=2) as head:
        config = scratch / "config.json"
        config.write_text(json.dumps({"workspace_name": "bench", "local_path": str(scratch / "ws"), "compute": {
            "ray-inherit": {"type": "ray", "address": head.address, "environment": "inherit"},
            "ray-pip": {"type": "ray", "address": head.address, "environment": "pip"}}}))
        os.environ["MLFLOW_WORKSPACE_CONFIG"] = str(config)
        mlflow.set_tracking_uri(Workspace.from_config().get_mlflow_tracking_uri())
        client = JobSubmissionClient(head.address)
        kinds = ("mlflow-local", "azureml-local", "bare-ray-job", "azureml-ray")
        results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for kind in kinds:  # warm-up: imports, SQLite, Ray worker start
            timed(plain, kind, client)
        cold_pip = timed(with_env, "azureml-ray-pip", client)
        for _ in range(args.runs):
            for kind in kinds:
                results[kind].append(timed(plain, kind, client))
        results["azureml-ray-pip"] = [timed(with_env, "azureml-ray-pip", client) for _ in range(args.runs)]

    print(f"{'backend':<18}{'->RUNNING med':>15}{'->FINISHED med':>16}{'min':>8}{'max':>8}   (n={args.runs}, s)")
    for kind, values in results.items():
        finished = [v[1] for v in values]
        print(f"{kind:<18}{statistics.median(v[0] for v in values):>15.2f}{statistics.median(finished):>16.2f}"
              f"{min(finished):>8.2f}{max(finished):>8.2f}")
    print(f"{'ray pip, cold':<18}{cold_pip[0]:>15.2f}{cold_pip[1]:>16.2f}   (first build of the pip env)")
    bare = statistics.median(v[1] for v in results["bare-ray-job"])
    ray = statistics.median(v[1] for v in results["azureml-ray"])
    print(f"overhead of an azureml run on Ray over a bare Ray job: {ray - bare:+.2f} s")
    print(f"remote: {bare / ray:.2f}x")


if __name__ == "__main__":
    main()
