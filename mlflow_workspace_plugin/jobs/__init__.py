"""Jobs from YAML (seed 004): the Python API is ``load_job(path)`` + ``submit_job(job)``.

``load_job(path)`` gives a frozen :class:`CommandJob` (parsed, validated, normalised; no execution);
``submit_job(job)`` runs it through the one execution path and returns the run's handle (imported on
first use: the definition layer stays free of the execution machinery). :func:`render_command` fills
placeholders; :mod:`.inputs` materialises inputs; :mod:`.distribution` gives per-process environments.
"""

from mlflow_workspace_plugin.jobs.distribution import ProcessSlot, plan_job, require_mpirun
from mlflow_workspace_plugin.jobs.errors import JobInputError, JobLaunchError, JobSpecError
from mlflow_workspace_plugin.jobs.inputs import command_values, describe_io, materialize_input, prepare_outputs
from mlflow_workspace_plugin.jobs.loader import command_job_from_mapping, load_any_job, load_job
from mlflow_workspace_plugin.jobs.placeholders import Placeholder, find_placeholders, render_command
from mlflow_workspace_plugin.jobs.spec import (
    CommandJob,
    DataInput,
    Environment,
    JobOutput,
    LiteralInput,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
)

_SUBMIT_NAMES = ("submit_job", "prepare_job")


def __getattr__(name: str):
    if name in _SUBMIT_NAMES:
        from mlflow_workspace_plugin.jobs import submit

        return getattr(submit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CommandJob",
    "DataInput",
    "Environment",
    "JobInputError",
    "JobLaunchError",
    "JobOutput",
    "JobSpecError",
    "LiteralInput",
    "MpiDistribution",
    "Placeholder",
    "ProcessSlot",
    "PyTorchDistribution",
    "TensorFlowDistribution",
    "command_job_from_mapping",
    "command_values",
    "describe_io",
    "find_placeholders",
    "load_any_job",
    "load_job",
    "materialize_input",
    "plan_job",
    "prepare_outputs",
    "render_command",
    "require_mpirun",
    "submit_job",
]
