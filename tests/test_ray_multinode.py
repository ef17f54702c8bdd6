"""The multi-node loopback Ray cluster fixture (compute/ray_nodes.py): a head and two worker nodes on
127.0.0.1, each with its own CPUs and custom resource; jobs and placement groups land on distinct
nodes; a node stops (or crashes) alone, leaving no process behind and nothing listening off loopback."""

from __future__ import annotations

import ipaddress
import json
import sys
import textwrap
import time

import psutil
import pytest

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.compute.ray_nodes import LoopbackWorkerNode, alive_node_ids

pytestmark = pytest.mark.slow


def _client(cluster):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.address)


def _wait_job(client, job_id: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_job_status(job_id)
        if status.is_terminal():
            return status
        time.sleep(0.5)
    client.stop_job(job_id)
    raise AssertionError(f"job {job_id} still {status} after {timeout} s:\n{client.get_job_logs(job_id)[-2000:]}")


def _nodes(cluster) -> dict[str, dict]:
    import requests

    summary = requests.get(f"{cluster.address}/nodes?view=summary", timeout=10).json()["data"]["summary"]
    return {n["raylet"]["nodeId"]: n["raylet"] for n in summary if n["raylet"]["state"] == "ALIVE"}


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_head_and_two_workers_register_on_loopback_with_their_own_resources(ray_multinode):
    nodes = _nodes(ray_multinode)
    b, c = ray_multinode.workers
    assert len(nodes) == 3 and {b.node_id, c.node_id} < set(nodes)
    assert {n["nodeManagerAddress"] for n in nodes.values()} == {"127.0.0.1"}
    assert all(n["resourcesTotal"]["CPU"] == 1 for n in nodes.values())  # (custom resources: the spread test)
    assert nodes[b.node_id]["nodeName"] == "node-b"
    # every socket any node process listens on is on loopback
    pids = {p.pid for leader in (ray_multinode.head.process.pid, b.process.pid, c.process.pid)
            for p in process_tree.run_processes(process_tree.session_members(leader))}
    listening = [conn for conn in psutil.net_connections(kind="inet")
                 if conn.status == psutil.CONN_LISTEN and conn.pid in pids]
    assert listening and all(_loopback(conn.laddr.ip) for conn in listening), listening


def test_job_asking_for_a_custom_resource_runs_on_that_node(ray_multinode):
    client = _client(ray_multinode)
    b = ray_multinode.workers[0]
    # plain `python`: the worker node's PATH must find the interpreter that has Ray (and the plugin)
    job_id = client.submit_job(entrypoint="python -c \"import ray, sys; print('on node b', sys.executable)\"",
                               entrypoint_resources={"node_b": 1})
    status = _wait_job(client, job_id)
    logs = client.get_job_logs(job_id)
    assert status == "SUCCEEDED", logs
    assert client.get_job_info(job_id).driver_node_id == b.node_id
    assert f"on node b {sys.executable}" in logs


def test_strict_spread_placement_group_puts_one_bundle_on_each_node(ray_multinode, tmp_path):
    script = tmp_path / "spread.py"
    script.write_text(textwrap.dedent("""
        import json, ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        ray.init()
        group = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
        ray.get(group.ready(), timeout=60)

        @ray.remote(num_cpus=1)
        def where():
            return ray.get_runtime_context().get_node_id()

        ids = ray.get([where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(group, i)).remote()
                       for i in range(3)])
        print("NODES " + json.dumps(ids))
        print("RESOURCES " + json.dumps({n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}))
    """))
    client = _client(ray_multinode)
    job_id = client.submit_job(entrypoint=f"{sys.executable} {script}")
    status = _wait_job(client, job_id)
    logs = client.get_job_logs(job_id)
    assert status == "SUCCEEDED", logs
    ids = json.loads(logs.split("NODES ", 1)[1].splitlines()[0])
    assert set(ids) == set(_nodes(ray_multinode))  # three bundles, three distinct nodes
    resources = json.loads(logs.split("RESOURCES ", 1)[1].splitlines()[0])
    b, c = ray_multinode.workers
    assert resources[b.node_id]["node_b"] == 1 and "node_c" not in resources[b.node_id]
    assert resources[c.node_id]["node_c"] == 1 and "node_b" not in resources[c.node_id]
    assert all(r["CPU"] == 1 for r in resources.values())


@pytest.mark.parametrize("kill", [False, True], ids=["stop", "crash"])
def test_a_worker_node_stops_alone_and_leaves_nothing(ray_multinode, kill):
    before = set(_nodes(ray_multinode))
    node = LoopbackWorkerNode(ray_multinode.head, num_cpus=1, resources={"extra": 1}).start()
    assert node.node_id in alive_node_ids(ray_multinode.address)
    session = node.process.pid
    members = process_tree.run_processes(process_tree.session_members(session))
    assert len(members) > 1  # the launcher and its raylet, agents...
    node.stop(kill=kill)
    assert process_tree.session_members(session) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)
    deadline = time.monotonic() + 60
    while node.node_id in alive_node_ids(ray_multinode.address) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert set(_nodes(ray_multinode)) == before  # the head saw it go; the other nodes stay
