"""Cost of the YAML job layer: the same trivial command as ``mlflow-workspace job create --stream`` and as
``mlflow run --backend azureml`` (both wait for the end), submit -> Completed, interleaved, against the
same local workspace. Each is a fresh CLI process, as a user would run it.

    python benchmarks/jobs.py [--runs 5]

Last line: ``jobs: <mlflow run median / job create median>x`` (above 1 means the job is faster; target >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = "python -c \"print('hello from a trivial command')\""


def write_folder(root: Path) -> tuple[Path, Path]:
    """A folder that is both an MLflow project and a job's code; returns (project folder, job file)."""
    project = root / "trivial"
    project.mkdir(parents=True)
    (project / "MLproject").write_text(
        "name: trivial\nentry_points:\n  main:\n    command: " + json.dumps(COMMAND) + "\n", encoding="utf-8")
    job = project / "job.yml"
    job.write_text("code: .\ncommand: " + json.dumps(COMMAND) + "\nexperiment_name: bench-jobs\n", encoding="utf-8")
    return project, job


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "hello from a trivial command" not in result.stdout + result.stderr:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    project, job_file = write_folder(root)
    env = {key: value for key, value in os.environ.items()
           if key not in ("MLFLOW_TRACKING_URI", "MLFLOW_WORKSPACE_CONFIG", "MLFLOW_EXPERIMENT_NAME")}
    env["MLFLOW_WORKSPACE_HOME"] = str(root / "workspace")
    commands = {
        "mlflow run": [sys.executable, "-m", "mlflow", "run", str(project), "--backend", "azureml",
                       "--backend-config", '{"USE_CONDA": false}', "--experiment-name", "bench-jobs"],
        "job create": [sys.executable, "-m", "mlflow_workspace_plugin.cli", "job", "create", "-f", str(job_file),
                       "--stream"],
    }
    for argv in commands.values():  # warm-up: store creation, first imports
        timed(argv, env, root)
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            timings[name].append(timed(argv, env, root))

    baseline, ours = statistics.median(timings["mlflow run"]), statistics.median(timings["job create"])
    print(f"{'command':<12}{'median s':>10}{'min s':>10}{'max s':>10}   (n={args.runs}, submit -> Completed)")
    for name, values in timings.items():
        print(f"{name:<12}{statistics.median(values):>10.2f}{min(values):>10.2f}{max(values):>10.2f}")
    print(f"jobs: {baseline / ours:.2f}x")


if __name__ == "__main__":
    main()
