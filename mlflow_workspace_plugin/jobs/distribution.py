"""Per-process launch plans for distributed jobs: pure functions of the job's shape and the instances' addresses.

- ``pytorch``: ``instance_count x process_count_per_instance`` processes, each with the variables torchrun
  sets (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
  GROUP_WORLD_SIZE, ROLE_RANK, ROLE_WORLD_SIZE, ROLE_NAME). Rank ``r`` runs on instance
  ``r // process_count_per_instance``; the master is rank 0 at ``addresses[0]``.
- ``tensorflow``: ``worker_count + parameter_server_count`` processes with ``TF_CONFIG`` (cluster
  ``worker``/``ps`` lists of ``address:port``, and the process's task type/index); workers first, then
  parameter servers, placed round-robin over the instances.
- ``mpi``: one launcher process running ``mpirun`` (which starts every rank itself); ``mpirun`` must exist.
- no distribution: the command runs once per instance, with no extra variables.

Locally every instance's address is ``127.0.0.1`` and ports come from
:func:`mlflow_workspace_plugin.ports.free_ports`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlflow_workspace_plugin.jobs.errors import JobLaunchError
from mlflow_workspace_plugin.jobs.spec import (
    CommandJob,
    Distribution,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
)

LOCAL_ADDRESS = "127.0.0.1"
MpiFlavor = Literal["openmpi", "mpich"]


@dataclass(frozen=True)
class ProcessSlot:
    """One process to start: where it runs and what it adds to its environment.

    ``launcher`` marks the single ``mpirun`` process of an mpi job: its command is :func:`mpirun_argv`'s.
    """

    rank: int
    instance_index: int
    local_rank: int
    env: dict[str, str] = field(default_factory=dict)
    launcher: bool = False


def plan_job(job: CommandJob, addresses: Sequence[str], ports: Sequence[int] = ()) -> list[ProcessSlot]:
    """:func:`plan_processes` for ``job``'s distribution and instance count."""
    return plan_processes(job.distribution, job.instance_count, addresses, ports)


def plan_processes(
    distribution: Distribution | None, instance_count: int, addresses: Sequence[str], ports: Sequence[int] = ()
) -> list[ProcessSlot]:
    """Every process of the job, by rank. ``addresses[i]`` is instance ``i``'s address; ``ports`` holds
    :func:`ports_needed` free ports (on ``addresses[0]`` for pytorch; one per process for tensorflow)."""
    if len(addresses) != instance_count:
        raise ValueError(f"{instance_count} instances need {instance_count} addresses, got {len(addresses)}")
    needed = ports_needed(distribution)
    if len(ports) < needed:
        raise ValueError(f"this distribution needs {needed} ports, got {len(ports)}")
    if isinstance(distribution, PyTorchDistribution):
        return pytorch_processes(instance_count, distribution.process_count_per_instance, addresses, ports[0])
    if isinstance(distribution, TensorFlowDistribution):
        return tensorflow_processes(
            distribution.worker_count, distribution.parameter_server_count, addresses, ports[:needed]
        )
    if isinstance(distribution, MpiDistribution):
        return [ProcessSlot(rank=0, instance_index=0, local_rank=0, launcher=True)]
    return [ProcessSlot(rank=i, instance_index=i, local_rank=0) for i in range(instance_count)]


def ports_needed(distribution: Distribution | None) -> int:
    """How many ports :func:`plan_processes` needs for ``distribution``."""
    if isinstance(distribution, PyTorchDistribution):
        return 1
    if isinstance(distribution, TensorFlowDistribution):
        return distribution.worker_count + distribution.parameter_server_count
    return 0


def pytorch_processes(
    instance_count: int, process_count_per_instance: int, addresses: Sequence[str], master_port: int
) -> list[ProcessSlot]:
    """torchrun's environment for each of ``instance_count x process_count_per_instance`` processes."""
    world_size = instance_count * process_count_per_instance
    slots = []
    for rank in range(world_size):
        node_rank, local_rank = divmod(rank, process_count_per_instance)
        env = {
            "MASTER_ADDR": addresses[0],
            "MASTER_PORT": str(master_port),
            "WORLD_SIZE": str(world_size),
            "RANK": str(rank),
            "LOCAL_RANK": str(local_rank),
            "NODE_RANK": str(node_rank),
            "LOCAL_WORLD_SIZE": str(process_count_per_instance),
            "GROUP_RANK": str(node_rank),
            "GROUP_WORLD_SIZE": str(instance_count),
            "ROLE_RANK": str(rank),
            "ROLE_WORLD_SIZE": str(world_size),
            "ROLE_NAME": "default",
        }
        slots.append(ProcessSlot(rank=rank, instance_index=node_rank, local_rank=local_rank, env=env))
    return slots


def tensorflow_processes(
    worker_count: int, parameter_server_count: int, addresses: Sequence[str], ports: Sequence[int]
) -> list[ProcessSlot]:
    """``TF_CONFIG`` for each worker then each parameter server, placed round-robin over the instances."""
    tasks = [("worker", i) for i in range(worker_count)] + [("ps", i) for i in range(parameter_server_count)]
    if len(ports) != len(tasks):
        raise ValueError(f"{len(tasks)} tensorflow processes need {len(tasks)} ports, got {len(ports)}")
    placed = [rank % len(addresses) for rank in range(len(tasks))]
    endpoints = [f"{addresses[instance]}:{port}" for instance, port in zip(placed, ports, strict=True)]
    cluster = {"worker": endpoints[:worker_count]}
    if parameter_server_count:
        cluster["ps"] = endpoints[worker_count:]
    slots = []
    for rank, ((task_type, index), instance) in enumerate(zip(tasks, placed, strict=True)):
        config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
        slots.append(
            ProcessSlot(
                rank=rank,
                instance_index=instance,
                local_rank=placed[:rank].count(instance),
                env={"TF_CONFIG": json.dumps(config)},
            )
        )
    return slots


def require_mpirun(path: str | None = None, *, source_file: Path | str | None = None) -> str:
    """The ``mpirun`` executable (searched on ``path``, default ``$PATH``); a clear error when there is none."""
    found = shutil.which("mpirun", path=path)
    if found is None:
        raise JobLaunchError.at(
            source_file,
            "distribution.type",
            "mpi jobs are launched with mpirun, which is not installed on this machine (not on PATH); "
            "install Open MPI or MPICH (e.g. apt-get install openmpi-bin), or use type: pytorch",
        )
    return found


def mpi_flavor(mpirun: str) -> MpiFlavor:
    """``openmpi`` or ``mpich`` (Hydra), from ``mpirun --version``."""
    result = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30, check=False)
    text = (result.stdout + result.stderr).lower()
    return "openmpi" if "open mpi" in text or "open-mpi" in text or "openrte" in text else "mpich"


def mpirun_argv(
    command: str,
    *,
    instance_count: int,
    process_count_per_instance: int,
    addresses: Sequence[str],
    mpirun: str = "mpirun",
    flavor: MpiFlavor = "openmpi",
    export: Sequence[str] = (),
    as_root: bool = False,
) -> list[str]:
    """The ``mpirun`` command line starting ``instance_count x process_count_per_instance`` ranks of ``command``.

    Hosts get ``process_count_per_instance`` slots each (the same address counts once, with the slots
    summed). ``export`` names environment variables passed to every rank (``-x`` / ``-genvlist``);
    ``as_root`` adds Open MPI's ``--allow-run-as-root``.
    """
    if len(addresses) != instance_count:
        raise ValueError(f"{instance_count} instances need {instance_count} addresses, got {len(addresses)}")
    slots: dict[str, int] = {}
    for address in addresses:
        slots[address] = slots.get(address, 0) + process_count_per_instance
    hosts = ",".join(f"{address}:{count}" for address, count in slots.items())
    total = instance_count * process_count_per_instance
    if flavor == "openmpi":
        argv = [mpirun, *(["--allow-run-as-root"] if as_root else []), "-np", str(total), "--host", hosts]
        for name in export:
            argv += ["-x", name]
    else:
        argv = [mpirun, "-np", str(total), "-hosts", hosts]
        if export:
            argv += ["-genvlist", ",".join(export)]
    return [*argv, "bash", "-c", command]


def mpirun_command(command: str, **kwargs) -> str:
    """:func:`mpirun_argv` as one shell command line."""
    return shlex.join(mpirun_argv(command, **kwargs))


def local_addresses(instance_count: int) -> list[str]:
    """Every instance on this machine."""
    return [LOCAL_ADDRESS] * instance_count
