"""Loopback Ray worker nodes beside a :class:`~.ray_head.LocalRayHead`: a multi-node cluster on one
machine (tests, benchmarks).

``ray start --address=...`` cannot do this on loopback (checked with Ray 2.60): with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` it refuses to add a worker node, with ``=1`` it replaces
``127.0.0.1`` with the machine's routable address and never connects. What works is Ray's own node
API, the way ``ray.cluster_utils.Cluster`` adds nodes: a small launcher process (this module run as
``python -m``) builds a worker ``Node`` with every port free or chosen by the OS, prints ``READY``
and sleeps; its raylet, agents and workers are its descendants, so stopping its session stops the
node. Every socket stays on 127.0.0.1.

Ray's private node API (``ray._private.node.Node``, ``RayParams``) is reached through
:func:`mlflow_workspace_plugin.mlflow_compat.start_ray_worker_node`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.compute.interpreter import interpreter_first_on_path
from mlflow_workspace_plugin.compute.ray_head import HEAD_ENV, LocalRayHead
from mlflow_workspace_plugin.ports import LOOPBACK, free_ports

READY = "READY"
# Health checks every 1 s, dead after 3 misses (Ray: 3 s, 5): a SIGKILLed node was marked dead after
# 8.4 s instead of 16.9 s here (one run each, 2 busy cores). Give it as the head's ``env`` where a lost
# node must end a job quickly (tests).
FAST_NODE_DEATH_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


class LoopbackWorkerNode:
    """One Ray worker node on 127.0.0.1 joined to ``head``; ``start()`` / ``stop()`` or a context manager.

    ``resources`` are custom resources of this node only (e.g. ``{"node_b": 1}``), so a job can be
    pinned to it. Like the head, the node's PATH starts with this interpreter's folder: a job's
    ``python`` on the node is otherwise whatever the PATH finds (without Ray: the job fails with
    ``No module named 'ray'`` right after "Runtime env is setting up"). The node shares the head's
    temp dir (one session dir for the whole cluster). Every node has its own ``node_name``
    (``ray.init(_node_name=...)`` picks it; a driver on a shared IP otherwise attaches to the head's
    raylet, though its process runs where Ray placed it). ``env`` is added to the node's environment
    (the head's ``env`` belongs here too: job supervisors and workers on this node inherit it).
    """

    def __init__(self, head: LocalRayHead, num_cpus: int = 1, num_gpus: int = 0,
                 resources: dict[str, float] | None = None, object_store_mb: int = 100,
                 node_name: str | None = None, env: dict[str, str] | None = None) -> None:
        self.head = head
        self.env = {**head.env, **(env or {})}
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.resources = dict(resources or {})
        self.object_store_mb = object_store_mb
        self.log_dir = Path(tempfile.mkdtemp(prefix="rayw-", dir="/tmp"))
        self.node_name = node_name or self.log_dir.name
        self.process: subprocess.Popen | None = None
        self.node_id: str | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / "node.log"

    def spec(self) -> dict[str, Any]:
        """What the launcher needs: the head's GCS, this node's shape and its free ports."""
        agent, grpc, metrics, runtime_env, object_manager = free_ports(5)
        return {
            "gcs_address": f"{LOOPBACK}:{self.head.port}", "temp_dir": str(self.head.temp_dir),
            "node_name": self.node_name, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
            "resources": self.resources,
            "object_store_memory": self.object_store_mb * 1024 * 1024,
            "dashboard_agent_listen_port": agent, "metrics_agent_port": grpc,
            "metrics_export_port": metrics, "runtime_env_agent_port": runtime_env,
            "object_manager_port": object_manager,
        }

    def start(self, timeout: float = 90.0) -> LoopbackWorkerNode:
        """Launch the node in a session of its own; wait until it printed READY and the head lists it."""
        env = interpreter_first_on_path({**os.environ, **HEAD_ENV, **self.env})
        env.pop("RAY_ADDRESS", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, json.dumps(self.spec())], env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"Ray worker node exited with code {self.process.returncode}:\n{tail}")
            self.node_id = self.node_id or self._ready_id()
            if self.node_id and self.node_id in alive_node_ids(self.head.address):
                return self
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"Ray worker node not registered with {self.head.address} within {timeout:.0f} s:\n{tail}")

    def stop(self, timeout: float = 20.0, kill: bool = False) -> None:
        """Stop exactly this node: SIGTERM (SIGKILL with ``kill``, as a crashed machine) to its launcher's
        process group, then SIGKILL to whatever is left of its session and process tree."""
        process, self.process = self.process, None
        if process is not None:
            session = process.pid
            tree = process_tree.run_processes([session])
            process_tree.signal_group(session, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process_tree.signal_group(session, signal.SIGKILL)
                process.wait(10)
            leftovers = {p.pid: p for p in tree}
            leftovers.update({p.pid: p for p in process_tree.run_processes(process_tree.session_members(session))})
            process_tree.stop(leftovers.values(), grace=0)
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def _ready_id(self) -> str | None:
        for line in self.log_text().splitlines():
            if line.startswith(READY + " "):
                return line.split()[1]
        return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> LoopbackWorkerNode:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class LoopbackCluster:
    """A head plus worker nodes, all on 127.0.0.1: ``LoopbackCluster(1, [{"num_cpus": 1,
    "resources": {"node_b": 1}}, ...])``; ``address`` is the job API of the head."""

    def __init__(self, head_cpus: int = 1, workers: list[dict[str, Any]] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.head = LocalRayHead(num_cpus=head_cpus, env=env)  # the worker nodes inherit ``env``
        self.worker_specs = list(workers or [])
        self.workers: list[LoopbackWorkerNode] = []

    @property
    def address(self) -> str:
        return self.head.address

    def start(self, timeout: float = 240.0) -> LoopbackCluster:
        deadline = time.monotonic() + timeout
        self.head.start(timeout=timeout)
        try:
            for spec in self.worker_specs:
                node = LoopbackWorkerNode(self.head, **spec)
                self.workers.append(node)
                node.start(timeout=max(10.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in reversed(self.workers):
            node.stop()
        self.workers.clear()
        self.head.stop()

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def alive_node_ids(address: str) -> set[str]:
    """Ids of the nodes the head at ``address`` (job API URL) reports ALIVE."""
    try:
        reply = requests.get(f"{address}/nodes?view=summary", timeout=5)
        reply.raise_for_status()
        summary = reply.json()["data"]["summary"]
    except (requests.RequestException, ValueError, KeyError):
        return set()
    return {n["raylet"]["nodeId"] for n in summary if n.get("raylet", {}).get("state") == "ALIVE"}


def _run_node(spec: dict[str, Any]) -> None:
    """The launcher: start a worker node from ``spec`` and keep it until SIGTERM."""
    from mlflow_workspace_plugin.mlflow_compat import start_ray_worker_node

    node = start_ray_worker_node(
        gcs_address=spec["gcs_address"], node_ip_address=LOOPBACK, node_name=spec["node_name"],
        num_cpus=spec["num_cpus"], num_gpus=spec["num_gpus"], resources=spec["resources"], temp_dir=spec["temp_dir"],
        min_worker_port=0, max_worker_port=0, node_manager_port=0,
        object_manager_port=spec["object_manager_port"],
        object_store_memory=spec["object_store_memory"],
        dashboard_agent_listen_port=spec["dashboard_agent_listen_port"],
        metrics_agent_port=spec["metrics_agent_port"], metrics_export_port=spec["metrics_export_port"],
        runtime_env_agent_port=spec["runtime_env_agent_port"],
    )

    def _stop(signum, frame) -> None:
        node.kill_all_processes(check_alive=False, allow_graceful=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(READY, node.node_id, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    _run_node(json.loads(sys.argv[1]))
