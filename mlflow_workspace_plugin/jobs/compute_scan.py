"""Which compute names a folder of Azure ML job files uses (for ``mlflow-workspace init --from``).

Read from every ``*.yml`` / ``*.yaml`` below the folder: a job's top-level ``compute`` (text or the
preview's ``compute.target``), a sweep's ``trial.compute``, a pipeline's ``settings.default_compute``
and each ``jobs.<step>.compute``. ``azureml:`` is dropped, ``local`` is left out (it always exists).

Hostile folders: symlinks (files or folders) pointing outside the folder are not followed, files
larger than :data:`MAX_FILE_BYTES` or that are not YAML mappings are skipped, and a name that is not a
valid compute target name (``${{...}}`` bindings, quotes, ``$(...)``) is skipped; each skip is one
warning naming the file. At most :data:`MAX_FILES` files are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.workspace import LOCAL_COMPUTE, valid_compute_name

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 5000
YAML_SUFFIXES = (".yml", ".yaml")


@dataclass
class ComputeScan:
    """The result: compute name -> the files using it (relative to the folder), and the warnings."""

    folder: Path
    uses: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files_read: int = 0


def scan_compute_names(folder: str | os.PathLike) -> ComputeScan:
    """Scan ``folder`` (recursively) for the compute names its job files use."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise WorkspaceConfigError(f"--from {str(folder)!r} {what}; give the folder of your Azure ML job YAML files")
    root = root.resolve()
    scan = ComputeScan(folder=root)
    for path in _yaml_files(root, scan):
        if scan.files_read >= MAX_FILES:
            scan.warnings.append(f"stopped after {MAX_FILES} files; the rest of {root} was not read")
            break
        shown = path.relative_to(root).as_posix()
        data = _read(path, shown, scan)
        if data is None:
            continue
        scan.files_read += 1
        for where, value in _compute_fields(data):
            name = _name(value)
            if name is None or name == LOCAL_COMPUTE:
                continue
            if not valid_compute_name(name):
                scan.warnings.append(f"skipped {shown}: {where} {_short(value)} is not a compute target name "
                                     "(1-32 letters, digits or '-', starting with a letter)")
                continue
            files = scan.uses.setdefault(name, [])
            if shown not in files:
                files.append(shown)
    return scan


def _yaml_files(root: Path, scan: ComputeScan) -> Iterator[Path]:
    """YAML files under ``root``, in sorted order; symlinks out of ``root`` are reported, not followed."""
    for directory, folders, files in os.walk(root, followlinks=False):
        here = Path(directory)
        for name in sorted(folders):
            if (here / name).is_symlink():  # os.walk does not descend into it: say so if it points out
                _inside(root, here / name, scan)
        folders.sort()
        for name in sorted(files):
            path = here / name
            if path.suffix.lower() not in YAML_SUFFIXES:
                continue
            if path.is_symlink() and not _inside(root, path, scan):
                continue
            yield path


def _inside(root: Path, link: Path, scan: ComputeScan) -> bool:
    target = link.resolve()
    if target == root or root in target.parents:
        return True
    scan.warnings.append(f"skipped {link.relative_to(root).as_posix()}: a symlink pointing outside {root}")
    return False


def _read(path: Path, shown: str, scan: ComputeScan) -> dict | None:
    try:
        size = path.stat().st_size
        if not path.is_file():
            return None
        if size > MAX_FILE_BYTES:
            scan.warnings.append(f"skipped {shown}: {size} bytes, larger than a job file can be "
                                 f"({MAX_FILE_BYTES} bytes)")
            return None
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        scan.warnings.append(f"skipped {shown}: cannot be read ({error})")
        return None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        scan.warnings.append(f"skipped {shown}: not valid YAML{at}")
        return None
    if not isinstance(data, dict):
        if data is not None:
            scan.warnings.append(f"skipped {shown}: not a job file (a {type(data).__name__} at the top level)")
        return None
    return data


def _compute_fields(data: dict) -> Iterator[tuple[str, Any]]:
    """(field path, value) of every place a job file names its compute."""
    if "compute" in data:
        yield "compute", data["compute"]
    trial = data.get("trial")
    if isinstance(trial, dict) and "compute" in trial:
        yield "trial.compute", trial["compute"]
    settings = data.get("settings")
    if isinstance(settings, dict) and "default_compute" in settings:
        yield "settings.default_compute", settings["default_compute"]
    jobs = data.get("jobs")
    if isinstance(jobs, dict):
        for step, job in jobs.items():
            if isinstance(job, dict) and "compute" in job:
                yield f"jobs.{step}.compute", job["compute"]


def _name(value: Any) -> str | None:
    if isinstance(value, dict):  # preview: compute: {target: azureml:cpu-cluster}
        value = value.get("target")
    if not isinstance(value, str):
        return None if value is None else ""
    return value.strip().removeprefix("azureml:")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
