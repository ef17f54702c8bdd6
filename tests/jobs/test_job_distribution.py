"""Distribution plans: torchrun's variables, TF_CONFIG, mpirun; and the example's processes really meet over TCP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO_ROOT

from mlflow_workspace_plugin.jobs import (
    JobSpecError,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
    load_job,
    render_command,
)
from mlflow_workspace_plugin.jobs.distribution import (
    ProcessSlot,
    local_addresses,
    mpirun_argv,
    mpirun_command,
    plan_job,
    plan_processes,
    ports_needed,
    require_mpirun,
)
from mlflow_workspace_plugin.jobs.errors import JobLaunchError
from mlflow_workspace_plugin.jobs.inputs import prepare_outputs
from mlflow_workspace_plugin.ports import RAY_WORKER_PORTS, free_ports

EXAMPLE = REPO_ROOT / "examples" / "jobs" / "pytorch-distributed" / "job.yml"


def test_pytorch_two_instances_two_processes_each():
    slots = plan_processes(PyTorchDistribution(process_count_per_instance=2), 2, ["10.0.0.1", "10.0.0.2"], [29500])
    common = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
              "GROUP_WORLD_SIZE": "2", "ROLE_WORLD_SIZE": "4", "ROLE_NAME": "default"}
    expected = []
    for rank, (node, local) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        env = {**common, "RANK": str(rank), "LOCAL_RANK": str(local), "NODE_RANK": str(node),
               "GROUP_RANK": str(node), "ROLE_RANK": str(rank)}
        expected.append(ProcessSlot(rank=rank, instance_index=node, local_rank=local, env=env))
    assert slots == expected


def test_pytorch_single_process():
    (slot,) = plan_processes(PyTorchDistribution(), 1, ["127.0.0.1"], [1234])
    assert (slot.env["WORLD_SIZE"], slot.env["RANK"], slot.env["LOCAL_RANK"], slot.env["MASTER_PORT"]) == (
        "1", "0", "0", "1234"
    )


def test_tensorflow_workers_and_parameter_servers():
    distribution = TensorFlowDistribution(worker_count=3, parameter_server_count=1)
    assert ports_needed(distribution) == 4
    slots = plan_processes(distribution, 2, ["10.0.0.1", "10.0.0.2"], [2001, 2002, 2003, 2004])
    configs = [json.loads(slot.env["TF_CONFIG"]) for slot in slots]
    cluster = {"worker": ["10.0.0.1:2001", "10.0.0.2:2002", "10.0.0.1:2003"], "ps": ["10.0.0.2:2004"]}
    assert configs == [
        {"cluster": cluster, "task": {"type": "worker", "index": 0}},
        {"cluster": cluster, "task": {"type": "worker", "index": 1}},
        {"cluster": cluster, "task": {"type": "worker", "index": 2}},
        {"cluster": cluster, "task": {"type": "ps", "index": 0}},
    ]
    assert [(s.rank, s.instance_index, s.local_rank) for s in slots] == [(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1)]
    (only,) = plan_processes(TensorFlowDistribution(worker_count=1), 1, ["127.0.0.1"], [5000])
    assert json.loads(only.env["TF_CONFIG"]) == {
        "cluster": {"worker": ["127.0.0.1:5000"]}, "task": {"type": "worker", "index": 0}
    }


def test_no_distribution_runs_once_per_instance():
    assert ports_needed(None) == 0
    assert plan_processes(None, 2, local_addresses(2)) == [
        ProcessSlot(rank=0, instance_index=0, local_rank=0),
        ProcessSlot(rank=1, instance_index=1, local_rank=0),
    ]


def test_mpi_is_one_launcher():
    distribution = MpiDistribution(process_count_per_instance=2)
    assert ports_needed(distribution) == 0
    assert plan_processes(distribution, 2, local_addresses(2)) == [
        ProcessSlot(rank=0, instance_index=0, local_rank=0, launcher=True)
    ]


def test_mpirun_command_lines():
    assert mpirun_argv("python train.py --lr 0.1", instance_count=2, process_count_per_instance=2,
                       addresses=["10.0.0.1", "10.0.0.2"], export=["MLFLOW_RUN_ID"]) == [
        "mpirun", "-np", "4", "--host", "10.0.0.1:2,10.0.0.2:2", "-x", "MLFLOW_RUN_ID",
        "bash", "-c", "python train.py --lr 0.1",
    ]
    assert mpirun_argv("python t.py", instance_count=2, process_count_per_instance=3, addresses=local_addresses(2),
                       mpirun="/usr/bin/mpirun", as_root=True) == [
        "/usr/bin/mpirun", "--allow-run-as-root", "-np", "6", "--host", "127.0.0.1:6", "bash", "-c", "python t.py",
    ]
    assert mpirun_argv("python t.py", instance_count=1, process_count_per_instance=2, addresses=["h"],
                       flavor="mpich", export=["A", "B"]) == [
        "mpirun", "-np", "2", "-hosts", "h:2", "-genvlist", "A,B", "bash", "-c", "python t.py",
    ]
    assert mpirun_command("echo 'hi there'", instance_count=1, process_count_per_instance=1, addresses=["h"]) == (
        "mpirun -np 1 --host h:1 bash -c 'echo '\"'\"'hi there'\"'\"''"
    )


def test_missing_mpirun_is_a_clear_early_error(tmp_path):
    with pytest.raises(JobLaunchError) as error:
        require_mpirun(path=str(tmp_path), source_file="job.yml")
    assert error.value.message.startswith(
        "job.yml: distribution.type: mpi jobs are launched with mpirun, which is not installed on this machine"
    )
    assert isinstance(error.value, JobSpecError)
    launcher = tmp_path / "mpirun"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    assert require_mpirun(path=str(tmp_path)) == str(launcher)


def test_wrong_shapes_are_programming_errors():
    with pytest.raises(ValueError, match="2 instances need 2 addresses, got 1"):
        plan_processes(PyTorchDistribution(), 2, ["127.0.0.1"], [1])
    with pytest.raises(ValueError, match="needs 1 ports, got 0"):
        plan_processes(PyTorchDistribution(), 1, ["127.0.0.1"])


def test_free_ports_are_distinct_bindable_and_outside_rays_worker_ports():
    ports = free_ports(20)
    assert len(set(ports)) == 20 and all(1024 < port < 65536 for port in ports)
    assert not any(port in RAY_WORKER_PORTS for port in ports)


# --- the example job's processes, started as the lead's local executor would -------------------------


def start_processes(job, tmp_path, tamper=None, timeout: int = 20) -> list[subprocess.CompletedProcess]:
    """Start every process of ``job`` (``tamper``: rank -> variables overriding its plan) and wait for all."""
    slots = plan_job(job, local_addresses(job.instance_count), free_ports(1))
    values = prepare_outputs(job, tmp_path / "outputs")
    command = render_command(job.command, values).replace("python ", f"{sys.executable} ", 1)
    procs = []
    for slot in slots:
        env = {**os.environ, **slot.env, **(tamper or {}).get(slot.rank, {}), "RENDEZVOUS_TIMEOUT": str(timeout)}
        procs.append(subprocess.Popen(command, shell=True, cwd=job.code, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def test_example_processes_rendezvous_over_tcp(tmp_path):
    job = load_job(EXAMPLE)
    results = start_processes(job, tmp_path)
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert [r.stdout.split(":")[0] for r in results] == [
        "rank 0/4 (node 0, local 0)", "rank 1/4 (node 0, local 1)", "rank 2/4 (node 1, local 0)",
        "rank 3/4 (node 1, local 1)",
    ]
    reports = sorted((tmp_path / "outputs" / "report").glob("rank_*.json"))
    assert [json.loads(p.read_text())["ranks"] for p in reports] == [[0, 1, 2, 3]] * 4


def test_example_processes_notice_an_inconsistent_environment(tmp_path):
    job = load_job(EXAMPLE)
    results = start_processes(job, tmp_path, tamper={3: {"RANK": "2"}}, timeout=3)  # two processes claim rank 2
    assert results[3].returncode != 0
    assert "inconsistent environment" in results[3].stderr
    assert results[0].returncode != 0  # rank 0 never sees rank 3 arrive


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
