"""Logging speed: MLflow's REST paths vs the workspace store's journaled, batched logging.

One ``mlflow server`` (SQLite, 1 worker) and the test front door (its own process, checking the
bearer token) run on 127.0.0.1, started as the tests start them. Each path logs 10,000
``MlflowClient.log_metric`` calls (what ``mlflow.log_metric`` does per training step) into its own
run, and we measure:

* time to return - how long the logging loop blocks the caller;
* time to durable - until the server holds every point (checked over plain http afterwards).

Paths: (a) MLflow's synchronous REST path over http (one request per call; measured on 2,000
calls and scaled x5, it runs at ~100 calls/s), (b) MLflow's async logging over http
(``synchronous=False``, durable after ``flush_async_logging``), (c) the workspace store via the
front door (``azureml://``; durable after ``flush_async_logging``).

The last line is ``logging: <(a) time-to-return / (c) time-to-return>x``.
Usage: ``python benchmarks/reliable_logging.py``.
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's ``logging``: keep its folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import secrets  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402

from mlflow_workspace_plugin.testing import servers as ws_servers  # noqa: E402

CALLS = 10_000
SYNC_SAMPLE = 2_000  # (a) is measured on this many calls and scaled to CALLS


@dataclass
class Result:
    name: str
    measured_calls: int
    returned: float  # seconds, scaled to CALLS
    durable: float  # seconds, scaled to CALLS


def _count(server_url: str, run_id: str) -> int:
    reply = requests.get(f"{server_url}/api/2.0/mlflow/metrics/get-history",
                         params={"run_id": run_id, "metric_key": "loss"}, timeout=120)
    reply.raise_for_status()
    return len(reply.json().get("metrics", []))


def _new_run(client, name: str) -> str:
    return client.create_run(client.create_experiment(name)).info.run_id


def measure(name: str, client, server_url: str, calls: int, synchronous: bool) -> Result:
    run_id = _new_run(client, f"bench-{name.split()[0].strip('()')}")
    started = time.perf_counter()
    for step in range(calls):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step, synchronous=synchronous)
    returned = time.perf_counter() - started
    client._tracking_client.store.flush_async_logging()  # no-op for (a); drains (b) and (c)
    durable = time.perf_counter() - started
    stored = _count(server_url, run_id)
    assert stored == calls, f"{name}: server holds {stored} of {calls} points"
    scale = CALLS / calls
    return Result(name, calls, returned * scale, durable * scale)


def main() -> None:
    from mlflow import MlflowClient

    token = "bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-logging-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["MLFLOW_WORKSPACE_HOME"] = str(tmp / "workspace-home")
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
        with ws_servers.server_behind_front_door(tmp / "server", token) as (server, door):
            http = MlflowClient(server.url)
            workspace = MlflowClient(ws_servers.workspace_uri(door.port))
            for client in (http, workspace):  # warm up connections and the server
                warm = _new_run(client, f"warmup-{id(client)}")
                for step in range(50):
                    client.log_metric(warm, "warmup", 0.0, step=step)
                client._tracking_client.store.flush_async_logging()
            results = []
            for name, client, calls, synchronous in (
                ("(a) MLflow sync REST, http", http, SYNC_SAMPLE, True),
                ("(b) MLflow async, http", http, CALLS, False),
                ("(c) workspace store, front door", workspace, CALLS, True),
            ):
                ws_servers.wait_until_idle(server.process, timeout=30)
                results.append(measure(name, client, server.url, calls, synchronous))

    print(f"{CALLS:,} log_metric calls per path (one run each, same server)")
    print(f"{'path':34} {'return s':>10} {'durable s':>10} {'calls/s to return':>18}")
    for r in results:
        note = f"  (measured on {r.measured_calls:,} calls, scaled x{CALLS // r.measured_calls})" \
            if r.measured_calls != CALLS else ""
        print(f"{r.name:34} {r.returned:10.2f} {r.durable:10.2f} {CALLS / r.returned:18,.0f}{note}")
    a, b, c = results
    print(f"(c) vs (a) to return: {a.returned / c.returned:.1f}x faster (target >= 10x)")
    print(f"(c) vs (b) to durable: {c.durable:.2f}s vs {b.durable:.2f}s (target: (c) no slower)")
    print(f"logging: {a.returned / c.returned:.1f}x")


if __name__ == "__main__":
    main()
