"""Project source snapshot: which files, honouring ``.amlignore`` else ``.gitignore``, size-capped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pathspec
from mlflow.exceptions import ExecutionException

from mlflow_workspace_plugin.env_settings import env_number

IGNORE_FILES = (".amlignore", ".gitignore")
ALWAYS_EXCLUDED = (".git/", "__pycache__/", ".ipynb_checkpoints/")
MAX_MB_ENV = "MLFLOW_WORKSPACE_SNAPSHOT_MAX_MB"
MAX_FILES_ENV = "MLFLOW_WORKSPACE_SNAPSHOT_MAX_FILES"
DEFAULT_MAX_MB = 300.0
DEFAULT_MAX_FILES = 2000


@dataclass(frozen=True)
class Snapshot:
    """The files (relative POSIX paths) that make up a project snapshot."""

    root: Path
    files: tuple[str, ...]
    total_bytes: int
    ignore_file: str | None


def load_ignore_spec(root: Path) -> tuple[pathspec.GitIgnoreSpec, str | None]:
    """The ignore rules: ``.amlignore`` if present, else ``.gitignore``, plus fixed exclusions."""
    lines = list(ALWAYS_EXCLUDED)
    used = None
    for name in IGNORE_FILES:
        candidate = root / name
        if candidate.is_file():
            lines += candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            used = name
            break
    return pathspec.GitIgnoreSpec.from_lines(lines), used


def collect_snapshot(root: str | os.PathLike) -> Snapshot:
    """Walk ``root`` and return the snapshot file list; raise if over the size or count limit."""
    root = Path(root).resolve()
    spec, used = load_ignore_spec(root)
    max_bytes = env_number(MAX_MB_ENV, DEFAULT_MAX_MB, allow_zero=False) * 1024 * 1024
    max_files = int(env_number(MAX_FILES_ENV, DEFAULT_MAX_FILES, allow_zero=False))
    files: list[str] = []
    total = 0
    for directory, dirnames, filenames in os.walk(root):
        rel_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not spec.match_file(prefix + d + "/"))
        for name in sorted(filenames):
            rel = prefix + name
            path = Path(directory) / name
            if spec.match_file(rel) or not path.is_file():
                continue
            files.append(rel)
            total += path.stat().st_size
            if total > max_bytes or len(files) > max_files:
                raise ExecutionException(
                    f"The project snapshot of {root} exceeds the limit of {max_bytes / 1048576:.0f} MB "
                    f"and {max_files} files (at {rel}). Exclude data and outputs with an "
                    f"{IGNORE_FILES[0]} (or {IGNORE_FILES[1]}) file in the project folder, or raise "
                    f"{MAX_MB_ENV} / {MAX_FILES_ENV}."
                )
    return Snapshot(root=root, files=tuple(files), total_bytes=total, ignore_file=used)
