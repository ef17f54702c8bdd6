"""pip requirements of an environment file (a project's, or a job's ``conda_file``), for a remote
job's pip environment (the conda-file reading itself: :mod:`mlflow_workspace_plugin.environments.conda_files`).

- ``conda_env`` (conda.yaml): its ``pip:`` list, plus plain conda packages translated to pip
  specifiers (``name=1.2`` -> ``name==1.2``, channel prefixes dropped); ``python`` and ``pip``
  themselves are skipped (the cluster's interpreter is used).
- ``python_env`` (python_env.yaml): its ``dependencies``.
- ``-r file`` lines are read from the project (a remote job cannot see your relative paths).
"""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import ExecutionException
from mlflow.projects import env_type

from mlflow_workspace_plugin.environments.conda_files import (
    conda_data_requirements,
    conda_file_requirements,
    conda_to_pip,
    inline_requirement_files,
)
from mlflow_workspace_plugin.environments.errors import EnvironmentProblem

__all__ = ["conda_data_requirements", "conda_requirements", "conda_to_pip", "project_requirements"]


def project_requirements(project, work_dir: str | Path) -> list[str]:
    """The pip requirements of ``project``'s environment (empty if it declares none or docker_env)."""
    path = Path(project.env_config_path) if project.env_config_path else None
    if path is None or not path.is_file():
        return []
    if project.env_type == env_type.CONDA:
        return conda_requirements(path)
    if project.env_type == env_type.PYTHON:
        from mlflow_workspace_plugin import mlflow_compat

        return _inline_requirement_files(mlflow_compat.python_env_dependencies(path), path.parent)
    return []


def conda_requirements(path: Path) -> list[str]:
    """pip requirements equivalent to a conda environment file."""
    try:
        return conda_file_requirements(path)
    except EnvironmentProblem as exc:
        raise ExecutionException(exc.message) from None


def _inline_requirement_files(requirements: list[str], base: Path) -> list[str]:
    try:
        return inline_requirement_files(requirements, base, str(base))
    except EnvironmentProblem as exc:
        raise ExecutionException(exc.message) from None
