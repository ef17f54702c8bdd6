"""A job's ``environment`` section -> the :class:`EnvironmentSpec` the execution path runs it with.

- Locally the job runs in the current Python environment (the interpreter running the plugin), like a
  projects run with ``USE_CONDA: false``. Asked with ``env_manager`` (``submit_job(env_manager=...)``,
  ``job create --env-manager``, or ``$MLFLOW_WORKSPACE_JOB_ENV_MANAGER``), the ``conda_file`` is built
  instead: ``virtualenv`` / ``uv`` from its pip list (MLflow's virtualenv helpers, as projects do),
  ``conda`` where a conda executable exists.
- On remote compute (Ray) the ``conda_file`` becomes the job's pip requirements.
- A Docker ``image`` / ``build`` context or an ``azureml:`` environment cannot be honoured here: one
  warning names it and what is used instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from mlflow_workspace_plugin.compute.environment import (
    CONDA,
    LOCAL,
    UV,
    VIRTUALENV,
    EnvironmentSpec,
    PreparedEnvironment,
)
from mlflow_workspace_plugin.execution.requirements import conda_requirements
from mlflow_workspace_plugin.jobs.errors import JobLaunchError, JobSpecError
from mlflow_workspace_plugin.jobs.spec import CommandJob

ENV_MANAGER_ENV = "MLFLOW_WORKSPACE_JOB_ENV_MANAGER"
ENV_MANAGERS = (LOCAL, VIRTUALENV, UV, CONDA)


def choose_env_manager(requested: str | None) -> str:
    """The env manager asked for (argument, else ``$MLFLOW_WORKSPACE_JOB_ENV_MANAGER``, else ``local``)."""
    value = requested if requested is not None else os.environ.get(ENV_MANAGER_ENV, "").strip() or LOCAL
    value = value.strip().lower()
    if value not in ENV_MANAGERS:
        source = "env_manager" if requested is not None else f"${ENV_MANAGER_ENV}"
        raise JobSpecError(f"{source} = {value!r} is not an environment manager; allowed: {', '.join(ENV_MANAGERS)}")
    return value


def job_environment(job: CommandJob, *, remote: bool, target: str, env_manager: str | None,
                    private_dir: Callable[[], Path], warn: Callable[[str], None]) -> tuple[EnvironmentSpec, str]:
    """(the environment to run ``job`` with, a short description of it for the run's tags).

    ``private_dir()`` gives the job's own folder (for an inline conda file); ``warn`` receives the one
    warning about an environment that cannot be honoured.
    """
    manager = choose_env_manager(env_manager)
    env = job.environment
    conda_file = _conda_file(job, private_dir) if env is not None else None
    if remote:
        requirements = tuple(conda_requirements(conda_file)) if conda_file else ()
        used = (f"the Python of compute target {target!r}"
                + (" with the conda_file's pip packages" if requirements else ""))
        _warn_unusable(job, used, warn)
        return EnvironmentSpec(requirements=requirements), "conda_file (pip)" if requirements else "cluster"
    if manager == LOCAL:
        used = f"the current Python environment ({sys.executable})"
        _warn_unusable(job, used, warn)
        return EnvironmentSpec(kind=LOCAL), "local"
    if conda_file is None:
        raise JobSpecError.at(job.source_file, "environment.conda_file",
                              f"is needed to build a {manager} environment (env manager {manager!r}); "
                              "give a conda_file, or run in the current environment (env manager 'local')")
    _check_manager(job, manager)
    _warn_unusable(job, f"a {manager} environment built from {conda_file.name}", warn)
    spec = EnvironmentSpec(kind=manager, prepare=lambda run_id: prepare(manager, conda_file))
    return spec, f"{manager} ({conda_file.name})"


def prepare(kind: str, conda_file: Path) -> PreparedEnvironment:
    """Build (or reuse) the environment of ``conda_file``; may take minutes."""
    if kind == CONDA:
        from mlflow.utils.conda import get_or_create_conda_env

        conda_env = get_or_create_conda_env(str(conda_file))
        return PreparedEnvironment(CONDA, list(conda_env.get_activate_command()))
    from mlflow_workspace_plugin import mlflow_compat

    python_env = mlflow_compat.python_env_from_conda_yaml(conda_file)
    activate = mlflow_compat.create_virtualenv(python_env, conda_file.parent, env_manager=kind)
    return PreparedEnvironment(kind, [activate])


def _conda_file(job: CommandJob, private_dir: Callable[[], Path]) -> Path | None:
    env = job.environment
    if env.conda_file is not None:
        return env.conda_file
    if env.conda_inline is not None:
        path = private_dir() / "conda.yaml"
        path.write_text(yaml.safe_dump(env.conda_inline, sort_keys=False), encoding="utf-8")
        return path
    return None


def _check_manager(job: CommandJob, manager: str) -> None:
    if manager == CONDA:
        from mlflow_workspace_plugin.execution.environments import conda_executable

        if conda_executable() is None:
            raise JobLaunchError.at(job.source_file, "environment.conda_file",
                                    "env manager 'conda' needs conda, which was not found (PATH, $MLFLOW_CONDA_HOME, "
                                    "$CONDA_EXE); use env manager 'virtualenv' or 'uv', or 'local'")
    if manager == UV and shutil.which("uv") is None:
        raise JobLaunchError.at(job.source_file, "environment.conda_file",
                                "env manager 'uv' needs the uv executable on PATH (pip install uv); "
                                "or use env manager 'virtualenv' or 'local'")


def _warn_unusable(job: CommandJob, used: str, warn: Callable[[str], None]) -> None:
    env = job.environment
    if env is None:
        return
    if env.reference:
        what, why = f"{env.reference!r}", "registered and curated environments exist only in Azure ML"
    elif env.image:
        what, why = f"image {env.image!r}", "jobs here do not run in containers"
    elif env.build_context:
        what, why = f"build {str(env.build_context)!r}", "jobs here do not run in containers"
    else:
        return
    warn(f"{job.source_file}: environment {what} is not used ({why}); the job runs in {used}")

