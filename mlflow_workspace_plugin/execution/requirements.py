"""pip requirements of an environment file (a project's, or a job's ``conda_file``), for a remote
job's pip environment.

- ``conda_env`` (conda.yaml): its ``pip:`` list, plus plain conda packages translated to pip
  specifiers (``name=1.2`` -> ``name==1.2``, channel prefixes dropped); ``python`` and ``pip``
  themselves are skipped (the cluster's interpreter is used).
- ``python_env`` (python_env.yaml): its ``dependencies``.
- ``-r file`` lines are read from the project (a remote job cannot see your relative paths).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from mlflow.exceptions import ExecutionException
from mlflow.projects import env_type

_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")
_SKIPPED = {"python", "pip"}


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
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ExecutionException(f"Cannot read the project's conda environment {path}: {exc}") from None
    requirements: list[str] = []
    for item in data.get("dependencies") or []:
        if isinstance(item, dict):
            requirements += [str(entry) for entry in item.get("pip") or []]
        elif isinstance(item, str):
            converted = conda_to_pip(item)
            if converted:
                requirements.append(converted)
    return _inline_requirement_files(requirements, path.parent)


def conda_to_pip(spec: str) -> str | None:
    """``numpy=1.26`` -> ``numpy==1.26``; ``conda-forge::scipy>=1.10`` -> ``scipy>=1.10``;
    ``python``/``pip`` -> None."""
    match = _CONDA_SPEC.match(spec.strip())
    if not match:
        return spec.strip()
    name, version = match.group(1), match.group(2).replace(" ", "")
    if name.lower() in _SKIPPED:
        return None
    if version.startswith("=") and not version.startswith("=="):
        version = "==" + version[1:].split("=")[0]  # drop a conda build string
    return name + version


def _inline_requirement_files(requirements: list[str], base: Path) -> list[str]:
    result: list[str] = []
    for entry in requirements:
        text = entry.strip()
        if text.startswith(("-r ", "--requirement ")):
            file = base / text.split(None, 1)[1].strip()
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ExecutionException(f"Requirements file {file} (from {text!r}) cannot be read: {exc}") from None
            result += _inline_requirement_files(
                [line for line in (raw.split("#", 1)[0].strip() for raw in lines) if line], file.parent)
        else:
            result.append(text)
    return result
