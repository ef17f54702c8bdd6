"""Choose and prepare the environment a local project run executes in.

Checks run *before* the MLflow run is created (so a missing conda or Docker engine fails early
with an actionable message); preparation (building a conda env / virtualenv / Docker image)
runs after, as the run's "preparing" phase.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.entities import Run
from mlflow.exceptions import ExecutionException
from mlflow.projects import env_type

from mlflow_workspace_plugin import mlflow_compat
from mlflow_workspace_plugin.compute.environment import (
    CONDA,
    DOCKER,
    LOCAL,
    UV,
    VIRTUALENV,
    EnvironmentSpec,
    PreparedEnvironment,
)
from mlflow_workspace_plugin.execution.environments import conda_executable
from mlflow_workspace_plugin.execution.requirements import project_requirements
from mlflow_workspace_plugin.projects.backend_config import BackendConfig

if TYPE_CHECKING:
    from mlflow_workspace_plugin.mlflow_compat import Project

REMOTE_DOCKER_PROBLEM = (
    "This project declares a docker_env, which is not supported on remote compute targets: "
    "declare a conda_env (conda.yaml) or python_env (python_env.yaml) instead"
)

def project_environment(project: Project, work_dir: str, config: BackendConfig) -> EnvironmentSpec:
    """The run's environment: checked now (conda / Docker / uv present), built once the run exists.
    On remote compute, the project's environment file becomes the job's pip requirements."""
    if config.is_remote:
        return EnvironmentSpec(requirements=tuple(project_requirements(project, work_dir)),
                               remote_problem=REMOTE_DOCKER_PROBLEM if project.docker_env else None)
    kind = choose_environment(project, config)

    def prepare(run_id: str) -> PreparedEnvironment:
        from mlflow import MlflowClient

        return prepare_environment(kind, project, work_dir, MlflowClient().get_run(run_id), config)

    return EnvironmentSpec(kind=kind, prepare=prepare)


def choose_environment(project: Project, config: BackendConfig) -> str:
    """Decide the environment kind from MLproject + backend_config, failing early if unusable."""
    if project.docker_env:
        ensure_docker_engine(project)
        return DOCKER
    manager = config.env_manager
    if manager is None and config.use_conda is not None:
        manager = CONDA if config.use_conda else LOCAL
    if manager is None:  # MLflow's own default for the project's env type
        manager = {env_type.CONDA: CONDA, env_type.PYTHON: VIRTUALENV}.get(project.env_type, LOCAL)
    if manager == CONDA and project.env_type == env_type.PYTHON:
        raise ExecutionException(
            "This project declares a python_env, which cannot be built with conda: use "
            "USE_CONDA: false with --env-manager virtualenv, uv or local"
        )
    if manager == CONDA:
        ensure_conda()
    if manager == UV and shutil.which("uv") is None:
        raise ExecutionException(
            "env manager 'uv' was requested but the 'uv' executable is not on PATH: "
            "`pip install uv`, or use --env-manager virtualenv or local"
        )
    return manager


def ensure_conda() -> None:
    if conda_executable() is None:
        raise ExecutionException(
            "This run needs conda (USE_CONDA is true, or the project has a conda.yaml and no env "
            "manager was chosen) but no conda executable was found on PATH, in $MLFLOW_CONDA_HOME "
            "or $CONDA_EXE. Either install Miniforge/Miniconda and retry, or run in the current "
            "Python environment with backend_config {\"USE_CONDA\": false} (CLI: "
            "--env-manager local), or build a virtualenv from the project with --env-manager "
            "virtualenv."
        )


def ensure_docker_engine(project: Project) -> None:
    """A ``docker_env`` project needs a reachable Docker engine; say so early otherwise."""
    import docker

    image = project.docker_env.get("image")
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker raises DockerException / requests errors / OSError
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ExecutionException(
            f"This project declares docker_env (image {image!r}) but no Docker engine is "
            f"reachable at {host} ({type(exc).__name__}). Start Docker (or set DOCKER_HOST), or "
            "remove docker_env from the MLproject and use a conda_env/python_env with "
            "--env-manager local or virtualenv."
        ) from None


def prepare_environment(kind: str, project: Project, work_dir: str, run: Run,
                        config: BackendConfig) -> PreparedEnvironment:
    """Build the environment (may take minutes) and return the command prefix."""
    if kind == LOCAL:
        return PreparedEnvironment(LOCAL)
    if kind == CONDA:
        from mlflow.utils.conda import get_or_create_conda_env

        conda_env = get_or_create_conda_env(project.env_config_path)
        return PreparedEnvironment(CONDA, list(conda_env.get_activate_command()))
    if kind in (VIRTUALENV, UV):
        return _prepare_virtualenv(kind, project, work_dir)
    if kind == DOCKER:
        return _prepare_docker(project, work_dir, run, config)
    raise ExecutionException(f"Unknown environment kind {kind!r}; allowed: local, conda, virtualenv, uv, docker")


def _prepare_virtualenv(kind: str, project: Project, work_dir: str) -> PreparedEnvironment:
    if project.env_type == env_type.CONDA:
        python_env = mlflow_compat.python_env_from_conda_yaml(project.env_config_path)
    else:
        python_env = mlflow_compat.python_env_from_yaml(project.env_config_path)
    activate = mlflow_compat.create_virtualenv(python_env, Path(work_dir), env_manager=kind)
    return PreparedEnvironment(kind, [activate])


def _prepare_docker(project: Project, work_dir: str, run: Run, config: BackendConfig) -> PreparedEnvironment:
    from mlflow.projects.docker import build_docker_image, validate_docker_env

    validate_docker_env(project)
    image = build_docker_image(
        work_dir=work_dir,
        repository_uri=project.name,
        base_image=project.docker_env.get("image"),
        run_id=run.info.run_id,
        build_image=config.build_image,
        docker_auth=config.docker_auth,
    )
    command = mlflow_compat.docker_command(
        image=image,
        active_run=run,
        docker_args=config.docker_args,
        volumes=project.docker_env.get("volumes"),
        user_env_vars=project.docker_env.get("environment"),
    )
    return PreparedEnvironment(DOCKER, command, separator=" ")
