"""The processes a job starts, as :class:`ProcessSpec` s for the execution path, from :mod:`.distribution`'s plan.

Every instance is on the machine running the processes (``127.0.0.1``; ports picked free here), so a
multi-instance job runs all its instances side by side: locally, and on Ray inside the one job (a Ray job
runs on one node). Each process writes its console to ``user_logs/std_log_process_<rank>.txt``; an
``mpi`` job is one ``mpirun`` launcher process (its console is ``user_logs/std_log.txt``).
"""

from __future__ import annotations

import os

from mlflow_workspace_plugin.compute.process_set import SINGLE_PROCESS, ProcessSpec
from mlflow_workspace_plugin.jobs.distribution import (
    local_addresses,
    mpi_flavor,
    mpirun_command,
    plan_job,
    ports_needed,
    require_mpirun,
)
from mlflow_workspace_plugin.jobs.spec import CommandJob, MpiDistribution
from mlflow_workspace_plugin.ports import free_ports

PROCESS_LOG_NAME = "std_log_process_{rank}.txt"
# Variables every mpi rank needs from the launcher (run identity and tracking, unbuffered output).
MPI_EXPORTED = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI", "PYTHONUNBUFFERED", "PATH")


def check_launchable(job: CommandJob) -> str | None:
    """What this machine must have for ``job`` (``mpirun`` for mpi jobs): its path, or a clear error now."""
    if isinstance(job.distribution, MpiDistribution):
        return require_mpirun(source_file=job.source_file)
    return None


def job_processes(job: CommandJob, command: str, mpirun: str | None = None) -> tuple[str, tuple[ProcessSpec, ...]]:
    """(the command to run, one :class:`ProcessSpec` per process) for ``job`` whose rendered command is ``command``."""
    if isinstance(job.distribution, MpiDistribution):
        mpirun = mpirun or require_mpirun(source_file=job.source_file)
        exported = [*MPI_EXPORTED, *job.environment_variables]
        launcher = mpirun_command(
            command, instance_count=job.instance_count,
            process_count_per_instance=job.distribution.process_count_per_instance,
            addresses=local_addresses(job.instance_count), mpirun=mpirun, flavor=mpi_flavor(mpirun),
            export=exported, as_root=hasattr(os, "geteuid") and os.geteuid() == 0,
        )
        return launcher, SINGLE_PROCESS
    if job.distribution is None and job.instance_count == 1:
        return command, SINGLE_PROCESS
    slots = plan_job(job, local_addresses(job.instance_count), free_ports(ports_needed(job.distribution)))
    return command, tuple(ProcessSpec(env=dict(slot.env), log_name=PROCESS_LOG_NAME.format(rank=slot.rank))
                          for slot in slots)
