"""What a run asks of its compute, end to end on the real multi-node loopback Ray cluster (head 1 CPU;
node-b and node-c, 1 CPU and a custom resource each): an Azure job file's ``resources.instance_type``
means a shape of the target's ``instance_types``, ``resources.properties`` asks for more, and the
shape becomes the Ray job's entrypoint reservation, so the job starts on a node that has it. A shape no
node has fails before any run exists, naming what the nodes have."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import read_artifact
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ray_cluster import write_workspace

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.jobs import load_job, submit_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

INSTANCE_TYPES = {
    "Standard_B": {"cpus": 1, "resources": {"node_b": 1}},
    "Standard_C": {"cpus": 1, "memory_gb": 0.1, "resources": {"node_c": 1}},
    "Standard_NC6s_v3": {"cpus": 6, "gpus": 1, "memory_gb": 112},
}
REPORT = "python -c \"import os; print('GPUS=' + os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))\""


@pytest.fixture
def multi_workspace(ray_multinode, tmp_path, monkeypatch) -> MlflowClient:
    """A workspace whose target ``multi`` is the multi-node cluster with Azure-named instance types."""
    config = write_workspace(tmp_path / "workspace", {
        "multi": {"type": "ray", "address": ray_multinode.address, "environment": "inherit",
                  "python": sys.executable, "instance_types": INSTANCE_TYPES},
        "multi-default-c": {"type": "ray", "address": ray_multinode.address, "environment": "inherit",
                            "python": sys.executable, "instance_types": INSTANCE_TYPES,
                            "default_instance_type": "Standard_C"},
    })
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    uri = Workspace.from_config().get_mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def job_file(folder: Path, resources: dict, compute: str = "azureml:multi", command: str = REPORT) -> Path:
    """An Azure command job file running ``REPORT`` with the ``resources`` section given."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yml"
    path.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n" + yaml.safe_dump(
        {"command": command, "compute": compute, "experiment_name": "shapes", "resources": resources}),
        encoding="utf-8")
    return path


def ray_job(cluster, run_id: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.address).get_job_info(f"mlflow-{run_id}")


def reserved(cluster, run_id: str) -> dict:
    """What Ray reserved for the run's job: the resources of its job supervisor actor (Ray's state API)."""
    from ray.util.state import list_actors

    name = f"_ray_internal_job_actor_mlflow-{run_id}"
    actors = list_actors(address=cluster.address, filters=[("name", "=", name)], detail=True)
    assert len(actors) == 1, actors
    return actors[0].required_resources


def no_runs(client: MlflowClient) -> bool:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return not experiments or not client.search_runs(experiments)


def test_instance_type_reserves_its_shape_on_the_node_that_has_it(multi_workspace, ray_multinode, tmp_path):
    b = ray_multinode.workers[0]
    handle = submit_job(load_job(job_file(tmp_path, {"instance_type": "Standard_B"})))
    assert handle.wait()
    assert ray_job(ray_multinode, handle.run_id).driver_node_id == b.node_id
    assert reserved(ray_multinode, handle.run_id) == {"CPU": 1.0, "node_b": 1.0}
    log = read_artifact(multi_workspace, handle.run_id, "user_logs/std_log.txt")
    assert "GPUS=unset" in log  # no GPU asked for: none assigned


def test_two_jobs_of_a_shape_one_node_has_once_run_one_after_the_other(multi_workspace, ray_multinode, tmp_path):
    timed = "python -c \"import time; print('START', time.time()); time.sleep(3); print('END', time.time())\""
    jobs = []
    for index in range(2):
        jobs.append(submit_job(load_job(job_file(tmp_path / str(index), {"instance_type": "Standard_B"},
                                                 command=timed))))
    assert all(job.wait() for job in jobs)
    spans = []
    for job in jobs:
        log = read_artifact(multi_workspace, job.run_id, "user_logs/std_log.txt")
        times = dict(line.split() for line in log.splitlines() if line.startswith(("START ", "END ")))
        spans.append((float(times["START"]), float(times["END"])))
        assert ray_job(ray_multinode, job.run_id).driver_node_id == ray_multinode.workers[0].node_id
    first, second = sorted(spans)
    assert second[0] >= first[1], spans  # node b's one CPU held by one job at a time: the other waited


def test_properties_ask_over_the_instance_type_and_the_default_type_applies(multi_workspace, ray_multinode,
                                                                             tmp_path):
    c = ray_multinode.workers[1]
    # properties' custom resource moves a job with no instance type to node c
    handle = submit_job(load_job(job_file(tmp_path / "p", {"properties": {"resources": {"node_c": 1}}})))
    assert handle.wait()
    assert ray_job(ray_multinode, handle.run_id).driver_node_id == c.node_id
    assert reserved(ray_multinode, handle.run_id) == {"node_c": 1.0}  # only what was asked for
    # a target's default_instance_type is the shape of a job naming none; properties override its cpus
    handle = submit_job(load_job(job_file(tmp_path / "d", {"properties": {"cpus": 0.5}},
                                          compute="azureml:multi-default-c")))
    assert handle.wait()
    assert ray_job(ray_multinode, handle.run_id).driver_node_id == c.node_id
    assert reserved(ray_multinode, handle.run_id) == {"CPU": 0.5, "memory": float(int(0.1 * 1024 ** 3)),
                                                      "node_c": 1.0}


def test_a_shape_no_node_has_fails_before_any_run_naming_what_the_nodes_have(multi_workspace, tmp_path):
    with pytest.raises(MlflowException) as caught:
        submit_job(load_job(job_file(tmp_path / "gpu", {"instance_type": "Standard_NC6s_v3"})))
    message = caught.value.message
    assert "Compute target 'multi'" in message and "no node of the cluster has {CPU: 6, GPU: 1, memory: 112 GB" in message
    assert "node_b: 1" in message and "node_c: 1" in message  # what the nodes do have
    # all instances of a distributed job reserve together (one Ray job): 2 x 1 CPU fits no 1-CPU node
    with pytest.raises(MlflowException) as caught:
        submit_job(load_job(job_file(tmp_path / "two", {"instance_type": "Standard_B", "instance_count": 2})))
    assert "no node of the cluster has {CPU: 2, node_b: 2}" in caught.value.message
    assert no_runs(multi_workspace)


def test_a_sweep_whose_trials_fit_no_node_fails_before_the_sweep_run(multi_workspace, tmp_path):
    sweep = tmp_path / "sweep.yml"
    sweep.write_text(textwrap.dedent(f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
        type: sweep
        experiment_name: shapes-sweep
        trial:
          command: {REPORT} ${{{{search_space.x}}}}
          resources: {{instance_type: Standard_NC6s_v3}}
        compute: azureml:multi
        search_space: {{x: {{type: choice, values: [1, 2]}}}}
        objective: {{goal: minimize, primary_metric: loss}}
        sampling_algorithm: grid
        limits: {{max_total_trials: 2}}
        """), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "mlflow_workspace_plugin.cli", "job", "create", "-f", str(sweep)],
                            capture_output=True, text=True, timeout=240, env=os.environ.copy())
    assert result.returncode != 0
    assert "no node of the cluster has {CPU: 6, GPU: 1" in result.stderr and "Traceback" not in result.stderr
    assert no_runs(multi_workspace)


@pytest.mark.parametrize("name", ["Standard_$(touch pwned)", "a'b\"c", "../../etc", "x" * 10_000])
def test_an_instance_type_not_defined_is_one_error_naming_the_defined_ones(multi_workspace, tmp_path,
                                                                             monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MlflowException) as caught:
        submit_job(load_job(job_file(tmp_path, {"instance_type": name})))
    message = caught.value.message
    assert "is not defined for compute target 'multi'; defined: Standard_B, Standard_C, Standard_NC6s_v3" in message
    assert len(message) < 1000  # a huge value is cut, not echoed
    assert not (tmp_path / "pwned").exists() and no_runs(multi_workspace)


def test_a_projects_run_reserves_its_backend_config_instance_type(multi_workspace, ray_multinode, tmp_path):
    (tmp_path / "MLproject").write_text("name: shapes\nentry_points:\n  main:\n    command: " + REPORT + "\n")
    run = mlflow.projects.run(str(tmp_path), backend="azureml", env_manager="local",
                              backend_config={"COMPUTE": "multi", "INSTANCE_TYPE": "Standard_C",
                                              "RESOURCES": {"cpus": 0.25}})
    assert run.wait()
    assert ray_job(ray_multinode, run.run_id).driver_node_id == ray_multinode.workers[1].node_id
    assert reserved(ray_multinode, run.run_id) == {"CPU": 0.25, "memory": float(int(0.1 * 1024 ** 3)),
                                                   "node_c": 1.0}


def extra_node(cluster, **spec):
    """A worker node of this test only, joined to the shared cluster (stopped by the test)."""
    from mlflow_workspace_plugin.compute.ray_nodes import LoopbackWorkerNode

    return LoopbackWorkerNode(cluster.head, **spec).start()


def test_a_gpu_job_lands_on_the_gpu_node_with_the_gpu_ray_assigned(multi_workspace, ray_multinode, tmp_path):
    gpu_node = extra_node(ray_multinode, num_cpus=1, num_gpus=1, node_name="node-gpu")  # Ray counts it as given
    try:
        handle = submit_job(load_job(job_file(tmp_path, {"properties": {"gpus": 1}})))
        assert handle.wait()
        assert ray_job(ray_multinode, handle.run_id).driver_node_id == gpu_node.node_id
        assert reserved(ray_multinode, handle.run_id) == {"GPU": 1.0}
        log = read_artifact(multi_workspace, handle.run_id, "user_logs/std_log.txt")
        assert "GPUS=0" in log  # CUDA_VISIBLE_DEVICES: the GPU Ray assigned the job
    finally:
        gpu_node.stop()


def test_the_node_running_a_job_dies_and_the_run_fails_naming_it(multi_workspace, ray_multinode, tmp_path):
    node = extra_node(ray_multinode, num_cpus=1, resources={"node_d": 1}, node_name="node-d")
    try:
        sleeper = "python -c \"import time; print('sleeping', flush=True); time.sleep(300)\""
        handle = submit_job(load_job(job_file(tmp_path, {"properties": {"resources": {"node_d": 1}}},
                                              command=sleeper)))
        deadline = time.monotonic() + 120
        while "sleeping" not in ray_logs(ray_multinode, handle.run_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray_job(ray_multinode, handle.run_id).driver_node_id == node.node_id
        node.stop(kill=True)  # the machine is gone: no runner left to end the run
        died = time.monotonic()
        assert handle.wait_for(120), "the run was still RUNNING 120 s after its node died"
        assert not handle.wait()
        ended_within = time.monotonic() - died
        run = multi_workspace.get_run(handle.run_id)
        assert run.info.status == "FAILED", run.info.status
        assert ended_within < 60, ended_within
        reason = handle.failure_message()
        assert f"the node that ran it (node-d 127.0.0.1, node id {node.node_id}) died" in reason, reason
    finally:
        node.stop()


def ray_logs(cluster, run_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(cluster.address).get_job_logs(f"mlflow-{run_id}")
    except Exception:  # not registered yet
        return ""
