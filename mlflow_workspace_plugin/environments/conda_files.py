"""pip requirements of a conda environment file (a project's ``conda.yaml``, a job's ``conda_file``, a
registered environment's conda file).

- its ``pip:`` list, plus plain conda packages translated to pip specifiers (``name=1.2`` ->
  ``name==1.2``, channel prefixes dropped); ``python`` and ``pip`` themselves are skipped (the
  interpreter running the plugin, or the cluster's, is used);
- ``-r file`` lines are read from the file's folder (and must stay inside it: a remote job cannot see
  your relative paths, and an environment file must not read files elsewhere on this machine).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mlflow_workspace_plugin.environments.errors import EnvironmentProblem

_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")
_SKIPPED = {"python", "pip"}
MAX_CONDA_FILE_BYTES = 1_000_000


def read_conda_file(path: Path) -> dict[str, Any]:
    """The conda file's YAML as a mapping (an error naming the file otherwise)."""
    try:
        if path.stat().st_size > MAX_CONDA_FILE_BYTES:
            raise EnvironmentProblem(f"Conda environment file {path} is larger than {MAX_CONDA_FILE_BYTES} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EnvironmentProblem(f"Cannot read the conda environment file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise EnvironmentProblem(f"Conda environment file {path} must be a mapping with 'dependencies', "
                                 f"got {type(data).__name__}")
    return data


def conda_file_requirements(path: Path) -> list[str]:
    """pip requirements equivalent to the conda environment file at ``path``."""
    return conda_data_requirements(read_conda_file(path), path.parent, str(path))


def conda_data_requirements(data: dict[str, Any], base: Path | None, source: str) -> list[str]:
    """pip requirements of a parsed conda environment (``base``: the folder ``-r`` files are read from;
    None: ``-r`` is refused)."""
    dependencies = data.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise EnvironmentProblem(f"{source}: 'dependencies' must be a list, got {type(dependencies).__name__}")
    requirements: list[str] = []
    for item in dependencies:
        if isinstance(item, dict):
            pip = item.get("pip") or []
            if not isinstance(pip, list):
                raise EnvironmentProblem(f"{source}: 'pip' must be a list of requirements, got {type(pip).__name__}")
            requirements += [str(entry) for entry in pip]
        elif isinstance(item, str):
            converted = conda_to_pip(item)
            if converted:
                requirements.append(converted)
    return inline_requirement_files(requirements, base, source)


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


def inline_requirement_files(requirements: list[str], base: Path | None, source: str) -> list[str]:
    """``-r file`` entries replaced by the file's lines (recursively), read from inside ``base``."""
    result: list[str] = []
    for entry in requirements:
        text = entry.strip()
        if not text.startswith(("-r ", "--requirement ")):
            result.append(text)
            continue
        if base is None:
            raise EnvironmentProblem(f"{source}: {text!r} reads a file, which only a conda file next to it can do")
        root = base.resolve()
        file = (root / text.split(None, 1)[1].strip()).resolve()
        if root not in file.parents:
            raise EnvironmentProblem(f"{source}: {text!r} reads {file}, outside the conda file's folder {root}")
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvironmentProblem(f"Requirements file {file} (from {text!r}) cannot be read: {exc}") from None
        result += inline_requirement_files(
            [line for line in (raw.split("#", 1)[0].strip() for raw in lines) if line], file.parent, str(file))
    return result
