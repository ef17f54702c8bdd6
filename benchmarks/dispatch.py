"""Dispatch overhead: the repository's project run N times with MLflow's ``local`` backend and with
the ``azureml`` backend's local dispatch (which adds log capture, snapshot and outputs upload),
interleaved, against the same local workspace store.

    python benchmarks/dispatch.py [--runs 5]

Last line: ``dispatch: <local median / azureml median>x`` (above 1 means azureml is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["MLFLOW_WORKSPACE_HOME"] = tempfile.mkdtemp(prefix="bench-dispatch-")

    import mlflow

    from mlflow_workspace_plugin import Workspace

    mlflow.set_tracking_uri(Workspace.from_config().get_mlflow_tracking_uri())
    timings: dict[str, list[float]] = {"local": [], "azureml": []}
    backend_configs = {"local": {}, "azureml": {"USE_CONDA": False}}
    # one warm-up each (first SQLite/migrations/import costs), then interleave
    for backend in ("local", "azureml"):
        mlflow.projects.run(str(PROJECT), parameters={"alpha": 0.5}, backend=backend,
                            env_manager="local", backend_config=backend_configs[backend])
    for _ in range(args.runs):
        for backend in ("local", "azureml"):
            started = time.perf_counter()
            submitted = mlflow.projects.run(str(PROJECT), parameters={"alpha": 0.5}, backend=backend,
                                            env_manager="local", backend_config=backend_configs[backend])
            timings[backend].append(time.perf_counter() - started)
            assert submitted.get_status() == "FINISHED"

    local, ours = statistics.median(timings["local"]), statistics.median(timings["azureml"])
    print(f"{'backend':<10}{'median s':>10}{'min s':>10}{'max s':>10}   (n={args.runs}, project: {PROJECT.name})")
    for name, values in timings.items():
        print(f"{name:<10}{statistics.median(values):>10.2f}{min(values):>10.2f}{max(values):>10.2f}")
    print(f"azureml / local = {ours / local:.2f} (target <= 1.2)")
    print(f"dispatch: {local / ours:.2f}x")


if __name__ == "__main__":
    main()
