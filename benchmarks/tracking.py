"""Tracking overhead of the ``azureml://`` plugin vs plain ``http://`` to the same MLflow server.

One ``mlflow server`` (SQLite, 1 worker, proxied artifacts) and the test front door (as its own
process, checking the bearer token) run on 127.0.0.1. The same workload goes to one run through
``azureml://127.0.0.1:<front door>/mlflow/v1.0/...`` and to another run straight over
``http://127.0.0.1:<server>``. After the server is idle and both paths are warmed up (100 untimed
``log_metric`` calls each), every phase runs in halves in A-B-B-A order so drift hits both alike.

Workload per target (what user code does, via ``MlflowClient`` calls that the fluent API wraps):

* ``log_metric`` x 2,000 - synchronous, one request per point: a training loop calling
  ``mlflow.log_metric`` (the per-request path, where the plugin adds the most: URI mapping, token
  lookup and the gateway hop);
* ``log_batch`` with the same 2,000 points in chunks of 1,000 (MLflow's per-request limit): how
  bulk/async loggers send metrics;
* ``log_param`` x 100 and ``log_artifact`` x 50 small files (proxied artifact uploads).

Every timed phase ends with ``get_run`` on its run, so times are *until the server has the data*:
the plugin journals log calls and sends them in batches in the background (see README "Reliable
logging"), and a read waits for the run's pending data; over plain http each call is already
synchronous. Prints per-phase times and ratios; the last line is ``tracking: <direct time / plugin time>x``
(above 1 means the plugin path is faster). Usage: ``python benchmarks/tracking.py``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlflow_workspace_plugin.testing import servers as ws_servers

METRIC_POINTS = 2_000
BATCH_CHUNK = 1_000
PARAMS = 100
ARTIFACTS = 50
WARMUP = 100


def _halves(count: int) -> tuple[range, range]:
    return range(0, count // 2), range(count // 2, count)


def _phases(tmp: Path) -> list[tuple[str, Callable]]:
    """Each phase is ``fn(client, run_id, half)``; the two halves together are the full workload."""
    from mlflow.entities import Metric

    files = []
    for i in range(ARTIFACTS):
        path = tmp / "files" / f"artifact_{i:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"small artifact {i}\n" * 20)
        files.append(path)

    def log_metric(client, run_id: str, half: int) -> None:
        for step in _halves(METRIC_POINTS)[half]:
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)

    def log_batch(client, run_id: str, half: int) -> None:
        now = int(time.time() * 1000)
        points = [Metric("batched", float(i), now, i) for i in _halves(METRIC_POINTS)[half]]
        for start in range(0, len(points), BATCH_CHUNK):
            client.log_batch(run_id, metrics=points[start:start + BATCH_CHUNK])

    def log_param(client, run_id: str, half: int) -> None:
        for i in _halves(PARAMS)[half]:
            client.log_param(run_id, f"param_{i:03d}", i)

    def log_artifact(client, run_id: str, half: int) -> None:
        for i in _halves(ARTIFACTS)[half]:
            client.log_artifact(run_id, str(files[i]), "small")

    return [(f"log_metric x{METRIC_POINTS}", log_metric),
            (f"log_batch {METRIC_POINTS} ({METRIC_POINTS // BATCH_CHUNK}x{BATCH_CHUNK})", log_batch),
            (f"log_param x{PARAMS}", log_param),
            (f"log_artifact x{ARTIFACTS}", log_artifact)]


def main() -> None:
    from mlflow import MlflowClient

    token = "bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["MLFLOW_WORKSPACE_HOME"] = str(tmp / "workspace-home")
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
        with ws_servers.server_behind_front_door(tmp / "server", token) as (server, door):
            targets = {"direct http": MlflowClient(server.url),
                       "plugin": MlflowClient(ws_servers.workspace_uri(door.port))}
            runs = {}
            for name, client in targets.items():
                exp_id = client.create_experiment(f"bench-{name.replace(' ', '-')}")
                runs[name] = client.create_run(exp_id).info.run_id
                for step in range(WARMUP):  # connections, server-side caches, version probe
                    client.log_metric(runs[name], "warmup", 0.0, step=step)

            phases = _phases(tmp)
            times = {name: [0.0] * len(phases) for name in targets}
            for index, (_, phase) in enumerate(phases):
                # A-B-B-A: each target runs one half first and one half second, cancelling drift.
                for half, order in enumerate((list(targets), list(reversed(targets)))):
                    for name in order:
                        started = time.perf_counter()
                        phase(targets[name], runs[name], half)
                        # until durable: the plugin journals and sends in the background, and a
                        # read of the run waits for that run's pending data (read-your-writes)
                        targets[name].get_run(runs[name])
                        times[name][index] += time.perf_counter() - started

            for name, client in targets.items():  # sanity: both runs hold the same data
                data = client.get_run(runs[name]).data
                assert len(data.params) == PARAMS and {"loss", "batched"} <= set(data.metrics)
                assert len(client.get_metric_history(runs[name], "loss")) == METRIC_POINTS
                assert len(client.list_artifacts(runs[name], "small")) == ARTIFACTS
                client.set_terminated(runs[name])

    print(f"{'phase':<28}{'direct http':>13}{'plugin':>10}{'ratio':>8}")
    for index, (label, _) in enumerate(phases):
        direct, plugin = times["direct http"][index], times["plugin"][index]
        print(f"{label:<28}{direct:>12.2f}s{plugin:>9.2f}s{direct / plugin:>7.2f}x")
    direct_total, plugin_total = sum(times["direct http"]), sum(times["plugin"])
    print(f"{'total':<28}{direct_total:>12.2f}s{plugin_total:>9.2f}s{direct_total / plugin_total:>7.2f}x")
    print(f"tracking: {direct_total / plugin_total:.2f}x")


if __name__ == "__main__":
    main()
